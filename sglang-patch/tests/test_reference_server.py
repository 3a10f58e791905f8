import os
import subprocess
import sys

import grpc

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
            health = engine_pb2_grpc.StreamingSessionStub(channel).Health(engine_pb2.HealthRequest(), timeout=30)
        assert health.serving and health.capabilities.engine == "sglang-patch"
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0
