"""CPU reference server for microturn.v1.StreamingSession with the tiny
random-weight interaction model, so the TypeScript adapter is tested over
real gRPC against real Python.

    python -m microturn_sglang.reference_server --port 50151 [--host 127.0.0.1]

Prints one line ``listening on HOST:PORT`` when ready (``--port 0`` picks a free port).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from concurrent import futures

import grpc
import torch

from microturn_sglang.engine_servicer import StreamingSessionServicer
from microturn_sglang.gen.microturn.v1 import engine_pb2_grpc
from microturn_sglang.interaction_model import InteractionModelConfig, MicroturnInteractionModel
from microturn_sglang.reference_engine import ReferenceEngine

REAP_INTERVAL_S = 1.0


def build_server(engine: ReferenceEngine, host: str, port: int, workers: int = 16) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    engine_pb2_grpc.add_StreamingSessionServicer_to_server(StreamingSessionServicer(engine), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind {host}:{port}")
    return server, bound


# A random-weight model's speech is noise many times full scale; limited to
# -20 dBFS, a level nobody's ears pay for a pipeline check.
RANDOM_SPEECH_CEILING = 0.1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--num-slots", type=int, default=1 << 15, help="KV slots in the pool (tokens)")
    parser.add_argument("--capacity-tokens", type=int, default=1024, help="default reservation per session")
    parser.add_argument("--idle-timeout-ms", type=int, default=60_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--moe-path", choices=["torch", "gather-gemv"], default="torch",
        help="experts on CPU: the per-expert torch path (~5 ms/token) or the gather+gemv "
             "Triton kernels under the interpreter (~70 ms/token; exercises the kernel)",
    )
    args = parser.parse_args(argv)

    if not torch.cuda.is_available():
        # The gather+gemv kernels run under Triton's interpreter on CPU.
        os.environ.setdefault("TRITON_INTERPRET", "1")
    torch.set_num_threads(1)
    threshold = 0 if args.moe_path == "torch" else InteractionModelConfig.moe_threshold_tokens
    model = MicroturnInteractionModel(InteractionModelConfig(seed=args.seed, moe_threshold_tokens=threshold)).eval()
    # The model's weights are random, so its speech is noise: limited to RANDOM_SPEECH_CEILING.
    engine = ReferenceEngine(model, num_slots=args.num_slots, default_capacity_tokens=args.capacity_tokens,
                             idle_timeout_ms=args.idle_timeout_ms, speech_ceiling=RANDOM_SPEECH_CEILING)
    server, port = build_server(engine, args.host, args.port)
    server.start()

    stop = threading.Event()

    def reap() -> None:
        while not stop.wait(REAP_INTERVAL_S):
            engine.reap_idle()

    threading.Thread(target=reap, name="idle-reaper", daemon=True).start()

    def shutdown(*_):
        stop.set()
        server.stop(grace=2.0)

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    print(f"listening on {args.host}:{port}", flush=True)
    server.wait_for_termination()
    return 0


if __name__ == "__main__":
    sys.exit(main())
