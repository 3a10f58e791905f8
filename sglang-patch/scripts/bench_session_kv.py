"""CPU benchmark: per-append cost of the session bookkeeping at 10 s (50 chunks)
and 10 min (3,000 chunks) of 200 ms chunks of 16 tokens, next to a model of the
upstream per-chunk prefix-row rewrite (copy of the whole index row, O(length)).

Run: .venv/bin/python sglang-patch/scripts/bench_session_kv.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from microturn_sglang.session_kv import SessionKvTable  # noqa: E402
from microturn_sglang.slot_pool import SlotPool  # noqa: E402

TOKENS_PER_CHUNK = 16
CHUNKS = {"10 s": 50, "10 min": 3000}
SESSIONS = 32  # other live sessions share the pool, as in a busy engine
REPEATS = 20


def time_appends(n_chunks: int) -> tuple[float, float]:
    """Returns (mean ns per append over the whole session, mean ns over its last 50)."""
    all_ns: list[float] = []
    tail_ns: list[float] = []
    for _ in range(REPEATS):
        table = SessionKvTable(SlotPool(1 << 22), default_capacity_tokens=1024)
        for i in range(SESSIONS):
            table.open(f"other{i}")
        table.open("s")
        samples = []
        for _ in range(n_chunks):
            t0 = time.perf_counter_ns()
            table.begin_append("s")
            table.append("s", TOKENS_PER_CHUNK)
            table.end_append("s")
            samples.append(time.perf_counter_ns() - t0)
        all_ns.append(statistics.fmean(samples))
        tail_ns.append(statistics.fmean(samples[-50:]))
    return statistics.median(all_ns), statistics.median(tail_ns)


def time_row_rewrite(n_chunks: int) -> float:
    """ns for the last chunk when every chunk re-copies the session's index row."""
    from array import array

    row = array("i")
    last = []
    for _ in range(REPEATS):
        row = array("i")
        for c in range(n_chunks):
            t0 = time.perf_counter_ns()
            prefix = array("q", row)  # row[:prefix_len].to(int64)
            row = array("i", prefix)  # write prefix back, then the new slots
            row.extend(range(c * TOKENS_PER_CHUNK, (c + 1) * TOKENS_PER_CHUNK))
            dt = time.perf_counter_ns() - t0
        last.append(dt)
    return statistics.median(last)


def main() -> None:
    print(f"session bookkeeping, {TOKENS_PER_CHUNK} tokens per 200 ms chunk, {SESSIONS} other sessions")
    print(f"{'session':>8} {'chunks':>7} {'tokens':>7} {'ns/append (mean)':>17} {'ns/append (last 50)':>20} {'O(len) row copy ns, CPU model':>31}")
    results = {}
    for label, n in CHUNKS.items():
        mean_ns, tail_ns = time_appends(n)
        rewrite_ns = time_row_rewrite(n)
        results[label] = tail_ns
        print(f"{label:>8} {n:>7} {n * TOKENS_PER_CHUNK:>7} {mean_ns:>17.0f} {tail_ns:>20.0f} {rewrite_ns:>31.0f}")
    ratio = results["10 min"] / results["10 s"]
    print(f"per-append cost ratio, 10 min / 10 s (last 50 appends): {ratio:.2f}x")


if __name__ == "__main__":
    main()
