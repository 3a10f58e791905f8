"""No per-chunk req-to-token row rewrite for streaming-session turns.

SGLang 0.5.23's ``alloc_for_extend`` reads every request's prefix indices
(``_prefix_kv_indices``: ``row[:prefix_len].to(int64)``, for a session turn a
copy of the whole history's slot indices) and writes prefix + new indices back
into the req-to-token row (``write_cache_indices``). A turn that borrows its
session's KV record already has its prefix in that row, so both are O(history)
per chunk for nothing. Three hooks:

- AROUND ``alloc_for_extend``: marks the batch's session borrowers (only on the
  plain extend path: not dLLM, not HiSparse, not NPU, whose writers read the
  prefix tensors in other ways).
- AROUND ``_prefix_kv_indices``: a marked request gets its last prefix index
  only (what paged allocation reads as ``last_loc``).
- AROUND ``write_cache_indices``: a prefix tensor shorter than its prefix
  length means "already in the row"; then this module writes the batch's new
  indices (one indexed store) and the full prefixes of the other requests
  (another), instead of the original writer. Otherwise the original runs.

The row contents end up identical to upstream's (the skipped writes would
store the values the row already holds)."""

from __future__ import annotations

import contextvars

_borrowers: contextvars.ContextVar = contextvars.ContextVar("microturn_session_borrowers", default=frozenset())
_extend_batch: contextvars.ContextVar = contextvars.ContextVar("microturn_extend_batch", default=None)


def current_extend():
    """(batch, borrower ids) of the plain extend batch being allocated, or
    None outside alloc_for_extend (session_reserve.py serves the borrowers'
    slots from this)."""
    batch = _extend_batch.get()
    return None if batch is None else (batch, _borrowers.get())


def _session_borrowers(batch) -> frozenset:
    """ids of the batch's requests whose row already holds their prefix
    because they run on a streaming session's record."""
    from sglang.srt.mem_cache import allocation

    session = getattr(batch.tree_cache, "session", None)
    if (session is None or allocation._is_npu or batch.is_dllm()
            or getattr(batch, "hisparse_coordinator", None) is not None):
        return frozenset()
    return frozenset(id(r) for r in batch.reqs
                     if r.prefix_len > 0 and r.kv.holds_kv and session.borrowed_slot(r) is not None)


def alloc_for_extend_marking_borrowers(original, batch, *args, **kwargs):
    """AROUND allocation.alloc_for_extend."""
    borrowers = _session_borrowers(batch)
    token = _borrowers.set(borrowers)
    # Only the plain path (where borrowers can be non-empty) is served from
    # reservations; the dLLM/HiSparse/NPU paths see no extend batch.
    batch_token = _extend_batch.set(batch if borrowers else None)
    try:
        return original(batch, *args, **kwargs)
    finally:
        _extend_batch.reset(batch_token)
        _borrowers.reset(token)


def prefix_kv_indices_in_place(original, batch, req):
    """AROUND allocation._prefix_kv_indices."""
    if id(req) not in _borrowers.get():
        return original(batch, req)
    import torch

    row = batch.req_to_token_pool.req_to_token[req.kv.req_pool_idx]
    return row[req.prefix_len - 1 : req.prefix_len].to(torch.int64)


def write_cache_indices_new_only(original, out_cache_loc, req_pool_indices_tensor, req_pool_indices_cpu,
                                 prefix_lens_tensor, prefix_lens_cpu, seq_lens_tensor, seq_lens_cpu,
                                 extend_lens_tensor, extend_lens_cpu, prefix_tensors, req_to_token_pool):
    """AROUND allocation.write_cache_indices."""
    prefix_lens = prefix_lens_cpu.tolist()
    if all(len(t) == n for t, n in zip(prefix_tensors, prefix_lens)):
        return original(out_cache_loc, req_pool_indices_tensor, req_pool_indices_cpu, prefix_lens_tensor,
                        prefix_lens_cpu, seq_lens_tensor, seq_lens_cpu, extend_lens_tensor, extend_lens_cpu,
                        prefix_tensors, req_to_token_pool)
    import torch

    rows = req_pool_indices_cpu.tolist()
    seq_lens = seq_lens_cpu.tolist()
    table = req_to_token_pool.req_to_token
    device = table.device
    # New indices of every request: [prefix_len, seq_len) of its row, in
    # out_cache_loc's order (requests back to back).
    new_rows = torch.cat([torch.full((s - p,), r, dtype=torch.int64) for r, p, s in zip(rows, prefix_lens, seq_lens)])
    new_cols = torch.cat([torch.arange(p, s, dtype=torch.int64) for p, s in zip(prefix_lens, seq_lens)])
    table[new_rows.to(device, non_blocking=True), new_cols.to(device, non_blocking=True)] = \
        out_cache_loc.to(table.dtype)
    # Prefixes that are not in their row yet (a request new to its row).
    full = [i for i, (t, n) in enumerate(zip(prefix_tensors, prefix_lens)) if n > 0 and len(t) == n]
    if full:
        pre_rows = torch.cat([torch.full((prefix_lens[i],), rows[i], dtype=torch.int64) for i in full])
        pre_cols = torch.cat([torch.arange(prefix_lens[i], dtype=torch.int64) for i in full])
        values = torch.cat([prefix_tensors[i].to(device) for i in full])
        table[pre_rows.to(device, non_blocking=True), pre_cols.to(device, non_blocking=True)] = values.to(table.dtype)
