"""KV slots reserved per streaming session (session_reserve.py), applied
through SGLang's own HookRegistry to SGLang 0.5.23's real allocation functions,
TokenToKVPoolAllocator, ReqToTokenPool, UnifiedRadixCache, StreamingSession and
SessionController on CPU, driven in the scheduler's order by
sglang_session_driver.py (with the rewind and row-write hooks on as well)."""

import math
import time

import pytest
from upstream import requires_sglang

pytestmark = requires_sglang

P = [1, 2, 3, 4, 5, 6]


@pytest.fixture
def context(monkeypatch):
    from sglang.srt import runtime_context
    from sglang_session_driver import cpu_context

    monkeypatch.setenv("SGLANG_DEBUG_MEMORY_POOL", "1")
    with runtime_context.use_context(cpu_context()):
        yield


@pytest.fixture
def hooked(context):
    from sglang_session_driver import applied_session_hooks

    with applied_session_hooks():
        yield


def reservation(drv, sid):
    from microturn_sglang import session_reserve

    return session_reserve.reservations_of(drv.cache.session).get(drv.cache.session, sid)


def count_global_allocs(drv):
    """Counts the allocator's own alloc calls (every trip to the free list)."""
    calls = []
    alloc = drv.allocator.alloc
    drv.allocator.alloc = lambda n: (calls.append(n), alloc(n))[1]
    return calls


def pool_invariant(drv):
    """The scheduler's idle check (invariant_checker._check_pool_invariant):
    available + evictable + protected + session-held == total, with
    session_held_tokens read through SGLang's real observer (and our hook)."""
    from sglang.srt.managers.scheduler_components.pool_stats_observer import SchedulerPoolStatsObserver

    observer = SchedulerPoolStatsObserver(
        tree_cache=drv.cache, token_to_kv_pool_allocator=drv.allocator, req_to_token_pool=drv.pool,
        session_controller=drv.controller, hisparse_coordinator=None, is_hybrid_swa=False, is_hybrid_ssm=False,
        enable_hisparse=False, full_tokens_per_layer=None, swa_tokens_per_layer=None,
        max_total_num_tokens=drv.allocator.size)
    return (drv.allocator.available_size() + drv.cache.evictable_size() + drv.cache.protected_size()
            + observer.session_held_tokens()) == drv.allocator.size


def test_turns_take_contiguous_slots_from_the_session_reservation(hooked, monkeypatch):
    from sglang_session_driver import SchedulerDriver

    monkeypatch.setenv("MICROTURN_SESSION_RESERVE_TOKENS", "32")
    drv = SchedulerDriver()
    drv.open("a")
    drv.turn("a", P, 3)  # prompt from the free list (published to the tree); decode from the reservation
    res = reservation(drv, "a")
    assert res is not None and res.granted == 32 and res.global_allocs == 1
    for step in range(4):
        drv.turn("a", [10 + step, 20 + step], 2)
    length = drv.slot("a").kv.kv_allocated_len
    row = drv.row("a", length)
    # Fresh pool: the free list hands out 1, 2, ...; the prompt took 1..6, the
    # reservation 7..38, and every later token of the session is in it, in order.
    assert row[:6] == [1, 2, 3, 4, 5, 6]
    assert row[6:] == list(range(7, 7 + length - 6))
    assert res.global_allocs == 1 and res.unused == 32 - (length - 6)
    assert drv.free_slots() == drv.global_free_slots() + res.unused
    assert pool_invariant(drv)


def test_interleaved_sessions_each_stay_contiguous(hooked, monkeypatch):
    from sglang_session_driver import SchedulerDriver

    monkeypatch.setenv("MICROTURN_SESSION_RESERVE_TOKENS", "64")
    drv = SchedulerDriver()
    for sid in ("a", "b"):
        drv.open(sid)
        drv.turn(sid, P + [7 if sid == "a" else 8], 2)
    for step in range(6):  # upstream would interleave the two sessions' slots
        for sid in ("a", "b"):
            drv.turn(sid, [10 + step, 20 + step], 2)
    for sid in ("a", "b"):
        kv = drv.slot(sid).kv
        # Past the published first prompt, every slot is the reservation's.
        tail = drv.row(sid, kv.kv_allocated_len)[kv.cache_protected_len:]
        assert len(tail) > 20 and tail == list(range(tail[0], tail[0] + len(tail))), sid
        assert reservation(drv, sid).global_allocs == 1


