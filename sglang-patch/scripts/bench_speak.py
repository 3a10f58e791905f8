"""CPU benchmark: cost per output token of the reference engine, silent and
speaking (flow head + streaming vocoder), on the tiny random-weight config the
tests use, with each MoE path of the reference server. One thread, as the
server runs.

Run: .venv/bin/python sglang-patch/scripts/bench_speak.py [--tokens 64] [--turns 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("TRITON_INTERPRET", "1")  # gather+gemv runs under Triton's interpreter on CPU

import torch  # noqa: E402

from microturn_sglang.interaction_model import InteractionModelConfig, MicroturnInteractionModel  # noqa: E402
from microturn_sglang.reference_engine import AUDIO_SAMPLES_PER_TOKEN, ChunkInput, ReferenceEngine  # noqa: E402
from microturn_sglang.vocoder import StreamingVocoder  # noqa: E402

MOE_PATHS = {"torch": 0, "gather-gemv": InteractionModelConfig.moe_threshold_tokens}
TOKEN_AUDIO_MS = 1000.0 * AUDIO_SAMPLES_PER_TOKEN / 16_000


def ms_per_token(engine: ReferenceEngine, speaking: bool, tokens: int, turns: int) -> float:
    sid = "speaks" if speaking else "silent"
    engine.open(sid, audio_output=speaking)
    samples = []
    for seq in range(turns + 1):
        engine.rewind(sid, 0)
        done = list(engine.append(sid, ChunkInput(seq=0, text="hello", max_output_tokens=tokens)))[-1]
        if seq:  # the first turn warms up
            samples.append((done.turn_ms - done.append_ms) / done.output_tokens)
    engine.close(sid)
    return statistics.median(samples)


def parts_ms(model: MicroturnInteractionModel, steps: int, repeats: int = 200) -> tuple[float, float]:
    """(flow head, vocoder) ms for one token's frame."""
    cond = torch.randn(1, model.config.dim, generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    frame = model.audio_head.sample(cond, steps=steps, generator=gen)
    t0 = time.perf_counter()
    for _ in range(repeats):
        model.audio_head.sample(cond, steps=steps, generator=gen)
    head = (time.perf_counter() - t0) * 1000 / repeats
    voice = StreamingVocoder()
    voice.push(frame)
    t0 = time.perf_counter()
    for _ in range(repeats):
        voice.push(frame)
    return head, (time.perf_counter() - t0) * 1000 / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64, help="output tokens per micro-turn")
    parser.add_argument("--turns", type=int, default=5, help="timed micro-turns per case (median)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"reference engine, tiny config, {args.tokens} output tokens per turn, "
          f"median of {args.turns} turns; one token speaks {TOKEN_AUDIO_MS} ms")
    print(f"{'MoE path':>12} {'silent ms/token':>16} {'speaking ms/token':>18} {'audio overhead':>15} {'real-time factor':>17}")
    for name, threshold in MOE_PATHS.items():
        model = MicroturnInteractionModel(InteractionModelConfig(moe_threshold_tokens=threshold)).eval()
        engine = ReferenceEngine(model, num_slots=4096)
        silent = ms_per_token(engine, False, args.tokens, args.turns)
        speaking = ms_per_token(engine, True, args.tokens, args.turns)
        print(f"{name:>12} {silent:>16.2f} {speaking:>18.2f} {speaking - silent:>12.2f} ms "
              f"{speaking / TOKEN_AUDIO_MS:>17.2f}")
    head, vocoder = parts_ms(model, engine.audio_flow_steps)
    print(f"per spoken token: flow head ({engine.audio_flow_steps} Euler steps) {head:.2f} ms, "
          f"vocoder ({engine.vocoder_iterations} Griffin-Lim iterations) {vocoder:.2f} ms")


if __name__ == "__main__":
    main()
