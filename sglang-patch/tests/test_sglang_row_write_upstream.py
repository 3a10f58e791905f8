"""session_row_write.py against SGLang 0.5.23's real alloc_for_extend, pools
and radix cache on CPU: a streaming-session turn's prefix is neither copied nor
rewritten, and the req-to-token rows and the allocator end up exactly as
upstream leaves them, also in a batch mixing a session turn with new requests."""

import pytest
from upstream import requires_sglang

pytestmark = requires_sglang


@pytest.fixture
def context(monkeypatch):
    from sglang.srt import runtime_context
    from sglang_session_driver import cpu_context

    # The allocators check page alignment of last_loc and unique out indices.
    monkeypatch.setenv("SGLANG_DEBUG_MEMORY_POOL", "1")
    with runtime_context.use_context(cpu_context()):
        yield


def scenario(drv, page_size=1):
    """Session turns, then one extend batch holding a session turn, a new
    request and a session's first turn; returns what alloc_for_extend left."""
    from array import array

    from sglang.srt.managers.schedule_batch import Req
    from sglang.srt.sampling.sampling_params import SamplingParams

    drv.open("a")
    drv.turn("a", [1, 2, 3, 4, 5, 6], 3)
    for step in range(3):
        drv.turn("a", [10 + step, 20 + step, 30 + step], 2)
    drv.open("b")
    session_turn = drv.submit("a", [30, 31, 32], 2)
    sampling = SamplingParams(max_new_tokens=2)
    sampling.normalize(None)
    plain = Req("plain", None, array("q", [1, 2, 3, 4, 5, 6, 7, 8, 9]), sampling)  # shares a published prefix
    first_turn = drv.submit("b", [1, 2, 3, 40], 2)
    for req in (session_turn, plain, first_turn):
        drv.match(req)
    assert session_turn.kv is drv.slot("a").kv and session_turn.prefix_len == 23  # mid-page for page size 4
    assert (plain.prefix_len, first_turn.prefix_len) == ((6, 3) if page_size == 1 else (4, 0))
    writes = []
    write = drv.pool.write
    drv.pool.write = lambda index, values: (writes.append(index), write(index, values))
    drv.prefill(session_turn, plain, first_turn)
    drv.pool.write = write
    rows = {name: drv.pool.req_to_token[r.kv.req_pool_idx, : r.kv.kv_allocated_len].tolist()
            for name, r in (("session", session_turn), ("plain", plain), ("first", first_turn))}
    prefix_writes = [(row, sl.stop) for row, sl in writes if isinstance(sl, slice) and sl.start == 0 and sl.stop]
    return rows, drv.last_out_cache_loc.tolist(), drv.free_slots(), prefix_writes, session_turn.kv.req_pool_idx


@pytest.mark.parametrize("page_size", [1, 4])
def test_rows_and_allocator_match_upstream_and_the_session_prefix_is_not_rewritten(context, page_size, monkeypatch):
    from sglang_session_driver import SchedulerDriver, applied_session_hooks

    from microturn_sglang import session_reserve

    rows, out, free, prefix_writes, session_row = scenario(SchedulerDriver(page_size=page_size), page_size)
    # Upstream (no hooks, CPU writer): every prefix is written back, the session's included.
    assert (session_row, 23) in prefix_writes
    # Reservations off: the slots a turn gets are upstream's, so the rows can
    # be compared id for id (tests/test_sglang_reserve_upstream.py covers them on).
    monkeypatch.setenv(session_reserve.RESERVE_SWITCH_ENV, "0")
    with applied_session_hooks():
        hooked_rows, hooked_out, hooked_free, hooked_prefix_writes, hooked_session_row = scenario(
            SchedulerDriver(page_size=page_size), page_size)
    assert hooked_rows == rows and hooked_out == out and hooked_free == free
    assert hooked_session_row == session_row
    # Nothing writes the session row's prefix (the tree's checkpoint of a new
    # request may still write its own row through the pool).
    assert not [w for w in hooked_prefix_writes if w[0] == hooked_session_row]
    assert len(rows["session"]) == 24 + 3  # history (its last output token gets its KV now) + input and len(rows["plain"]) == 9 and len(rows["first"]) == 4


def test_with_reservations_the_rows_hold_what_the_batch_allocated_and_nothing_leaks(context):
    from sglang_session_driver import SchedulerDriver, applied_session_hooks

    rows, out, free, _, session_row = scenario(SchedulerDriver())
    with applied_session_hooks():
        drv = SchedulerDriver()
        hooked_rows, hooked_out, hooked_free, hooked_prefix_writes, hooked_session_row = scenario(drv)
        # Same slots held (rows + tree + reservations' unused ones counted free).
        assert hooked_free == free and hooked_session_row == session_row
        assert {k: len(v) for k, v in hooked_rows.items()} == {k: len(v) for k, v in rows.items()}
        # Rows are the prefixes they had plus the batch's out_cache_loc, in request order.
        assert hooked_rows["session"][:23] == drv.row("a", 23)
        assert hooked_out == hooked_rows["session"][23:] + hooked_rows["plain"][6:] + hooked_rows["first"][3:]
        assert len(set(hooked_out)) == len(hooked_out)
        assert not [w for w in hooked_prefix_writes if w[0] == hooked_session_row]


def test_borrower_gets_only_its_last_prefix_index(context):
    import torch
    from sglang.srt.mem_cache import allocation
    from sglang_session_driver import SchedulerDriver, applied_session_hooks
    from types import SimpleNamespace

    with applied_session_hooks():
        drv = SchedulerDriver()
        drv.open("a")
        drv.turn("a", [1, 2, 3, 4, 5, 6], 3)
        req = drv.submit("a", [7, 8], 1)
        drv.match(req)
        batch = SimpleNamespace(reqs=[req], tree_cache=drv.cache, is_dllm=lambda: False, hisparse_coordinator=None,
                                req_to_token_pool=drv.pool)
        full = allocation._prefix_kv_indices(batch, req)  # outside alloc_for_extend: unchanged
        assert full.tolist() == drv.row("a", req.prefix_len)
        seen = []
        captured = allocation._prefix_kv_indices

        def alloc_spy(batch):
            seen.append(captured(batch, batch.reqs[0]))
            raise RuntimeError("stop after the prefix read")

        from microturn_sglang import session_row_write

        with pytest.raises(RuntimeError, match="stop after"):
            session_row_write.alloc_for_extend_marking_borrowers(alloc_spy, batch)
        assert seen[0].tolist() == full[-1:].tolist() and seen[0].dtype == torch.int64
