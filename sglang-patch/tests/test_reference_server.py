import os
import subprocess
import sys
import time

import grpc
import pytest

from microturn_sglang.gen.microturn.v1 import engine_pb2, engine_pb2_grpc

PATCH_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_server_process_prints_address_and_serves():
    env = {**os.environ, "PYTHONPATH": PATCH_ROOT}
    proc = subprocess.Popen(
        [sys.executable, "-m", "microturn_sglang.reference_server", "--port", "0", "--host", "127.0.0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on 127.0.0.1:"), (line, proc.stderr.read() if proc.poll() is not None else "")
        port = int(line.rsplit(":", 1)[1])
        assert port > 0
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = engine_pb2_grpc.StreamingSessionStub(channel)
            health = stub.Health(engine_pb2.HealthRequest(), timeout=30)
            assert health.serving and health.capabilities.engine == "sglang-patch"
            # It speaks when asked: 200 samples (12.5 ms at 16 kHz) per spoken output token.
            speaking = stub.OpenSession(engine_pb2.OpenSessionRequest(protocol_version="1.0", audio_output=True))
            *deltas, last = stub.Append(engine_pb2.AppendRequest(session_id=speaking.session_id, text="hi", max_output_tokens=4))
            ended = last.done.finish_reason in (engine_pb2.FINISH_REASON_STOP, engine_pb2.FINISH_REASON_SILENT)
            spoken = last.done.output_tokens - ended  # <end-of-turn> says nothing
            assert sum(len(d.delta.audio.pcm16) for d in deltas) == spoken * 200 * 2
            stub.CloseSession(engine_pb2.CloseSessionRequest(session_id=speaking.session_id))
            # The server's reaper closes a session idle past its timeout.
            sid = stub.OpenSession(engine_pb2.OpenSessionRequest(protocol_version="1.0", idle_timeout_ms=100)).session_id
            assert stub.Health(engine_pb2.HealthRequest()).active_sessions == 1
            time.sleep(1.6)
            with pytest.raises(grpc.RpcError) as info:
                stub.CloseSession(engine_pb2.CloseSessionRequest(session_id=sid))
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0
