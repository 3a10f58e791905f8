"""KV slots reserved per streaming session, inside SGLang 0.5.23's scheduler.

Upstream takes every turn's new KV slots from the global free list, one
``alloc_token_slots`` call per batch. With these hooks a turn that runs on its
session's record (``StreamingSession.borrowed_slot``) takes its extend and
decode slots from a reservation the session holds: slot ids taken from the
global allocator in one piece, grown x2 when exhausted, so a session makes
O(log length) trips to the global allocator instead of one per chunk.

Ownership is simple on purpose: a reserved id is the session's until a turn
takes it; from then on it is an ordinary slot of the session's row, and
whoever frees it (the radix tree after an abort or a dedup, the release at
close) gives it to the global allocator as upstream does. Only the session's
own tail frees (``_free_kv_aligned``: a rewind, stale tails, speculative
overshoot) go back into the reservation, first in line, so the next turn
reuses the same slots. Unused reserved ids go back to the global allocator
when the session's slot ends: close and idle reap (``release_session``) and
an aborted turn (``try_cache_finished_req`` dropping the slot), and under
memory pressure before the radix tree is evicted (``evict_to_free_tokens``),
which is why admission may count them as evictable.

Scope (anything else runs upstream's code unchanged): page size 1 with
SGLang's ``TokenToKVPoolAllocator`` exactly, no SWA or mamba components, the
plain extend path (not dLLM, HiSparse, NPU) and ``alloc_for_decode_default``.
Paged allocators are not served: see docs/sglang-patch.md."""

from __future__ import annotations

import contextvars
import logging
import os
import weakref
from dataclasses import dataclass
from typing import Optional

from microturn_sglang import session_row_write

DEFAULT_RESERVE_TOKENS = 256
RESERVE_TOKENS_ENV = "MICROTURN_SESSION_RESERVE_TOKENS"
# "0" turns reservations off (every call runs upstream's allocation); read per
# batch so a running server can be compared with and without.
RESERVE_SWITCH_ENV = "MICROTURN_SESSION_RESERVE"
GROWTH = 2

logger = logging.getLogger(__name__)


def initial_reserve_tokens(capacity: Optional[int]) -> int:
    """The first reservation of a session: the default (env-overridable),
    never above the session's declared capacity when it has one."""
    default = reserve_tokens_setting()
    cap = meaningful_capacity(capacity)
    return default if cap is None else max(1, min(default, cap))


def reserve_tokens_setting() -> int:
    """MICROTURN_SESSION_RESERVE_TOKENS, or the default when unset or not a
    positive integer (warned, not raised: this runs inside the scheduler's
    allocation, where an exception would take the server down)."""
    raw = os.environ.get(RESERVE_TOKENS_ENV)
    if raw is None:
        return DEFAULT_RESERVE_TOKENS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        logger.warning("%s=%r is not a positive token count; using %d", RESERVE_TOKENS_ENV, raw,
                       DEFAULT_RESERVE_TOKENS)
        return DEFAULT_RESERVE_TOKENS
    return value


def meaningful_capacity(capacity) -> Optional[int]:
    """A session's ``capacity_of_str_len`` as a token ceiling, or None when
    it says nothing (unset, zero, negative, not an int)."""
    return capacity if isinstance(capacity, int) and not isinstance(capacity, bool) and capacity > 0 else None