@pytest.mark.parametrize("turns", [30, 120])
def test_reservation_doubles_so_global_allocations_grow_with_log_length(hooked, monkeypatch, turns):
    from sglang_session_driver import SchedulerDriver

    monkeypatch.setenv("MICROTURN_SESSION_RESERVE_TOKENS", "4")
    drv = SchedulerDriver(kv_slots=4096, max_context=1024)
    drv.open("a", capacity=100_000)
    calls = count_global_allocs(drv)
    drv.turn("a", P, 2)
    granted = []
    for step in range(turns):
        drv.turn("a", [10 + step % 50, 60 + step % 50, 110 + step % 50], 2)
        granted.append(reservation(drv, "a").granted)
    res = reservation(drv, "a")
    length = drv.slot("a").kv.kv_allocated_len
    # 1 allocation for the first prompt, then the reservation: 4, 8, 16, ...
    assert len(calls) == 1 + res.global_allocs
    assert res.global_allocs <= math.ceil(math.log2(length / 4)) + 1
    assert res.global_allocs < turns / 4
    distinct = sorted(set(granted))
    assert all(b == 2 * a for a, b in zip(distinct, distinct[1:]))
    assert pool_invariant(drv)


def test_growth_beyond_the_need_stays_within_capacity_and_free_slots(hooked, monkeypatch):
    from sglang_session_driver import SchedulerDriver

    monkeypatch.setenv("MICROTURN_SESSION_RESERVE_TOKENS", "256")
    drv = SchedulerDriver(kv_slots=512)
    drv.open("small", capacity=40)  # never reserved past its declared 40 tokens
    drv.turn("small", P, 2)
    assert reservation(drv, "small").granted + 6 <= 40
    drv.open("big", capacity=100_000)
    free = drv.global_free_slots()
    drv.turn("big", P + [7], 2)
    # Its prompt matches [1..6] in the tree, so the extend takes 1 slot; at
    # the first decode step the reservation takes the 1 it needs plus at most
    # half of what is then free (nothing is evicted for the speculative part).
    assert reservation(drv, "big").granted == 1 + (free - 1 - 1) // 2
    for step in range(40):
        drv.turn("big", [10 + step, 20 + step, 30 + step], 2)
    assert pool_invariant(drv)
    assert drv.free_slots() + drv.cache.evictable_size() + drv.cache.protected_size() + sum(
        drv.slot(s).kv.kv_allocated_len - drv.slot(s).kv.cache_protected_len for s in ("small", "big")) == 512


def test_without_the_reservation_every_extend_and_decode_step_goes_to_the_free_list(hooked, monkeypatch):
    from sglang_session_driver import SchedulerDriver

    from microturn_sglang import session_reserve

    monkeypatch.setenv(session_reserve.RESERVE_SWITCH_ENV, "0")
    drv = SchedulerDriver(kv_slots=4096, max_context=1024)
    drv.open("a")
    calls = count_global_allocs(drv)
    drv.turn("a", P, 2)
    for step in range(30):
        drv.turn("a", [10 + step, 60 + step, 110 + step], 2)
    assert len(calls) == 31 * 2  # one extend + one decode step per turn
    assert reservation(drv, "a") is None


def test_rewind_then_append_reuses_the_freed_slots(hooked, monkeypatch):
    from sglang_session_driver import SchedulerDriver

    monkeypatch.setenv("MICROTURN_SESSION_RESERVE_TOKENS", "64")
    drv = SchedulerDriver()
    drv.open("s")
    drv.turn("s", P, 3)
    drv.turn("s", [7, 8, 9], 4)
    slot = drv.slot("s")
    allocated = slot.kv.kv_allocated_len
    before = drv.row("s", allocated)
    global_free = drv.global_free_slots()
    res = reservation(drv, "s")
    unused = res.unused

    req = drv.submit("s", [40, 41, 42], 2, offset=8)
    drv.match(req)
    # The dropped tail [8, allocated) went to the front of the reservation, not the free list.
    assert drv.global_free_slots() == global_free
    assert res.unused == unused + (allocated - 8)
    drv.run_turn(req)
    after = drv.row("s", slot.kv.kv_allocated_len)
    assert after[:8] == before[:8]
    reused = min(len(after), allocated) - 8
    assert after[8:8 + reused] == before[8:8 + reused]  # the same slots, in the same order
    assert drv.global_free_slots() == global_free and res.global_allocs == 1
    assert pool_invariant(drv)


