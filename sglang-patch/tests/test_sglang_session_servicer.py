"""The in-server StreamingSession servicer over real gRPC (grpc.aio on a
loopback port), against the stand-in TokenizerManager of sglang_fakes.py."""

import asyncio
import sys
from contextlib import asynccontextmanager

import grpc
import pytest
from sglang_fakes import FakeTokenizerManager, fake_io_struct

from microturn_sglang.engine_servicer import PROTOCOL_VERSION
from microturn_sglang.gen.microturn.v1 import common_pb2, engine_pb2, engine_pb2_grpc
from microturn_sglang.grpc_in_server import start_session_grpc

IO_STRUCT = "sglang.srt.managers.io_struct"


@pytest.fixture(autouse=True)
def io_struct(monkeypatch):
    monkeypatch.setitem(sys.modules, IO_STRUCT, fake_io_struct())


@asynccontextmanager
async def served(tm):
    server, port = await start_session_grpc(tm, "127.0.0.1", 0)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield engine_pb2_grpc.StreamingSessionStub(channel)
    finally:
        await channel.close()
        await server.stop(None)


def run(scenario, tm=None):
    tm = tm or FakeTokenizerManager()

    async def main():
        async with served(tm) as stub:
            await scenario(stub, tm)

    asyncio.run(main())
    return tm


async def open_session(stub, **kw):
    return await stub.OpenSession(engine_pb2.OpenSessionRequest(protocol_version=PROTOCOL_VERSION, **kw))


async def append(stub, sid, **kw):
    return [r async for r in stub.Append(engine_pb2.AppendRequest(session_id=sid, **kw))]


async def code_of(coro):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await coro
    return info.value.code(), info.value.details()


