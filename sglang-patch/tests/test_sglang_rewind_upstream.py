"""Streaming-session rewind (session_rewind.py) applied through SGLang's own
HookRegistry to SGLang 0.5.23's real Session / SessionController /
StreamingSession / UnifiedRadixCache / ReqToTokenPool / TokenToKVPoolAllocator
on CPU, driven in the scheduler's order by sglang_session_driver.py."""

import pytest
from upstream import requires_sglang

pytestmark = requires_sglang

P = [1, 2, 3, 4, 5, 6]  # the first prompt: published to the radix tree, protected


@pytest.fixture(scope="module")
def hooked():
    from sglang.srt.session.session_controller import Session
    from sglang_session_driver import applied_session_hooks

    original = Session.create_req
    with applied_session_hooks():
        assert Session.create_req is not original
        yield
    assert Session.create_req is original


@pytest.fixture
def context(hooked, monkeypatch):
    from sglang.srt import runtime_context
    from sglang_session_driver import cpu_context

    # The allocators check page alignment of last_loc and unique out indices.
    monkeypatch.setenv("SGLANG_DEBUG_MEMORY_POOL", "1")
    with runtime_context.use_context(cpu_context()):
        yield


@pytest.fixture
def drv(context):
    from sglang_session_driver import SchedulerDriver

    return SchedulerDriver()


def two_turns(drv, sid="s"):
    """P + 3 outputs, then 3 inputs + 2 outputs: 14 committed tokens."""
    drv.open(sid)
    drv.turn(sid, P, 3)
    drv.turn(sid, [7, 8, 9], 2)
    return drv.history(sid)


def test_rewind_inside_the_history_keeps_the_slot_and_frees_only_the_tail(drv):
    history = two_turns(drv)
    assert len(history) == 14
    slot = drv.slot("s")
    row_before = drv.row("s", 13)
    free_before = drv.free_slots()
    allocated = slot.kv.kv_allocated_len
    assert slot.kv.cache_protected_len == len(P)

    req = drv.submit("s", [40, 41], 2, offset=8)
    assert req.to_finish is None
    session = drv.controller.get("s")
    assert session.committed_origin_len == 8 and slot.kv.kv_committed_len == 8
    assert list(req.origin_input_ids) == history[:8] + [40, 41]
    # Upstream's in-place path: the new request shares the last one's array.
    [last] = [n.req for n in session.req_nodes.values()]
    assert req.origin_input_ids is last.origin_input_ids

    drv.match(req)
    assert req.prefix_len == 8
    assert req.kv is slot.kv and drv.slot("s") is slot  # borrowed, not re-prefilled
    assert drv.free_slots() == free_before + (allocated - 8)  # only [8, allocated) went back
    assert drv.row("s", 8) == row_before[:8]

    drv.run_turn(req)
    assert drv.history("s") == history[:8] + [40, 41] + list(req.output_ids)
    assert drv.row("s", 8) == row_before[:8]
    assert slot.kv.kv_committed_len == 8 + 2 + 2 - 1  # the last output token has no KV yet
    assert drv.free_slots() == free_before + (allocated - 8) - (slot.kv.kv_allocated_len - 8)


def test_rewind_into_the_last_output_keeps_part_of_it(drv):
    history = two_turns(drv)
    session = drv.controller.get("s")
    origin = session.committed_origin_len
    assert origin == 12
    req = drv.submit("s", [60], 1, offset=13)
    assert session.committed_origin_len == origin  # the input is kept whole
    assert list(req.origin_input_ids) == history[:13] + [60]
    drv.match(req)
    assert req.prefix_len == 13
    drv.run_turn(req)
    assert drv.history("s") == history[:13] + [60] + list(req.output_ids)


def test_rewind_to_the_end_is_a_plain_append(drv):
    history = two_turns(drv)
    req = drv.submit("s", [70, 71], 1, offset=len(history))
    drv.match(req)
    assert list(req.origin_input_ids) == history + [70, 71]
    assert req.prefix_len == drv.slot("s").kv.kv_committed_len == 13


@pytest.mark.parametrize("offset, needle", [
    (15, "past the committed end of the session (14 tokens)"),
    (-1, "past the committed end"),
    (5, "below the session's protected prompt (6 tokens"),
])
def test_out_of_range_rewinds_are_refused_and_change_nothing(drv, offset, needle):
    history = two_turns(drv)
    session, slot = drv.controller.get("s"), drv.slot("s")
    state = (session.committed_origin_len, session.committed_fill_len, slot.kv.kv_committed_len, drv.free_slots())
    req = drv.submit("s", [80], 1, offset=offset)
    assert req.to_finish is not None
    assert req.to_finish.message.startswith("Streaming session rewind refused") and needle in req.to_finish.message
    assert not session._inflight  # the session takes the next request
    assert (session.committed_origin_len, session.committed_fill_len, slot.kv.kv_committed_len,
            drv.free_slots()) == state
    assert drv.history("s") == history
    drv.turn("s", [81], 1)  # and the session goes on
    assert drv.history("s")[:15] == history + [81]


def test_rewind_without_new_tokens_or_history_is_refused(drv):
    drv.open("s")
    first = drv.submit("s", P, 2, offset=3)
    assert "no finished turn to rewind" in first.to_finish.message
    drv.turn("s", P, 2)
    empty = drv.submit("s", [], 1, offset=7)
    assert "at least one new input token" in empty.to_finish.message