def test_close_reap_and_abort_return_everything_after_many_mixed_sessions(hooked, monkeypatch):
    from sglang_session_driver import SchedulerDriver

    from microturn_sglang import session_reserve

    monkeypatch.setenv("MICROTURN_SESSION_RESERVE_TOKENS", "8")
    drv = SchedulerDriver(kv_slots=2048, rows=16, max_context=512)
    total = drv.free_slots()
    for round_ in range(3):
        sids = [f"m{round_}-{i}" for i in range(6)]
        for i, sid in enumerate(sids):
            drv.open(sid)
            drv.turn(sid, [1, 2, 3, 4, 5, 6, 100 + i], 2)  # shares [1..6] through the tree
            for step in range(3 + i):
                drv.turn(sid, [200 + step, 300 + i], 2)
            assert pool_invariant(drv)
        drv.turn(sids[1], [50, 51], 2, offset=9)  # rewind
        aborted = drv.submit(sids[2], [60, 61, 62], 3)
        drv.run_turn(aborted, abort_after_prefill=True)  # the slot is dropped: its reservation goes back
        assert drv.slot(sids[2]) is None and reservation(drv, sids[2]) is None
        drv.turn(sids[2], [63], 2)  # re-prefills on a new slot, new reservation
        in_flight = drv.submit(sids[3], [70, 71], 3)
        drv.prefill(in_flight)
        drv.close(sids[3])  # deferred until the turn finishes
        assert reservation(drv, sids[3]) is not None
        drv.run_turn(in_flight, prefilled=True)
        for sid in (sids[4], sids[5]):
            drv.controller.get(sid).timeout = 0.0  # idle past its timeout
        drv.controller.maybe_reap(time.monotonic() + 10 * (round_ + 1))  # finishes the deferred close, reaps the idle two
        assert all(drv.controller.get(s) is None for s in sids[3:])
        assert pool_invariant(drv)
        for sid in sids[:3]:
            drv.close(sid)
        assert drv.free_slots() + drv.cache.evictable_size() == total
        assert session_reserve.unused_reserved_tokens(drv.cache) == 0
        assert drv.global_free_slots() + drv.cache.evictable_size() == total
        assert drv.cache.protected_size() == 0 and drv.pool.available_size() == drv.pool.size
        assert not session_reserve.reservations_of(drv.cache.session).by_sid
        assert not session_reserve.reservations_of(drv.cache.session).sid_by_kv
        assert pool_invariant(drv)


def test_plain_requests_in_a_mixed_batch_get_what_upstream_gives_them(hooked, monkeypatch):
    from sglang_session_driver import SchedulerDriver

    monkeypatch.setenv("MICROTURN_SESSION_RESERVE_TOKENS", "16")
    drv = SchedulerDriver()
    drv.open("a")
    drv.turn("a", P, 3)
    drv.turn("a", [10, 20, 30], 2)
    drv.open("b")
    session_turn = drv.submit("a", [30, 31, 32], 2)
    plain = drv.plain_request("plain", [1, 2, 3, 4, 5, 6, 7, 8, 9], 2)
    first_turn = drv.submit("b", [1, 2, 3, 40], 2)
    for req in (session_turn, plain, first_turn):
        drv.match(req)
    res = reservation(drv, "a")
    reserved_head = res.free[:4].tolist()
    free_head = drv.allocator.free_pages[:4].tolist()
    calls = count_global_allocs(drv)
    drv.prefill(session_turn, plain, first_turn)
    out = drv.last_out_cache_loc.tolist()
    # One trip to the free list, for the two other requests' 3 + 1 tokens:
    # exactly the head upstream's alloc_token_slots hands out, in request order.
    assert calls == [4]
    assert out == reserved_head + free_head
    assert drv.pool.req_to_token[plain.kv.req_pool_idx, 6:9].tolist() == free_head[:3]
    assert drv.pool.req_to_token[first_turn.kv.req_pool_idx, 3:4].tolist() == free_head[3:]


