"""CPU benchmark of SGLang 0.5.23's real allocation path for one streaming
session's turns, driven through tests/sglang_session_driver.py (real
ReqToTokenPool, TokenToKVPoolAllocator, UnifiedRadixCache, SessionController;
CPU, torch_native attention so the row writer is upstream's non-Triton one).

Per turn: 16 new input tokens (one 200 ms chunk) and 2 output tokens (one
decode step). Measured: the CPU thread time inside ``alloc_for_extend`` +
``alloc_for_decode_default`` per turn (median of the last 50 turns) and the
allocator's own ``alloc`` calls per turn (CPU thread time, median of
REPEATS interleaved runs), at 10 s (50 chunks) and 10 min
(3,000 chunks), for three setups:

- upstream: no hooks;
- rows: the plugin's rewind + row-write hooks, reservations off;
- rows+reserve: all session hooks (slots from the session's reservation).

Run (a venv where sglang.srt imports on CPU):
  cd sglang-patch && ../.venv/bin/python scripts/bench_session_alloc.py   # the default (sglang) test venv
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

TOKENS_PER_CHUNK = 16
OUTPUT_TOKENS = 2
CHUNKS = {"10 s": 50, "10 min": 3000}
TAIL = 50
REPEATS = 3  # setups interleaved, median reported: the machine is shared and noisy


def run(n_chunks: int) -> tuple[float, float, int]:
    """(median µs of allocation per turn over the last TAIL turns, allocator
    alloc calls per turn over the whole session, session length)."""
    from sglang.srt.mem_cache import allocation
    from sglang_session_driver import SchedulerDriver

    length = 8 + n_chunks * (TOKENS_PER_CHUNK + OUTPUT_TOKENS)
    drv = SchedulerDriver(kv_slots=length + 1024, rows=4, max_context=length + 64)
    spent = [0]
    calls = [0]
    alloc = drv.allocator.alloc

    def counting_alloc(n):
        calls[0] += 1
        return alloc(n)

    drv.allocator.alloc = counting_alloc
    timed = {}
    for name in ("alloc_for_extend", "alloc_for_decode_default"):
        inner = getattr(allocation, name)

        def timer(*args, _inner=inner, **kwargs):
            t0 = time.thread_time_ns()
            try:
                return _inner(*args, **kwargs)
            finally:
                spent[0] += time.thread_time_ns() - t0

        timed[name] = inner
        setattr(allocation, name, timer)
    try:
        drv.open("s", capacity=length + 64)
        drv.turn("s", list(range(1, 9)), OUTPUT_TOKENS)
        per_turn = []
        for i in range(n_chunks):
            spent[0] = 0
            drv.turn("s", [100 + (i * TOKENS_PER_CHUNK + k) % 800 for k in range(TOKENS_PER_CHUNK)], OUTPUT_TOKENS)
            per_turn.append(spent[0] / 1000)
        return statistics.median(per_turn[-TAIL:]), calls[0] / (n_chunks + 1), drv.slot("s").kv.kv_allocated_len
    finally:
        for name, inner in timed.items():
            setattr(allocation, name, inner)


def main() -> None:
    from sglang.srt import runtime_context
    from sglang_session_driver import applied_session_hooks, cpu_context

    from microturn_sglang import session_reserve

    setups = {
        "upstream": (contextlib.nullcontext, "0"),
        "rows": (applied_session_hooks, "0"),
        "rows+reserve": (applied_session_hooks, "1"),
    }
    results: dict = {}
    with runtime_context.use_context(cpu_context()):
        for _ in range(REPEATS):
            for setup, (hooks, switch) in setups.items():
                os.environ[session_reserve.RESERVE_SWITCH_ENV] = switch
                with hooks():
                    for label, n in CHUNKS.items():
                        results.setdefault((setup, label), []).append(run(n))
    print(f"{'setup':>13} {'session':>7} {'chunks':>6} {'tokens':>6} {'alloc µs/turn (median, last 50)':>24} "
          f"{'allocator calls/turn':>21}")
    median = {}
    for setup in setups:
        for label, n in CHUNKS.items():
            runs = results[setup, label]
            median[setup, label] = statistics.median(r[0] for r in runs)
            print(f"{setup:>13} {label:>7} {n:>6} {runs[0][2]:>6} {median[setup, label]:>24.1f} {runs[0][1]:>21.3f}")
    for setup in setups:
        ratio = median[setup, "10 min"] / median[setup, "10 s"]
        print(f"{setup}: per-turn allocation time, 10 min / 10 s: {ratio:.2f}x")


if __name__ == "__main__":
    main()