async def engine_code_of(coro):
    """The microturn-error-code trailer the refusal carried (what the sidecar's adapter maps first)."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await coro
    return dict(info.value.trailing_metadata() or ()).get("microturn-error-code")


@pytest.mark.parametrize("incremental", [False, True], ids=["cumulative", "incremental"])
def test_open_append_close_track_positions(incremental):
    async def scenario(stub, tm):
        tm.replies = ["Hello!", "Sure."]
        opened = await open_session(stub, system_prompt="be brief", capacity_tokens=256, idle_timeout_ms=5000)
        caps = opened.capabilities
        assert caps.input_modalities == [common_pb2.MODALITY_TEXT] and not caps.supports_rewind
        assert caps.max_context_tokens == 512 and caps.model_id == "fake/text-model"
        # The system prompt was prefilled alone (no output): BOS + 8 bytes.
        assert opened.position_tokens == 9 and opened.capacity_tokens == 256
        first = tm.requests[0]
        assert first.text == "be brief" and first.sampling_params == {"max_new_tokens": 0} and first.stream
        assert tm.sessions[opened.session_id].timeout == 5.0

        sid = opened.session_id
        out = await append(stub, sid, seq=0, start_ms=12_400, duration_ms=200, text="hi", max_output_tokens=16,
                           temperature=0.7, stop=["\n\n", ""],
                           context=[common_pb2.ContextItem(source=common_pb2.CONTEXT_SOURCE_TOOL, text="21", ref_id="c1")])
        sent = tm.requests[1]
        assert sent.text == '<t=12.4s><tool ref="c1">21</tool>hi'
        assert sent.session_params == {"id": sid} and sent.stream and sent.rid
        # An empty stop string is dropped: SGLang would take it as found at once and end every turn.
        assert sent.sampling_params == {"max_new_tokens": 16, "temperature": pytest.approx(0.7), "stop": ["\n\n"]}
        deltas = [r.delta for r in out[:-1]]
        assert all(r.WhichOneof("event") == "delta" for r in out[:-1])
        assert "".join(d.text for d in deltas) == "Hello!"  # incremental, never cumulative
        done = out[-1].done
        assert done.finish_reason == engine_pb2.FINISH_REASON_STOP
        assert done.input_end_tokens == 9 + len(sent.text) and done.input_tokens == len(sent.text)
        assert done.output_tokens == 7  # six bytes and the end-of-turn token
        assert done.position_tokens == done.input_end_tokens + 7
        assert [d.position_tokens for d in deltas] == list(range(done.input_end_tokens + 1, done.input_end_tokens + 7))
        assert done.turn_ms >= done.append_ms >= 0 and done.capacity_tokens == 256

        # The next turn's prompt is the whole sequence: positions keep counting.
        out = await append(stub, sid, start_ms=12_600, text="", max_output_tokens=3)
        done2 = out[-1].done
        assert done2.finish_reason == engine_pb2.FINISH_REASON_LENGTH
        assert done2.input_end_tokens == done.position_tokens + len("<t=12.6s>")
        assert done2.output_tokens == 3 and "".join(r.delta.text for r in out[:-1]) == "Sur"

        closed = await stub.CloseSession(engine_pb2.CloseSessionRequest(session_id=sid))
        assert closed.position_tokens == done2.position_tokens and tm.closed == [sid]
        assert (await stub.Health(engine_pb2.HealthRequest())).active_sessions == 0

    run(scenario, FakeTokenizerManager(incremental_streaming_output=incremental))


def test_append_input_only_and_silent_turn():
    async def scenario(stub, tm):
        sid = (await open_session(stub)).session_id
        assert (await open_session(stub, session_id="mine")).position_tokens == 0
        out = await append(stub, sid, text="abc", max_output_tokens=0)
        assert len(out) == 1 and out[0].done.finish_reason == engine_pb2.FINISH_REASON_LENGTH
        assert out[0].done.input_tokens == 1 + len("<t=0.0s>abc") and out[0].done.output_tokens == 0
        tm.replies = [""]  # the model ends its turn at once
        done = (await append(stub, sid, text="?", max_output_tokens=8))[-1].done
        assert done.finish_reason == engine_pb2.FINISH_REASON_SILENT and done.output_tokens == 1
        health = await stub.Health(engine_pb2.HealthRequest())
        assert health.serving and health.active_sessions == 2 and health.capabilities.engine == "sglang-patch"

    run(scenario)


def test_refusals_map_to_status_codes_and_the_server_stays_up():
    async def scenario(stub, tm):
        code = grpc.StatusCode
        old_major = stub.OpenSession(engine_pb2.OpenSessionRequest(protocol_version="2.0"))
        assert (await code_of(old_major))[0] == code.FAILED_PRECONDITION
        # Each refusal names its engine code: FAILED_PRECONDITION alone reads as a busy session.
        old_again = stub.OpenSession(engine_pb2.OpenSessionRequest(protocol_version="2.0"))
        assert await engine_code_of(old_again) == "invalid_argument"
        assert await engine_code_of(append(stub, "nope", text="x")) == "unknown_session"
        assert (await code_of(append(stub, "nope", text="x")))[0] == code.NOT_FOUND
        assert (await code_of(stub.CloseSession(engine_pb2.CloseSessionRequest(session_id="nope"))))[0] == code.NOT_FOUND
        assert (await code_of(stub.Rewind(engine_pb2.RewindRequest(session_id="nope"))))[0] == code.NOT_FOUND
        sid = (await open_session(stub, session_id="s1")).session_id
        assert (await code_of(open_session(stub, session_id="s1")))[0] == code.ALREADY_EXISTS
        assert await engine_code_of(open_session(stub, session_id="s1")) == "invalid_argument"
        # SGLang aborting a request it cannot take now (503: the queue is full) may pass: unavailable, retryable.
        tm.abort_next = (503, "The request queue is full.")
        full = await code_of(append(stub, sid, text="x", max_output_tokens=2))
        assert full == (code.UNAVAILABLE, "The request queue is full.")
        assert (await code_of(open_session(stub, capacity_tokens=513)))[0] == code.RESOURCE_EXHAUSTED
        speak = await code_of(open_session(stub, audio_output=True))
        assert speak[0] == code.INVALID_ARGUMENT and "output_modalities is TEXT" in speak[1]
        rewind = await code_of(stub.Rewind(engine_pb2.RewindRequest(session_id=sid, position_tokens=0)))
        assert rewind[0] == code.FAILED_PRECONDITION and "offset" in rewind[1]
        audio = await code_of(append(stub, sid, audio=common_pb2.DmelAudio(frames=1, channels=80, codes=bytes(80))))
        assert audio[0] == code.INVALID_ARGUMENT and "MODALITY_AUDIO" in audio[1]
        video = await code_of(append(stub, sid, video=[common_pb2.VideoPatches(patch_size_px=40, rows=1, cols=1)]))
        assert video[0] == code.INVALID_ARGUMENT and "MODALITY_VIDEO" in video[1]
        # The tokenizer's own length check (ValueError) and the scheduler's (abort, status 400).
        too_long = await code_of(append(stub, sid, text="x" * 600))
        assert too_long[0] == code.RESOURCE_EXHAUSTED and "context length" in too_long[1]
        grown = await code_of(append(stub, sid, text="x" * 503))  # 511 tokens with BOS and marker: fits the tokenizer, not the scheduler
        assert grown[0] == code.RESOURCE_EXHAUSTED and "shorter input" in grown[1]
        # SGLang reaped the session on its own timeout: NOT_FOUND, and the record goes.
        del tm.sessions[sid]
        gone = await code_of(append(stub, sid, text="hi"))
        assert gone[0] == code.NOT_FOUND and "does not exist" in gone[1]
        assert (await stub.Health(engine_pb2.HealthRequest())).active_sessions == 0
        assert "is not open" in (await code_of(append(stub, sid, text="hi")))[1]
        # Still serving; a fresh session works.
        tm.replies = ["ok"]
        sid2 = (await open_session(stub)).session_id
        assert (await append(stub, sid2, text="hi", max_output_tokens=4))[-1].done.output_tokens == 3

    run(scenario)


def test_refusals_from_sglang_at_open():
    async def scenario(stub, tm):
        disabled = await code_of(open_session(stub))
        assert disabled[0] == grpc.StatusCode.FAILED_PRECONDITION and "--enable-streaming-session" in disabled[1]
        tm.enable_streaming_session = True
        tm.sessions["taken"] = None  # opened through SGLang's HTTP API, not through us
        assert (await code_of(open_session(stub, session_id="taken")))[0] == grpc.StatusCode.ALREADY_EXISTS
        # A system prompt too long for the model: the session is closed again.
        long_prompt = await code_of(open_session(stub, session_id="p", system_prompt="s" * 600))
        assert long_prompt[0] == grpc.StatusCode.RESOURCE_EXHAUSTED and tm.closed == ["p"]
        assert (await stub.Health(engine_pb2.HealthRequest())).active_sessions == 0

    run(scenario, FakeTokenizerManager(enable_streaming_session=False))


@pytest.mark.parametrize("message, closes", [
    ("Invalid request: session id s1 does not exist", False),
    ("Invalid request: close was requested for session s1", True),
], ids=["reaped", "closing"])
def test_system_prompt_refused_because_the_session_is_gone(message, closes):
    """SGLang reaps or closes the session before the system-prompt prefill runs
    (an abort with status 400): the client gets the typed NOT_FOUND, not
    UNKNOWN from cleaning up twice, and the session is closed in SGLang unless
    SGLang says it no longer exists there."""
    async def scenario(stub, tm):
        tm.abort_next = (400, message)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await open_session(stub, session_id="s1", system_prompt="sys")
        assert info.value.code() == grpc.StatusCode.NOT_FOUND, info.value.details()
        assert dict(info.value.trailing_metadata() or ()).get("microturn-error-code") == "unknown_session"
        assert tm.closed == (["s1"] if closes else [])
        assert (await stub.Health(engine_pb2.HealthRequest())).active_sessions == 0
        # The id is free again on our side.
        tm.sessions.pop("s1", None)
        assert (await open_session(stub, session_id="s1")).session_id == "s1"

    run(scenario)


def test_second_append_in_flight_is_refused_and_cancel_aborts():
    async def scenario(stub, tm):
        tm.replies = ["a long answer"]
        sid = (await open_session(stub)).session_id
        call = stub.Append(engine_pb2.AppendRequest(session_id=sid, text="go", max_output_tokens=64))
        first = await call.read()
        assert first.delta.text == "a"
        busy = await code_of(append(stub, sid, text="again"))
        assert busy[0] == grpc.StatusCode.FAILED_PRECONDITION and "in flight" in busy[1]
        assert await engine_code_of(append(stub, sid, text="again")) == "busy"
        rid = tm.requests[-1].rid
        call.cancel()
        for _ in range(100):
            if rid in tm.aborted:
                break
            await asyncio.sleep(0.01)
        assert tm.aborted == [rid]
        # The aborted turn left nothing behind; the session takes the next one.
        tm.replies = ["ok"]
        done = (await append(stub, sid, text="hi", max_output_tokens=8))[-1].done
        assert done.finish_reason == engine_pb2.FINISH_REASON_STOP and done.input_end_tokens == 1 + len("<t=0.0s>hi")

    run(scenario, FakeTokenizerManager(step_delay_s=0.05))


def test_close_during_append_ends_it_with_abort():
    async def scenario(stub, tm):
        tm.replies = ["a long answer"]
        opened = await open_session(stub, system_prompt="sys")
        sid = opened.session_id
        call = stub.Append(engine_pb2.AppendRequest(session_id=sid, text="go", max_output_tokens=64))
        assert (await call.read()).delta.text == "a"
        closed = await stub.CloseSession(engine_pb2.CloseSessionRequest(session_id=sid))
        assert closed.position_tokens == opened.position_tokens
        rest = []
        while (message := await call.read()) is not grpc.aio.EOF:
            rest.append(message)
        done = rest[-1].done
        assert done.finish_reason == engine_pb2.FINISH_REASON_ABORT
        assert done.position_tokens == opened.position_tokens and done.input_tokens == 0 and done.output_tokens == 0
        assert tm.aborted == [tm.requests[-1].rid] and tm.closed == [sid]
        assert (await code_of(append(stub, sid, text="x")))[0] == grpc.StatusCode.NOT_FOUND

    run(scenario, FakeTokenizerManager(step_delay_s=0.05))


def test_idle_sessions_are_forgotten_on_sglangs_timeout():
    async def scenario(stub, tm):
        sid = (await open_session(stub, idle_timeout_ms=100)).session_id
        assert (await stub.Health(engine_pb2.HealthRequest())).active_sessions == 1
        await asyncio.sleep(0.25)
        assert (await stub.Health(engine_pb2.HealthRequest())).active_sessions == 0
        assert (await code_of(append(stub, sid, text="x")))[0] == grpc.StatusCode.NOT_FOUND

    run(scenario)


@pytest.fixture
def rewind_hook(monkeypatch):
    """The plugin registered its session hooks in this process (and so in the
    scheduler's): the servicer offers Rewind."""
    from microturn_sglang import session_rewind

    monkeypatch.setattr(session_rewind, "_registered", True)


async def rewind(stub, sid, position):
    return await stub.Rewind(engine_pb2.RewindRequest(session_id=sid, position_tokens=position))


def test_rewind_is_carried_by_the_next_append_as_sglangs_offset(rewind_hook):
    async def scenario(stub, tm):
        tm.replies = ["Hello!", "Sure.", "ok"]
        opened = await open_session(stub, system_prompt="be brief")
        assert opened.capabilities.supports_rewind
        sid, floor = opened.session_id, opened.position_tokens
        first = (await append(stub, sid, text="hi", max_output_tokens=16))[-1].done
        second = (await append(stub, sid, text="more", max_output_tokens=16))[-1].done
        target = first.position_tokens + 2  # inside the second Append's input
        back = await rewind(stub, sid, target)
        assert back.position_tokens == target and back.dropped_tokens == second.position_tokens - target
        done = (await append(stub, sid, text="x", max_output_tokens=16))[-1].done
        sent = tm.requests[-1]
        assert sent.session_params == {"id": sid, "offset": target}
        assert done.finish_reason == engine_pb2.FINISH_REASON_STOP
        assert done.input_end_tokens == target + len(sent.text) and done.input_tokens == len(sent.text)
        assert tm.sessions[sid].committed == done.position_tokens
        # Rewinding to the end or the system prompt's end is allowed; the end sends nothing.
        assert (await rewind(stub, sid, done.position_tokens)).dropped_tokens == 0
        assert (await rewind(stub, sid, floor)).position_tokens == floor
        tm.replies = ["again"]
        after = (await append(stub, sid, text="y", max_output_tokens=16))[-1].done
        assert tm.requests[-1].session_params == {"id": sid, "offset": floor}
        assert after.input_end_tokens == floor + len(tm.requests[-1].text)
        await append(stub, sid, text="z", max_output_tokens=0)
        assert tm.requests[-1].session_params == {"id": sid}

    run(scenario, FakeTokenizerManager(rewind_hook=True))


def test_rewind_bounds_and_in_flight(rewind_hook):
    async def scenario(stub, tm):
        code = grpc.StatusCode
        tm.replies = ["Hello!", "a long answer"]
        sid = (await open_session(stub)).session_id
        assert (await rewind(stub, sid, 0)).position_tokens == 0  # empty session: nothing to drop
        first = (await append(stub, sid, text="hi", max_output_tokens=16))[-1].done
        past = await code_of(rewind(stub, sid, first.position_tokens + 1))
        assert past[0] == code.OUT_OF_RANGE and f"holds {first.position_tokens} tokens" in past[1]
        # Without a system prompt the first Append's input is the floor (SGLang protects it).
        below = await code_of(rewind(stub, sid, first.input_end_tokens - 1))
        assert below[0] == code.OUT_OF_RANGE and f"first {first.input_end_tokens} tokens" in below[1]
        assert (await rewind(stub, sid, first.input_end_tokens)).dropped_tokens == first.output_tokens
        call = stub.Append(engine_pb2.AppendRequest(session_id=sid, text="go", max_output_tokens=64))
        assert (await call.read()).delta.text == "a"
        busy = await code_of(rewind(stub, sid, first.input_end_tokens))
        assert busy[0] == code.FAILED_PRECONDITION and "in flight" in busy[1]
        call.cancel()

    run(scenario, FakeTokenizerManager(rewind_hook=True, step_delay_s=0.05))


def test_an_aborted_append_carries_its_rewind_again(rewind_hook):
    async def scenario(stub, tm):
        tm.replies = ["Hello!", "a long answer", "ok"]
        sid = (await open_session(stub, system_prompt="sys")).session_id
        first = (await append(stub, sid, text="hi", max_output_tokens=16))[-1].done
        target = first.input_end_tokens
        await rewind(stub, sid, target)
        call = stub.Append(engine_pb2.AppendRequest(session_id=sid, text="go", max_output_tokens=64))
        assert (await call.read()).delta.text == "a"
        call.cancel()
        for _ in range(100):
            if tm.aborted:
                break
            await asyncio.sleep(0.01)
        done = (await append(stub, sid, text="hi", max_output_tokens=8))[-1].done
        # Resent (harmless if the scheduler had applied it already).
        assert tm.requests[-1].session_params == {"id": sid, "offset": target}
        assert done.input_end_tokens == target + len(tm.requests[-1].text)

    run(scenario, FakeTokenizerManager(rewind_hook=True, step_delay_s=0.05))


def test_sglang_refusing_the_offset_leaves_the_session_where_it_was(rewind_hook):
    """The servicer's process loaded the plugin but the scheduler did not apply
    the hook (HookRegistry logs a failed hook and goes on): stock refusal."""
    async def scenario(stub, tm):
        tm.replies = ["Hello!", "ok"]
        sid = (await open_session(stub, system_prompt="sys")).session_id
        first = (await append(stub, sid, text="hi", max_output_tokens=16))[-1].done
        await rewind(stub, sid, first.input_end_tokens)
        refused = await code_of(append(stub, sid, text="x", max_output_tokens=8))
        assert refused[0] == grpc.StatusCode.FAILED_PRECONDITION and "do not support offset" in refused[1]
        done = (await append(stub, sid, text="y", max_output_tokens=8))[-1].done
        assert tm.requests[-1].session_params == {"id": sid}
        assert done.input_end_tokens == first.position_tokens + len(tm.requests[-1].text)

    run(scenario, FakeTokenizerManager(rewind_hook=False))


def test_rewind_refused_by_sglangs_bounds_maps_to_out_of_range(rewind_hook):
    async def scenario(stub, tm):
        tm.replies = ["Hello!"]
        sid = (await open_session(stub, system_prompt="sys")).session_id
        first = (await append(stub, sid, text="hi", max_output_tokens=16))[-1].done
        await rewind(stub, sid, first.input_end_tokens)
        tm.sessions[sid].protected = first.position_tokens  # SGLang protects more than the servicer knows
        refused = await code_of(append(stub, sid, text="x", max_output_tokens=8))
        assert refused[0] == grpc.StatusCode.OUT_OF_RANGE and "protected prompt" in refused[1]
        assert (await stub.CloseSession(engine_pb2.CloseSessionRequest(session_id=sid))).position_tokens == \
            first.position_tokens

    run(scenario, FakeTokenizerManager(rewind_hook=True))