def test_batches_without_session_turns_and_paged_allocators_are_upstream_id_for_id(context):
    from sglang_session_driver import SchedulerDriver, applied_session_hooks

    from microturn_sglang import session_reserve

    def run(page_size):
        drv = SchedulerDriver(page_size=page_size)
        reqs = [drv.plain_request(f"p{i}", [1, 2, 3, 4, 5 + i, 6 + i], 3) for i in range(3)]
        drv.prefill(*reqs)
        outs = [drv.last_out_cache_loc.tolist()]
        for req in reqs:
            drv.run_turn(req, prefilled=True)
        outs.append(drv.global_free_slots())
        drv.open("a")
        drv.turn("a", P, 3)
        for step in range(3):
            drv.turn("a", [10 + step, 20 + step], 2)
        outs.append(drv.row("a", drv.slot("a").kv.kv_allocated_len))
        return outs, session_reserve.unused_reserved_tokens(drv.cache)

    upstream = {page_size: run(page_size)[0] for page_size in (1, 4)}
    with applied_session_hooks():
        hooked = {page_size: run(page_size) for page_size in (1, 4)}
    # Requests outside sessions: the same slots, page size 1 and 4.
    for page_size in (1, 4):
        assert hooked[page_size][0][:2] == upstream[page_size][:2]
    # Page size 1: the session holds a reservation; page size 4: none, and
    # the session's row has upstream's ids.
    assert hooked[1][1] > 0
    assert hooked[4][1] == 0 and hooked[4][0][2] == upstream[4][2]


def session_after_two_turns(monkeypatch, reserve_tokens: int, kv_slots: int):
    """A small pool with session "a" past its published prompt, holding a reservation."""
    from sglang_session_driver import SchedulerDriver

    monkeypatch.setenv("MICROTURN_SESSION_RESERVE_TOKENS", str(reserve_tokens))
    drv = SchedulerDriver(kv_slots=kv_slots, max_context=256)
    drv.open("a", capacity=100_000)
    drv.turn("a", P, 2)
    drv.turn("a", [7, 8], 2)
    return drv, reservation(drv, "a")


def test_out_of_memory_raises_upstreams_error_and_gives_the_batch_slots_back(hooked, monkeypatch):
    drv, res = session_after_two_turns(monkeypatch, reserve_tokens=4, kv_slots=48)
    free, unused = drv.global_free_slots(), res.unused
    plain = drv.plain_request("plain", [90, 91, 92], 2)
    session_turn = drv.submit("a", list(range(100, 100 + free + unused)), 2)  # more than the pool has
    for req in (plain, session_turn):
        drv.match(req)
    with pytest.raises(RuntimeError, match="Out of memory"):
        drv.prefill(plain, session_turn)
    # The plain request's slots went back to the free list, the reservation kept what it had.
    assert drv.global_free_slots() == free and res.unused == unused
    assert pool_invariant(drv)


def test_unused_reserved_slots_are_reclaimed_before_anything_fails_or_is_evicted(hooked, monkeypatch):
    drv, res = session_after_two_turns(monkeypatch, reserve_tokens=256, kv_slots=128)
    assert res.unused > 40  # half of what was free
    evictable = drv.cache.evictable_size()
    # SGLang's own decode capacity check (what decides retraction) sees the slack.
    need = drv.global_free_slots() + 10
    assert drv.allocator.check_decode_capacity(num_tokens=need, tree_cache=drv.cache)
    assert drv.global_free_slots() >= need and drv.cache.evictable_size() == evictable
    # Admission (SGLang's PrefillBudget) counts the slack like evictable slots.
    budget = drv.allocator.create_prefill_budget(drv.cache)
    assert budget._available_and_evictable() == drv.free_slots() + drv.cache.evictable_size()
    # A plain request larger than the free list gets served from the slack.
    big = drv.plain_request("big", range(500, 500 + drv.free_slots() - 5), 1)
    drv.prefill(big)
    drv.finish(big)
    assert pool_invariant(drv)
    drv.turn("a", [9, 10], 2)  # the session grows its reservation again
    drv.close("a")
    assert drv.global_free_slots() + drv.cache.evictable_size() == 128
