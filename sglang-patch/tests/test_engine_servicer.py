import grpc
import pytest
from google.protobuf.message import Message

from microturn_sglang.engine_servicer import ERROR_CODE_TRAILER, PROTOCOL_VERSION, engine_code_for
from microturn_sglang.slot_pool import KvPoolExhausted
from microturn_sglang.gen.microturn.v1 import common_pb2, engine_pb2, engine_pb2_grpc
from microturn_sglang.interaction_model import InteractionModelConfig, MicroturnInteractionModel
from microturn_sglang.reference_engine import ChunkInput, ReferenceEngine
from microturn_sglang.reference_server import build_server


@pytest.fixture(scope="module")
def served():
    engine = ReferenceEngine(MicroturnInteractionModel(InteractionModelConfig()).eval(), num_slots=8192)
    server, port = build_server(engine, "127.0.0.1", 0)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield engine, engine_pb2_grpc.StreamingSessionStub(channel)
    channel.close()
    server.stop(grace=None)


def open_session(stub, **kw):
    return stub.OpenSession(engine_pb2.OpenSessionRequest(protocol_version=PROTOCOL_VERSION, **kw))


def code_of(call):
    with pytest.raises(grpc.RpcError) as info:
        result = call()
        if not isinstance(result, Message):  # a server stream: drain it
            list(result)
    return info.value.code()


def test_open_append_rewind_close_over_grpc(served):
    _, stub = served
    opened = open_session(stub, system_prompt="sys", capacity_tokens=256)
    assert opened.capabilities.supports_rewind and opened.capabilities.random_weights
    assert opened.position_tokens == 4 and opened.capacity_tokens == 256
    sid = opened.session_id
    codes = bytes([3] * (16 * 80))
    patch = common_pb2.VideoPatches(patch_size_px=40, rows=1, cols=2, rgb=bytes(2 * 40 * 40 * 3))
    responses = list(stub.Append(engine_pb2.AppendRequest(
        session_id=sid, seq=0, start_ms=0, duration_ms=200, text="hi",
        audio=common_pb2.DmelAudio(frames=16, channels=80, codes=codes), video=[patch], max_output_tokens=3,
    )))
    assert responses[-1].WhichOneof("event") == "done"
    assert all(r.WhichOneof("event") == "delta" for r in responses[:-1])
    done = responses[-1].done
    assert done.input_tokens == 1 + 3 + 16 + 2
    assert done.position_tokens == done.input_end_tokens + done.output_tokens
    rewound = stub.Rewind(engine_pb2.RewindRequest(session_id=sid, position_tokens=done.input_end_tokens))
    assert rewound.dropped_tokens == done.output_tokens
    assert stub.Health(engine_pb2.HealthRequest()).active_sessions >= 1
    assert stub.CloseSession(engine_pb2.CloseSessionRequest(session_id=sid)).position_tokens == done.input_end_tokens