def test_in_flight_and_non_streaming_keep_upstream_behaviour(drv):
    two_turns(drv)
    running = drv.submit("s", [90], 1)
    second = drv.submit("s", [91], 1, offset=8)
    assert second.to_finish.message == "Streaming session already has an active request."
    drv.run_turn(running)
    drv.open("plain", streaming=False)
    first = drv.turn("plain", [1, 2, 3], 1)
    req = drv.submit("plain", [9], 1, offset=2, after_rid=first.rid)  # upstream's copy path
    assert req.to_finish is None and list(req.origin_input_ids) == [1, 2, 9]


def test_an_aborted_rewind_turn_keeps_the_rewind_and_drops_its_input(drv):
    history = two_turns(drv)
    req = drv.submit("s", [40, 41], 2, offset=8)
    drv.run_turn(req, abort_after_prefill=True)
    assert drv.slot("s") is None  # upstream drops the slot of an aborted turn
    nxt = drv.turn("s", [50], 1)
    assert list(nxt.origin_input_ids) == history[:8] + [50]  # re-prefilled from the rewound history
    assert drv.history("s") == history[:8] + [50] + list(nxt.output_ids)


@pytest.mark.parametrize("page_size", [1, 4])
def test_no_kv_leak_over_many_appends_rewinds_and_closes(context, page_size):
    from sglang.srt.managers.schedule_batch import FINISH_ABORT
    from sglang_session_driver import SchedulerDriver

    drv = SchedulerDriver(page_size=page_size)

    total = drv.free_slots()
    for cycle in range(6):
        sid = f"s{cycle}"
        drv.open(sid)
        drv.turn(sid, P, 3)
        for step in range(8):
            length = len(drv.history(sid))
            if step % 3 == 2:
                drv.turn(sid, [100 + step], 2, offset=len(P) + (length - len(P)) // 2)
            else:
                drv.turn(sid, [100 + step, 200 + step], 2)
            kv = drv.slot(sid).kv
            assert kv.kv_committed_len <= kv.kv_allocated_len == len(drv.history(sid)) - 1
        if cycle % 3 == 1:
            drv.run_turn(drv.submit(sid, [7], 2, offset=len(P) + 1), abort_after_prefill=True)
        elif cycle % 3 == 2:
            # A rewind cancelled while waiting: its match detaches it from the
            # session (find_active_slot), the slot keeps the tail until close.
            cancelled = drv.submit(sid, [7], 2, offset=len(P) + 1)
            cancelled.to_finish = FINISH_ABORT("cancelled")
            drv.match(cancelled)
            assert cancelled.session is None and drv.slot(sid).kv.kv_committed_len <= len(P) + 1
        drv.close(sid)
        assert drv.slot(sid) is None
        # Everything not free is the tree's evictable copy of published prompts.
        assert drv.free_slots() + drv.cache.evictable_size() == total
        assert drv.cache.protected_size() == 0
    assert drv.pool.available_size() == drv.pool.size


@pytest.mark.parametrize("flag", ["is_swa_enabled", "is_mamba_enabled"])
def test_sliding_window_and_mamba_models_are_refused(drv, monkeypatch, flag):
    """The cache's own flags, set on a FULL-only cache (a real SWA or mamba
    cache needs their pools and a model config)."""
    two_turns(drv)
    monkeypatch.setattr(drv.cache, flag, True)
    req = drv.submit("s", [1], 1, offset=8)
    assert "sliding-window or mamba" in req.to_finish.message


def test_rewind_after_an_aborted_turn_has_no_slot_to_protect(drv):
    """Upstream dropped the slot with the aborted turn; a rewind then only cuts
    the token arrays, and the next turn re-prefills from the radix tree."""
    history = two_turns(drv)
    drv.run_turn(drv.submit("s", [60], 2), abort_after_prefill=True)
    assert drv.slot("s") is None
    req = drv.submit("s", [70, 71], 2, offset=3)  # below the old slot's protected prompt
    assert req.to_finish is None
    drv.match(req)
    assert req.prefix_len == 3  # [1, 2, 3] matched in the tree (published by the first turn)
    drv.run_turn(req)
    assert drv.history("s") == history[:3] + [70, 71] + list(req.output_ids)
    assert drv.slot("s").kv.cache_protected_len == 5  # a new slot publishes its first prompt again


def test_paged_rewind_to_a_mid_page_position_keeps_the_partial_page(context):
    """Page size 4 (the allocator's naive kernels on CPU): the tail is freed from
    the next page boundary, the partial page stays and the turn continues in it."""
    from sglang_session_driver import SchedulerDriver

    drv = SchedulerDriver(page_size=4)
    history = two_turns(drv)
    slot = drv.slot("s")
    assert slot.kv.cache_protected_len == 4  # the published prompt, page-aligned
    row = drv.row("s", 13)
    free = drv.free_slots()
    req = drv.submit("s", [40, 41], 2, offset=9)
    drv.match(req)
    assert req.prefix_len == 9 and req.kv is slot.kv
    assert drv.free_slots() == free + 4  # the page holding position 12; [9, 12) stays
    drv.run_turn(req)
    assert drv.history("s") == history[:9] + [40, 41] + list(req.output_ids)
    after = drv.row("s", 12)
    assert after[:9] == row[:9] and after[9:12] == row[9:12]  # the kept page's slots are reused in place
