import random

import pytest

from microturn_sglang.session_kv import (
    CapacityExceeded,
    KvPoolExhausted,
    RewindOutOfRange,
    SessionBusy,
    SessionExists,
    SessionKvTable,
    SessionNotFound,
)
from microturn_sglang.slot_pool import SlotPool


class FakeClock:
    def __init__(self):
        self.now_ms = 0.0

    def __call__(self):
        return self.now_ms


def make_table(num_slots=1 << 16, **kw):
    clock = FakeClock()
    relocations = []
    table = SessionKvTable(SlotPool(num_slots), clock_ms=clock, on_relocate=relocations.append, **kw)
    return table, clock, relocations


def test_appends_write_into_place_without_allocating():
    table, _, _ = make_table()
    table.open("a", capacity_tokens=1024)
    allocs = table.pool.stats.alloc_calls
    ranges = [table.append("a", 16) for _ in range(64)]
    assert table.pool.stats.alloc_calls == allocs
    assert [r.start for r in ranges] == [16 * i for i in range(64)]
    assert table.get("a").slots.length == 1024


def test_growth_is_geometric_so_allocations_are_logarithmic():
    table, _, _ = make_table(num_slots=1 << 20)
    table.open("a", capacity_tokens=64)
    table.open("b", capacity_tokens=64)  # sits right after "a": forces relocation
    for _ in range(3000):
        table.append("a", 16)
        table.append("b", 16)
    # 64 -> 65536 in doublings: 10 growth steps per session, each one alloc or in-place.
    pool = table.pool.stats
    growths = pool.alloc_calls + pool.grown_in_place - 2
    assert growths <= 2 * 10
    assert table.get("a").capacity == 65536
    assert table.get("a").length == 48000


def test_relocation_reports_the_copy_and_keeps_length():
    table, _, relocations = make_table()
    table.open("a", capacity_tokens=32)
    table.open("b", capacity_tokens=32)
    table.append("a", 32)
    table.append("a", 1)  # "b" blocks in-place growth
    assert len(relocations) == 1
    assert relocations[0].src == 0 and relocations[0].length == 32
    a = table.get("a")
    assert a.capacity == 64 and a.length == 33 and a.start == relocations[0].dst
    assert table.pool.free_slots == table.pool.num_slots - 64 - 32


def test_a_relocation_whose_copy_fails_leaves_the_session_in_place_and_frees_the_new_range():
    def fail(_relocation):
        raise RuntimeError("copy failed")

    table = SessionKvTable(SlotPool(1024), on_relocate=fail)
    table.open("a", capacity_tokens=32)
    table.open("b", capacity_tokens=32)
    table.append("a", 32)
    with pytest.raises(RuntimeError, match="copy failed"):
        table.append("a", 1)  # "b" blocks in-place growth: a relocation, whose copy fails
    a = table.get("a")
    assert (a.start, a.capacity, a.length) == (0, 32, 32)
    assert table.pool.free_slots == 1024 - 64
    table.close("a")
    table.close("b")
    assert table.pool.free_slots == 1024


def test_grow_in_place_when_neighbour_free():
    table, _, relocations = make_table()
    table.open("a", capacity_tokens=32)
    table.append("a", 40)
    assert not relocations
    assert table.get("a").start == 0 and table.get("a").capacity == 64
    assert table.pool.stats.grown_in_place == 1


def test_rewind_bounds_and_reuse_of_slots():
    table, _, _ = make_table()
    table.open("a", capacity_tokens=256)
    table.append("a", 10)
    table.protect_prefix("a")
    first = table.append("a", 20)
    assert table.rewind("a", 15) == 15
    again = table.append("a", 5)
    assert again.start == first.start + 5  # same slots, no new allocation
    with pytest.raises(RewindOutOfRange):
        table.rewind("a", 21)
    with pytest.raises(RewindOutOfRange):
        table.rewind("a", 9)
    assert table.rewind("a", 20) == 0
    assert table.rewind("a", 10) == 10


def test_errors_are_typed():
    table, _, _ = make_table(num_slots=1024)
    with pytest.raises(SessionNotFound):
        table.append("missing", 1)
    table.open("a", capacity_tokens=128)
    with pytest.raises(SessionExists):
        table.open("a")
    with pytest.raises(CapacityExceeded):
        table.open("big", capacity_tokens=4096)
    with pytest.raises(KvPoolExhausted):
        for i in range(20):
            table.open(f"s{i}", capacity_tokens=128)
    with pytest.raises(CapacityExceeded):
        table.append("a", 2000)


def test_one_append_in_flight():
    table, _, _ = make_table()
    table.open("a")
    table.begin_append("a")
    with pytest.raises(SessionBusy):
        table.begin_append("a")
    table.end_append("a")
    table.begin_append("a")


def test_idle_timeout_closes_only_idle_sessions_not_in_flight():
    table, clock, _ = make_table()
    table.open("idle", idle_timeout_ms=1000)
    table.open("busy", idle_timeout_ms=1000)
    table.open("active", idle_timeout_ms=1000)
    table.begin_append("busy")
    clock.now_ms = 900
    table.append("active", 1)
    clock.now_ms = 1500
    assert table.reap_idle() == ["idle"]
    assert "busy" in table and "active" in table
    clock.now_ms = 2000
    table.end_append("busy")
    clock.now_ms = 3500
    assert sorted(table.reap_idle()) == ["active", "busy"]
    assert table.pool.free_slots == table.pool.num_slots


def test_no_leak_after_10000_random_operations():
    rng = random.Random(7)
    table, _, _ = make_table(num_slots=1 << 18, default_capacity_tokens=64)
    open_ids = []
    next_id = 0
    for _ in range(10_000):
        op = rng.random()
        if op < 0.15 or not open_ids:
            sid = f"s{next_id}"
            next_id += 1
            table.open(sid, capacity_tokens=rng.choice([16, 64, 256]))
            open_ids.append(sid)
        elif op < 0.7:
            sid = rng.choice(open_ids)
            if table.get(sid).length < 20_000:
                table.append(sid, rng.randint(0, 40))
        elif op < 0.9:
            sid = rng.choice(open_ids)
            table.rewind(sid, rng.randint(0, table.get(sid).length))
        else:
            sid = open_ids.pop(rng.randrange(len(open_ids)))
            table.close(sid)
        used = sum(table.get(s).capacity for s in open_ids)
        assert table.pool.used_slots == used
    for sid in open_ids:
        table.close(sid)
    assert table.pool.free_slots == table.pool.num_slots
    assert table.pool.free_ranges == 1  # fully coalesced: no fragmentation left behind


def test_pool_coalesces_and_rejects_double_free():
    pool = SlotPool(100)
    a, b, c = pool.alloc(10), pool.alloc(20), pool.alloc(30)
    pool.free(a, 10)
    pool.free(c, 30)
    assert pool.free_ranges == 2  # [0,10) and [30,100)
    pool.free(b, 20)
    assert pool.free_ranges == 1 and pool.largest_free_range == 100
    with pytest.raises(ValueError):
        pool.free(0, 10)


def test_best_fit_limits_fragmentation():
    pool = SlotPool(1000)
    starts = [pool.alloc(100) for _ in range(10)]
    pool.free(starts[1], 100)  # hole of 100
    pool.free(starts[5], 100)
    pool.free(starts[6], 100)  # hole of 200
    assert pool.alloc(150) == starts[5]  # best fit picks the 200 hole, keeps the 100 hole whole
    assert pool.alloc(100) == starts[1]
