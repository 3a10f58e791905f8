"""Rewind for SGLang 0.5.23 streaming sessions, inside the scheduler.

A streaming request with ``session_params.offset = p`` (upstream refuses any
non-zero offset for streaming sessions) becomes a rewind that keeps the
session's KV slot: the session's committed token arrays are cut back to ``p``,
the slot's ``kv_committed_len`` drops to ``p``, and the offset is cleared, so
the request then takes upstream's own in-place append path
(``Session._share_token_arrays``) and ``StreamingSession.try_match_prefix``
reports ``p`` as the prefix and frees only the dropped tail (``_free_tail``).

Two hooks (registered by sglang_plugin.load()):
- AFTER ``SessionController.open``: remembers which tree cache owns the new
  session's KV (``Session`` has no path to it; the scheduler calls
  ``session.create_req`` directly).
- AROUND ``Session.create_req``: validates and applies the rewind.

`plan_rewind` is the pure bounds logic, testable without SGLang."""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass
from http import HTTPStatus
from typing import Optional, Union

logger = logging.getLogger(__name__)

REFUSAL_PREFIX = "Streaming session rewind refused"

# Session -> the tree cache (UnifiedRadixCache) of the SessionController that
# opened it. Weak: a closed session's entry goes with it.
_session_caches: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_registered = False


def mark_registered() -> None:
    global _registered
    _registered = True


def rewind_enabled() -> bool:
    """Whether this process registered the hooks: the plugin loads in every
    SGLang process, so the HTTP process (where the gRPC servicer runs) knows
    that its schedulers accept offsets."""
    return _registered


@dataclass(frozen=True)
class RewindPlan:
    """New committed lengths of the session's token arrays after a rewind to
    ``position``: the last finished request's input is kept up to
    ``origin_len`` and its output up to ``output_len``."""

    position: int
    origin_len: int
    output_len: int
    fill_len: int


def plan_rewind(position: int, *, origin_len: int, output_len: int, fill_len: int,
                protected_len: int, new_input_tokens: int) -> Union[RewindPlan, str]:
    """The rewind to ``position`` of a session whose history is the last
    finished request's committed input (``origin_len`` tokens) plus its output
    (``output_len``), or a refusal message. ``protected_len`` tokens at the
    start belong to the radix tree (the published first prompt) and cannot be
    dropped by the session."""
    end = origin_len + output_len
    if position < 0 or position > end:
        return f"{REFUSAL_PREFIX}: offset {position} is past the committed end of the session ({end} tokens)"
    if position < protected_len:
        return (f"{REFUSAL_PREFIX}: offset {position} is below the session's protected prompt "
                f"({protected_len} tokens, shared through the radix cache)")
    if new_input_tokens < 1:
        # The match must land on p exactly (try_match_prefix matches at most
        # input_len - 1 tokens), so the request has to carry a token past p.
        return f"{REFUSAL_PREFIX}: a rewind (offset {position}) must carry at least one new input token"
    if position <= origin_len:
        return RewindPlan(position, position, 0, min(fill_len, position))
    return RewindPlan(position, origin_len, position - origin_len, min(fill_len, position))


# -- hooks -----------------------------------------------------------------------


def remember_session_cache(result, controller, recv_req):
    """AFTER SessionController.open."""
    session = controller.sessions.get(recv_req.session_id) if getattr(result, "success", False) else None
    if session is not None:
        _session_caches[session] = controller.tree_cache
    return result


def rewind_streaming_session(original, session, req, tokenizer, *args, **kwargs):
    """AROUND Session.create_req."""
    params = req.session_params
    position = params.offset if params is not None else None
    if not session.streaming or not position:
        return original(session, req, tokenizer, *args, **kwargs)
    if session._inflight or params.replace or params.drop_previous_output:
        # Upstream refuses these before it looks at the offset, with its own message.
        return original(session, req, tokenizer, *args, **kwargs)
    refusal = _apply_rewind(session, req, tokenizer, position)
    if refusal is not None:
        # Upstream refuses the offset without touching the session's history;
        # only the message is replaced, so the client learns why.
        new_req = original(session, req, tokenizer, *args, **kwargs)
        from sglang.srt.managers.schedule_batch import FINISH_ABORT

        logger.warning("%s (session %s, rid %s)", refusal, session.session_id, req.rid)
        new_req.to_finish = FINISH_ABORT(refusal, HTTPStatus.BAD_REQUEST, "BadRequestError")
        return new_req
    params.offset = None
    return original(session, req, tokenizer, *args, **kwargs)


def _apply_rewind(session, req, tokenizer, position: int) -> Optional[str]:
    """Cuts the session back to ``position``; returns a refusal message instead
    when the rewind cannot be done, leaving everything untouched."""
    cache = _session_caches.get(session)
    if cache is None or not hasattr(cache, "session"):
        return f"{REFUSAL_PREFIX}: the session's KV is not held by SGLang's unified radix cache"
    if getattr(cache, "is_swa_enabled", False) or getattr(cache, "is_mamba_enabled", False):
        # SWA eviction cursors and mamba state snapshots would have to be
        # rolled back too; not handled.
        return f"{REFUSAL_PREFIX}: not supported for sliding-window or mamba models"
    if session.committed_origin_len is None or not session.req_nodes:
        return f"{REFUSAL_PREFIX}: the session has no finished turn to rewind"
    [last_node] = session.req_nodes.values()
    last_req = last_node.req
    if last_req.multimodal_inputs is not None or session.committed_unpadded_len != session.committed_origin_len:
        return f"{REFUSAL_PREFIX}: not supported for sessions holding multimodal inputs"
    out_tail = last_req.output_ids[: last_req.sampling_params.max_new_tokens]
    slot = cache.session.slots.get(session.session_id)
    holds_slot = slot is not None and slot.kv.holds_kv
    new_tokens = len(req.input_ids or ())
    if new_tokens and tokenizer is not None and req.input_ids[0] == getattr(tokenizer, "bos_token_id", None):
        new_tokens -= 1  # create_req strips a leading BOS from an appended turn
    plan = plan_rewind(position, origin_len=session.committed_origin_len, output_len=len(out_tail),
                       fill_len=session.committed_fill_len, new_input_tokens=new_tokens,
                       protected_len=slot.kv.cache_protected_len if holds_slot else 0)
    if isinstance(plan, str):
        return plan
    # The last finished request is the session's rollback record: cutting it
    # makes the rewind stick even if the turn that carries it aborts.
    last_req.output_ids = last_req.output_ids[: plan.output_len]
    session.committed_origin_len = plan.origin_len
    session.committed_unpadded_len = plan.origin_len
    session.committed_fill_len = plan.fill_len
    if holds_slot:
        # try_match_prefix reports min(kv_committed_len, key) as the prefix and
        # frees the slot's KV past it: the dropped tail, not the slot.
        slot.kv.kv_committed_len = min(slot.kv.kv_committed_len, plan.position)
    logger.info("Streaming session %s rewound to %d tokens", session.session_id, plan.position)
    return None