def test_errors_map_to_status_codes(served):
    engine, stub = served
    assert code_of(lambda: stub.OpenSession(engine_pb2.OpenSessionRequest(protocol_version="2.0"))) == grpc.StatusCode.FAILED_PRECONDITION
    assert code_of(lambda: stub.Append(engine_pb2.AppendRequest(session_id="nope"))) == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: stub.CloseSession(engine_pb2.CloseSessionRequest(session_id="nope"))) == grpc.StatusCode.NOT_FOUND
    sid = open_session(stub, system_prompt="abc").session_id
    assert code_of(lambda: stub.Rewind(engine_pb2.RewindRequest(session_id=sid, position_tokens=99))) == grpc.StatusCode.OUT_OF_RANGE
    assert code_of(lambda: stub.Rewind(engine_pb2.RewindRequest(session_id=sid, position_tokens=1))) == grpc.StatusCode.OUT_OF_RANGE
    bad_audio = engine_pb2.AppendRequest(session_id=sid, audio=common_pb2.DmelAudio(frames=1, channels=80, codes=bytes([16] * 80)))
    assert code_of(lambda: stub.Append(bad_audio)) == grpc.StatusCode.INVALID_ARGUMENT
    short_audio = engine_pb2.AppendRequest(session_id=sid, audio=common_pb2.DmelAudio(frames=2, channels=80, codes=bytes(80)))
    assert code_of(lambda: stub.Append(short_audio)) == grpc.StatusCode.INVALID_ARGUMENT
    bad_patch = engine_pb2.AppendRequest(session_id=sid, video=[common_pb2.VideoPatches(patch_size_px=16, rows=1, cols=1, rgb=bytes(768))])
    assert code_of(lambda: stub.Append(bad_patch)) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: open_session(stub, session_id=sid)) == grpc.StatusCode.ALREADY_EXISTS
    assert code_of(lambda: open_session(stub, capacity_tokens=1 << 20)) == grpc.StatusCode.RESOURCE_EXHAUSTED
    too_long = engine_pb2.AppendRequest(session_id=sid, text="x" * (engine.max_context_tokens + 1))
    assert code_of(lambda: stub.Append(too_long)) == grpc.StatusCode.RESOURCE_EXHAUSTED
    # The trailer names the exact engine code: a full sequence, where a full KV pool would say "unavailable".
    with pytest.raises(grpc.RpcError) as info:
        list(stub.Append(too_long))
    assert dict(info.value.trailing_metadata())[ERROR_CODE_TRAILER] == "too_large"
    assert engine_code_for(KvPoolExhausted("pool full")) == "unavailable"
    # The server is still up and the session still usable after every refusal.
    done = list(stub.Append(engine_pb2.AppendRequest(session_id=sid, text="ok")))[-1].done
    assert done.input_tokens == 1 + 3


def test_second_append_in_flight_is_refused(served):
    engine, stub = served
    sid = open_session(stub).session_id
    in_flight = engine.append(sid, ChunkInput(text="first", max_output_tokens=5))
    assert code_of(lambda: stub.Append(engine_pb2.AppendRequest(session_id=sid, text="second"))) == grpc.StatusCode.FAILED_PRECONDITION
    list(in_flight)
    last = list(stub.Append(engine_pb2.AppendRequest(session_id=sid, text="third")))[-1]
    assert last.WhichOneof("event") == "done"


def spoken_tokens(done) -> int:
    """Output tokens that speak: all but a closing <end-of-turn> (no stop strings here)."""
    ends = done.finish_reason in (engine_pb2.FINISH_REASON_STOP, engine_pb2.FINISH_REASON_SILENT)
    return done.output_tokens - ends


def test_speaking_session_streams_pcm_with_the_text(served):
    _, stub = served
    assert common_pb2.MODALITY_AUDIO in stub.Health(engine_pb2.HealthRequest()).capabilities.output_modalities
    opened = open_session(stub, system_prompt="sys", audio_output=True)
    assert common_pb2.MODALITY_AUDIO in opened.capabilities.output_modalities
    sid = opened.session_id

    def turn(seq):
        responses = list(stub.Append(engine_pb2.AppendRequest(
            session_id=sid, seq=seq, start_ms=200 * seq, duration_ms=200, text="hi", max_output_tokens=8)))
        deltas, done = [r.delta for r in responses[:-1]], responses[-1].done
        assert all(d.HasField("audio") and (d.audio.sample_rate_hz, d.audio.channels) == (16000, 1) for d in deltas)
        pcm = b"".join(d.audio.pcm16 for d in deltas)
        # 12.5 ms of 16 kHz mono int16 per spoken output token.
        assert len(pcm) / 2 / 16 == 12.5 * spoken_tokens(done)
        assert deltas[-1].position_tokens == done.input_end_tokens + spoken_tokens(done)
        return pcm, done

    first, done = turn(0)
    assert spoken_tokens(done) > 0
    stub.Rewind(engine_pb2.RewindRequest(session_id=sid, position_tokens=opened.position_tokens))
    again, _ = turn(0)
    assert again == first  # same seed, fresh voice after the rewind
    turn(1)  # and the session goes on speaking
    stub.CloseSession(engine_pb2.CloseSessionRequest(session_id=sid))


def test_silent_session_sends_text_only(served):
    _, stub = served
    sid = open_session(stub).session_id
    responses = list(stub.Append(engine_pb2.AppendRequest(session_id=sid, text="hi", max_output_tokens=6)))
    assert not any(r.delta.HasField("audio") for r in responses[:-1])