def plan_growth(*, need: int, granted: int, available: int, seq_after: int,
                capacity: Optional[int], initial: int) -> int:
    """How many slots to take from the global allocator when a reservation is
    ``need`` short. At least ``need`` (upstream would take those too); beyond
    that the reservation doubles (or starts at ``initial``), but the
    speculative part only uses slots that are free without evicting anything,
    at most half of them, and never holds the session past its capacity."""
    target = max(initial, granted * GROWTH - granted)
    speculative = max(0, target - need)
    speculative = min(speculative, max(0, available - need) // 2)
    if capacity is not None:
        speculative = min(speculative, max(0, capacity - seq_after))
    return need + speculative


@dataclass
class Reservation:
    """Reserved, unused slot ids of one session (int64, take order), and how
    many slots it took from the global allocator in all."""

    slot: object  # the SessionSlot it belongs to (validity check after a cache reset)
    free: object  # torch.Tensor
    granted: int = 0
    global_allocs: int = 0

    @property
    def unused(self) -> int:
        return int(self.free.shape[0])


class _SessionReservations:
    """The reservations of one StreamingSession (one tree cache), by session id."""

    def __init__(self):
        self.by_sid: dict[str, Reservation] = {}
        self.sid_by_kv: dict[int, str] = {}

    def get(self, streaming_session, sid: str) -> Optional[Reservation]:
        res = self.by_sid.get(sid)
        if res is not None and streaming_session.slots.get(sid) is not res.slot:
            # The cache was reset (slots cleared, allocator cleared with it):
            # the ids are no longer ours to give back.
            self._forget(sid)
            return None
        return res

    def for_kv(self, streaming_session, kv) -> Optional[Reservation]:
        sid = self.sid_by_kv.get(id(kv))
        if sid is None:
            return None
        res = self.get(streaming_session, sid)
        return res if res is not None and res.slot.kv is kv else None

    def create(self, sid: str, slot, device) -> Reservation:
        import torch

        res = Reservation(slot=slot, free=torch.empty((0,), dtype=torch.int64, device=device))
        self.by_sid[sid] = res
        self.sid_by_kv[id(slot.kv)] = sid
        return res

    def pop(self, sid: str) -> Optional[Reservation]:
        res = self.by_sid.get(sid)
        if res is not None:
            self._forget(sid)
        return res

    def _forget(self, sid: str) -> None:
        res = self.by_sid.pop(sid)
        if self.sid_by_kv.get(id(res.slot.kv)) == sid:
            del self.sid_by_kv[id(res.slot.kv)]


_states: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def reservations_of(streaming_session) -> _SessionReservations:
    state = _states.get(streaming_session)
    if state is None:
        state = _states[streaming_session] = _SessionReservations()
    return state


def serves(tree_cache) -> bool:
    """Whether this cache's sessions get reservations (the supported setup)."""
    from sglang.srt.mem_cache import allocation
    from sglang.srt.mem_cache.allocator.token import TokenToKVPoolAllocator

    # type() is, not isinstance: a subclass (SWA, paged, sharded) lays slots out its own way.
    return (os.environ.get(RESERVE_SWITCH_ENV, "1") != "0"
            and getattr(tree_cache, "session", None) is not None and not allocation._is_npu
            and tree_cache.page_size == 1
            and type(tree_cache.token_to_kv_pool_allocator) is TokenToKVPoolAllocator
            and not getattr(tree_cache, "is_swa_enabled", False)
            and not getattr(tree_cache, "is_mamba_enabled", False))


# -- allocation ------------------------------------------------------------------


def alloc_token_slots_from_reservations(original, tree_cache, num_tokens, *args, **kwargs):
    """AROUND allocation.alloc_token_slots: inside an extend or decode batch
    holding session turns, those turns' slots come from their reservations and
    the rest of the batch gets one global allocation, laid out in the batch's
    request order as upstream's ``out_cache_loc``."""
    plan = _batch_plan(tree_cache, num_tokens)
    if plan is None:
        return original(tree_cache, num_tokens, *args, **kwargs)
    import torch

    allocator = tree_cache.token_to_kv_pool_allocator
    state = reservations_of(tree_cache.session)
    global_n = sum(n for _, n, sid in plan if sid is None)
    # The other requests get exactly what upstream hands them for their tokens.
    shared = original(tree_cache, global_n) if global_n else None
    parts, taken, at = [], [], 0
    try:
        for req, n, sid in plan:
            if sid is None:
                parts.append(shared[at: at + n])
                at += n
                continue
            res = state.get(tree_cache.session, sid)
            if res is None:
                res = state.create(sid, tree_cache.session.slots[sid], allocator.device)
            ids = _take(original, tree_cache, res, n, req)
            taken.append((res, ids))
            parts.append(ids)
    except Exception:
        for res, ids in reversed(taken):
            res.free = torch.cat((ids, res.free))
        if shared is not None:
            allocator.free(shared)
        raise
    return torch.cat(parts) if parts else torch.empty((0,), dtype=torch.int64, device=allocator.device)


def _take(original, tree_cache, res: Reservation, n: int, req):
    import torch

    while n > res.unused:
        need = n - res.unused
        capacity = meaningful_capacity(getattr(req.session, "capacity_of_str_len", None))
        extra = plan_growth(need=need, granted=res.granted,
                            available=tree_cache.token_to_kv_pool_allocator.available_size(),
                            seq_after=req.kv.kv_allocated_len + n, capacity=capacity,
                            initial=initial_reserve_tokens(capacity))
        # original evicts (other sessions' slack first, then the radix tree)
        # for what it takes and raises upstream's out-of-memory error when
        # even that is not enough.
        token = _growing.set(res)
        try:
            new = original(tree_cache, extra)
        finally:
            _growing.reset(token)
        res.free = torch.cat((res.free, new.to(torch.int64)))
        res.granted += extra
        res.global_allocs += 1
    ids, res.free = res.free[:n], res.free[n:]
    return ids


def _batch_plan(tree_cache, num_tokens):
    """[(req, slots needed, session id or None)] for the batch being
    allocated, when it holds session turns this module serves."""
    current = _current.get()
    if current is None:
        extend = session_row_write.current_extend()
        if extend is None:
            return None
        batch, borrowers = extend
        if not borrowers:
            return None
        counts = list(batch.extend_lens)
        in_session = [id(r) in borrowers for r in batch.reqs]
    else:
        batch, per_req = current
        counts = [per_req] * len(batch.reqs)
        in_session = [True] * len(batch.reqs)
    if batch.tree_cache is not tree_cache or sum(counts) != num_tokens or not serves(tree_cache):
        return None
    session = tree_cache.session
    plan, any_session = [], False
    for req, n, flagged in zip(batch.reqs, counts, in_session):
        slot = session.borrowed_slot(req) if flagged else None
        sid = req.session.session_id if slot is not None else None
        any_session = any_session or sid is not None
        plan.append((req, n, sid))
    return plan if any_session else None


_current: contextvars.ContextVar = contextvars.ContextVar("microturn_reserve_decode", default=None)
_growing: contextvars.ContextVar = contextvars.ContextVar("microturn_reserve_growing", default=None)


def alloc_for_decode_marking_sessions(original, batch, token_per_req, *args, **kwargs):
    """AROUND allocation.alloc_for_decode_default: its one alloc_token_slots
    call serves the batch's session turns from their reservations."""
    if getattr(batch, "hisparse_coordinator", None) is not None:
        return original(batch, token_per_req, *args, **kwargs)
    token = _current.set((batch, token_per_req))
    try:
        return original(batch, token_per_req, *args, **kwargs)
    finally:
        _current.reset(token)


# -- frees and release -------------------------------------------------------------


def free_tail_into_reservation(original, streaming_session, kv, target, end):
    """AROUND StreamingSession._free_kv_aligned: a session's own tail (rewind,
    stale tail, overshoot) goes back to the front of its reservation."""
    res = reservations_of(streaming_session).for_kv(streaming_session, kv) if end > target else None
    if res is None or not serves(streaming_session.cache):
        return original(streaming_session, kv, target, end)
    import torch

    row = streaming_session.cache.req_to_token_pool.req_to_token[kv.req_pool_idx]
    res.free = torch.cat((row[target:end].to(torch.int64), res.free))


def release_with_session(original, streaming_session, session_id, *args, **kwargs):
    """AROUND StreamingSession.release_session (close, idle reap, NPU fallback)."""
    result = original(streaming_session, session_id, *args, **kwargs)
    _give_back(streaming_session, session_id)
    return result


def release_on_abort(original, streaming_session, req, *args, **kwargs):
    """AROUND StreamingSession.try_cache_finished_req: an aborted turn drops
    the session's slot; its reservation goes with it."""
    slot = streaming_session.borrowed_slot(req)
    sid = req.session.session_id if slot is not None else None
    result = original(streaming_session, req, *args, **kwargs)
    if slot is not None and streaming_session.slots.get(sid) is not slot:
        _give_back(streaming_session, sid)
    return result


def _give_back(streaming_session, session_id: str) -> None:
    res = reservations_of(streaming_session).pop(session_id)
    if res is not None and res.unused:
        streaming_session.cache.token_to_kv_pool_allocator.free(res.free)
        res.free = res.free[:0]


def reclaim_slack_before_eviction(original, allocator, tree_cache, num_tokens, *args, **kwargs):
    """AROUND BaseTokenToKVPoolAllocator.evict_to_free_tokens (every path
    that makes room: alloc_token_slots, decode capacity checks, retraction):
    unused reserved slots are speculative, so they go back to the free list
    before the radix tree loses cached prefixes, and a reservation never
    makes an allocation fail that upstream would serve."""
    if tree_cache is not None and allocator is getattr(tree_cache, "token_to_kv_pool_allocator", None):
        short = num_tokens - allocator.available_size()
        if short > 0:
            reclaim_unused(tree_cache, short)
    return original(allocator, tree_cache, num_tokens, *args, **kwargs)


def reclaim_unused(tree_cache, tokens: int) -> int:
    """Gives up to ``tokens`` unused reserved slots back to the allocator,
    largest reservations first, from their back ends (the front holds a
    rewound tail, next in line); returns how many. The reservation being grown
    right now is left alone."""
    session = getattr(tree_cache, "session", None)
    if session is None or session not in _states or tokens <= 0:
        return 0
    state = reservations_of(session)
    growing = _growing.get()
    live = [r for sid in list(state.by_sid) if (r := state.get(session, sid)) is not None and r is not growing]
    returned = 0
    for res in sorted(live, key=lambda r: r.unused, reverse=True):
        k = min(res.unused, tokens - returned)
        if k <= 0:
            break
        tree_cache.token_to_kv_pool_allocator.free(res.free[res.unused - k:])
        res.free = res.free[: res.unused - k]
        res.granted = max(0, res.granted - k)
        returned += k
    return returned


def admission_counts_slack(result, budget, *args, **kwargs):
    """AFTER PrefillBudget._available_and_evictable: the scheduler admits
    against free + evictable slots; unused reserved slots are reclaimed before
    eviction (reclaim_slack_before_eviction), so they count as evictable and
    admission sees the same total as without reservations."""
    return result + unused_reserved_tokens(budget.tree_cache)


def unused_reserved_tokens(tree_cache) -> int:
    session = getattr(tree_cache, "session", None)
    if session is None or session not in _states:
        return 0
    state = reservations_of(session)
    return sum(r.unused for sid in list(state.by_sid) if (r := state.get(session, sid)) is not None)


def session_held_with_reservations(result, observer, *args, **kwargs):
    """AFTER SchedulerPoolStatsObserver.session_held_tokens: reserved, unused
    slots are held by their sessions (the scheduler's pool invariant is
    available + evictable + protected + session-held + uncached = total)."""
    return result + unused_reserved_tokens(observer.tree_cache)
