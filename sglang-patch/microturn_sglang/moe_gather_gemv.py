"""gather+gemv MoE for small batches: one GEMV per (token, routed expert) reading
only the routed experts' weights, instead of sorting and padding tokens into
grouped-GEMM blocks. Two Triton kernels (gate/up GEMV with SiLU-and-mul fused;
down GEMV with the routing weights combined over top-k) and a torch reference.

Weight layout follows SGLang's unquantized MoE: ``w13`` is ``[E, 2*I, H]`` with the
gate rows first, ``w2`` is ``[E, H, I]``. Inputs bf16/fp16, accumulation fp32.
An expert id < 0 (expert not on this rank) contributes nothing.
"""


import functools
from typing import Callable, Optional

import torch
import triton
import triton.language as tl

DEFAULT_THRESHOLD_TOKENS = 16
# The down projection splits per routed expert while one program per (token,
# output block) would leave the GPU this many waves short of programs (H200,
# Qwen3-30B-A3B shapes: split wins at T = 1 and 2, ties at 3, loses from 4;
# docs/benchmarks.md).
SPLIT_DOWN_BELOW_WAVES = 4


@functools.lru_cache(maxsize=None)
def _multiprocessors(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


_UNSET = object()
_batch_invariant_flag = _UNSET


def deterministic_mode() -> bool:
    """Whether SGLang runs batch-invariant (``--enable-deterministic-inference``): then
    the down projection keeps its fixed summation order. False outside SGLang."""
    global _batch_invariant_flag
    if _batch_invariant_flag is _UNSET:
        try:
            from sglang.srt.batch_invariant_ops.batch_invariant_ops import is_batch_invariant_mode_enabled
        except Exception:  # noqa: BLE001 - SGLang absent, or its runtime not importable in this process
            is_batch_invariant_mode_enabled = None
        _batch_invariant_flag = is_batch_invariant_mode_enabled
    return bool(_batch_invariant_flag is not None and _batch_invariant_flag())


def split_down_pays(tokens: int, hidden: int, block_n_down: int, multiprocessors: int) -> bool:
    """Whether the per-expert down split beats one program per (token, output block)."""
    return tokens * triton.cdiv(hidden, block_n_down) < SPLIT_DOWN_BELOW_WAVES * multiprocessors


def moe_reference(
    x: torch.Tensor,
    w13: torch.Tensor,
    w2: torch.Tensor,
    topk_ids: torch.Tensor,
    topk_weights: torch.Tensor,
) -> torch.Tensor:
    """fp32 reference; returns ``[T, H]`` in x's dtype."""
    tokens, top_k = topk_ids.shape
    inter = w2.shape[2]
    out = torch.zeros(tokens, x.shape[1], dtype=torch.float32, device=x.device)
    xf = x.float()
    for t in range(tokens):
        for k in range(top_k):
            e = int(topk_ids[t, k])
            if e < 0:
                continue
            gate_up = w13[e].float() @ xf[t]
            act = torch.nn.functional.silu(gate_up[:inter]) * gate_up[inter:]
            out[t] += float(topk_weights[t, k]) * (w2[e].float() @ act)
    return out.to(x.dtype)


@triton.jit
def _gate_up_silu_kernel(
    x_ptr, w13_ptr, ids_ptr, act_ptr,
    H, INTER, TOP_K,
    stride_xt, stride_we, stride_wn, stride_wh, stride_ap,
    BLOCK_N: tl.constexpr, BLOCK_H: tl.constexpr,
):
    pair = tl.program_id(0)
    n_block = tl.program_id(1)
    t = pair // TOP_K
    e = tl.load(ids_ptr + pair).to(tl.int64)
    valid = e >= 0
    e = tl.maximum(e, 0)
    offs_n = n_block * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < INTER
    gate_ptrs = w13_ptr + e * stride_we + offs_n[:, None] * stride_wn
    up_ptrs = gate_ptrs + INTER * stride_wn
    acc_gate = tl.zeros((BLOCK_N,), dtype=tl.float32)
    acc_up = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for h0 in range(0, H, BLOCK_H):
        offs_h = h0 + tl.arange(0, BLOCK_H)
        mask_h = offs_h < H
        xv = tl.load(x_ptr + t * stride_xt + offs_h, mask=mask_h, other=0.0).to(tl.float32)
        mask = mask_n[:, None] & mask_h[None, :]
        w_gate = tl.load(gate_ptrs + offs_h[None, :] * stride_wh, mask=mask, other=0.0).to(tl.float32)
        w_up = tl.load(up_ptrs + offs_h[None, :] * stride_wh, mask=mask, other=0.0).to(tl.float32)
        acc_gate += tl.sum(w_gate * xv[None, :], axis=1)
        acc_up += tl.sum(w_up * xv[None, :], axis=1)
    act = acc_gate / (1.0 + tl.exp(-acc_gate)) * acc_up
    act = tl.where(valid, act, 0.0)
    tl.store(act_ptr + pair * stride_ap + offs_n, act, mask=mask_n)


@triton.jit
def _down_rows(act_row, w_rows, stride_wi, INTER, mask_n, BLOCK_N: tl.constexpr, BLOCK_I: tl.constexpr):
    """One routed expert's down GEMV over a block of output rows: w_rows · act_row, fp32."""
    part = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for i0 in range(0, INTER, BLOCK_I):
        offs_i = i0 + tl.arange(0, BLOCK_I)
        mask_i = offs_i < INTER
        a = tl.load(act_row + offs_i, mask=mask_i, other=0.0)
        w = tl.load(w_rows + offs_i[None, :] * stride_wi, mask=mask_n[:, None] & mask_i[None, :], other=0.0)
        part += tl.sum(w.to(tl.float32) * a[None, :], axis=1)
    return part


@triton.jit
def _down_combine_kernel(
    act_ptr, w2_ptr, ids_ptr, weights_ptr, out_ptr,
    H, INTER, TOP_K,
    stride_ap, stride_we, stride_wh, stride_wi, stride_ot,
    BLOCK_N: tl.constexpr, BLOCK_I: tl.constexpr,
):
    t = tl.program_id(0)
    n_block = tl.program_id(1)
    offs_n = n_block * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < H
    acc = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for k in range(0, TOP_K):
        pair = t * TOP_K + k
        e = tl.load(ids_ptr + pair).to(tl.int64)
        route_w = tl.load(weights_ptr + pair).to(tl.float32)
        route_w = tl.where(e >= 0, route_w, 0.0)
        e = tl.maximum(e, 0)
        w_rows = w2_ptr + e * stride_we + offs_n[:, None] * stride_wh
        acc += route_w * _down_rows(act_ptr + pair * stride_ap, w_rows, stride_wi, INTER, mask_n, BLOCK_N, BLOCK_I)
    tl.store(out_ptr + t * stride_ot + offs_n, acc.to(out_ptr.dtype.element_ty), mask=mask_n)


@triton.jit
def _down_split_kernel(
    act_ptr, w2_ptr, ids_ptr, weights_ptr, acc_ptr,
    H, INTER, TOP_K,
    stride_ap, stride_we, stride_wh, stride_wi, stride_at,
    BLOCK_N: tl.constexpr, BLOCK_I: tl.constexpr,
):
    """One program per (token, output block, routed expert): top_k times the
    programs of _down_combine_kernel, each adding its expert's share into an fp32
    accumulator. More loads in flight at T = 1; the sum order over experts is not fixed."""
    t = tl.program_id(0)
    n_block = tl.program_id(1)
    k = tl.program_id(2)
    pair = t * TOP_K + k
    e = tl.load(ids_ptr + pair).to(tl.int64)
    if e >= 0:
        route_w = tl.load(weights_ptr + pair).to(tl.float32)
        offs_n = n_block * BLOCK_N + tl.arange(0, BLOCK_N)
        mask_n = offs_n < H
        w_rows = w2_ptr + e * stride_we + offs_n[:, None] * stride_wh
        part = _down_rows(act_ptr + pair * stride_ap, w_rows, stride_wi, INTER, mask_n, BLOCK_N, BLOCK_I)
        tl.atomic_add(acc_ptr + t * stride_at + offs_n, route_w * part, mask=mask_n)


# Whether the kernels were built for Triton's interpreter (TRITON_INTERPRET=1 when
# this module was imported): then they run on CPU tensors too; else on CUDA only.
INTERPRETED = type(_gate_up_silu_kernel).__name__ == "InterpretedFunction"


def kernels_run_on(device: torch.device) -> bool:
    """Whether gather_gemv_moe can run on tensors on `device`."""
    return device.type == "cuda" or INTERPRETED


def gate_up(
    x: torch.Tensor, w13: torch.Tensor, ids: torch.Tensor, act: torch.Tensor, *,
    block_n_up: int, block_h: int, num_warps_up: int,
) -> None:
    """The first kernel alone: SiLU(gate)·up of each (token, routed expert) into ``act``
    (``[T * top_k, I]`` fp32); ``ids`` flat, ``T * top_k`` long. gather_gemv_moe's first
    step, and what scripts/bench_moe.py --breakdown times apart."""
    tokens, hidden = x.shape
    top_k = ids.numel() // tokens
    inter = w13.shape[1] // 2
    _gate_up_silu_kernel[(tokens * top_k, triton.cdiv(inter, block_n_up))](
        x, w13, ids, act,
        hidden, inter, top_k,
        x.stride(0), w13.stride(0), w13.stride(1), w13.stride(2), act.stride(0),
        BLOCK_N=block_n_up, BLOCK_H=block_h, num_warps=num_warps_up,
    )


def gather_gemv_moe(
    x: torch.Tensor,
    w13: torch.Tensor,
    w2: torch.Tensor,
    topk_ids: torch.Tensor,
    topk_weights: torch.Tensor,
    *,
    block_n_up: int = 4,
    block_h: int = 512,
    block_n_down: int = 8,
    block_i: int = 256,
    num_warps_up: int = 2,
    num_warps_down: int = 2,
    split_down: Optional[bool] = None,
    out: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Routed-experts-only MoE forward; returns ``[T, H]`` in x's dtype.

    The default blocks and warps are the best of scripts/bench_moe.py's search
    at T = 1 on an H200 at Qwen3-30B-A3B shapes. ``split_down`` runs the down
    projection as one program per routed expert (fp32 atomic adds, then a cast)
    instead of one per token that loops over its experts: more parallel work
    when there are few tokens, a sum order over experts that varies run to run.
    None (the default) splits on a GPU when the per-token grid is short of
    SPLIT_DOWN_BELOW_WAVES programs per multiprocessor, unless SGLang runs
    deterministic inference; False keeps the fixed order everywhere.
    """
    if x.dtype not in (torch.bfloat16, torch.float16, torch.float32):
        raise TypeError(f"unsupported activation dtype {x.dtype}")
    if not kernels_run_on(x.device):
        raise ValueError(f"gather_gemv_moe runs on a CUDA device, or on CPU under TRITON_INTERPRET=1; got {x.device} tensors")
    tokens, hidden = x.shape
    experts, two_inter, w_hidden = w13.shape
    inter = two_inter // 2
    if w_hidden != hidden or w2.shape != (experts, hidden, inter):
        raise ValueError(f"shape mismatch: x {tuple(x.shape)}, w13 {tuple(w13.shape)}, w2 {tuple(w2.shape)}")
    if topk_ids.shape != topk_weights.shape or topk_ids.shape[0] != tokens:
        raise ValueError(f"routing shape mismatch: ids {tuple(topk_ids.shape)}, weights {tuple(topk_weights.shape)}")
    top_k = topk_ids.shape[1]
    x = x.contiguous()
    ids = topk_ids.contiguous().view(-1)
    weights = topk_weights.contiguous().view(-1)
    act = torch.empty(tokens * top_k, inter, dtype=torch.float32, device=x.device)
    if out is None:
        out = torch.empty(tokens, hidden, dtype=x.dtype, device=x.device)
    if tokens == 0:
        return out
    if split_down is None:
        split_down = x.device.type == "cuda" and not deterministic_mode() and split_down_pays(
            tokens, hidden, block_n_down, _multiprocessors(x.device.index or 0))
    gate_up(x, w13, ids, act, block_n_up=block_n_up, block_h=block_h, num_warps_up=num_warps_up)
    if split_down:
        acc = torch.zeros(tokens, hidden, dtype=torch.float32, device=x.device)
        _down_split_kernel[(tokens, triton.cdiv(hidden, block_n_down), top_k)](
            act, w2, ids, weights, acc,
            hidden, inter, top_k,
            act.stride(0), w2.stride(0), w2.stride(1), w2.stride(2), acc.stride(0),
            BLOCK_N=block_n_down, BLOCK_I=block_i, num_warps=num_warps_down,
        )
        out.copy_(acc)
        return out
    _down_combine_kernel[(tokens, triton.cdiv(hidden, block_n_down))](
        act, w2, ids, weights, out,
        hidden, inter, top_k,
        act.stride(0), w2.stride(0), w2.stride(1), w2.stride(2), out.stride(0),
        BLOCK_N=block_n_down, BLOCK_I=block_i, num_warps=num_warps_down,
    )
    return out


def moe_grouped_torch(
    x: torch.Tensor,
    w13: torch.Tensor,
    w2: torch.Tensor,
    topk_ids: torch.Tensor,
    topk_weights: torch.Tensor,
) -> torch.Tensor:
    """Per-expert batched torch path for larger T (the CPU stand-in for a grouped
    GEMM): each routed expert runs once over all tokens routed to it."""
    inter = w2.shape[2]
    out = torch.zeros(x.shape[0], x.shape[1], dtype=torch.float32, device=x.device)
    flat_ids = topk_ids.reshape(-1).long()
    token_of = torch.arange(x.shape[0], device=x.device).repeat_interleave(topk_ids.shape[1])
    flat_w = topk_weights.reshape(-1).float()
    for e in torch.unique(flat_ids[flat_ids >= 0]).tolist():
        sel = flat_ids == e
        tokens = token_of[sel]
        gate_up = x[tokens].float() @ w13[e].float().t()
        act = torch.nn.functional.silu(gate_up[:, :inter]) * gate_up[:, inter:]
        out.index_add_(0, tokens, (act @ w2[e].float().t()) * flat_w[sel, None])
    return out.to(x.dtype)


GroupedMoe = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def moe_forward(
    x: torch.Tensor,
    w13: torch.Tensor,
    w2: torch.Tensor,
    topk_ids: torch.Tensor,
    topk_weights: torch.Tensor,
    *,
    threshold_tokens: int = DEFAULT_THRESHOLD_TOKENS,
    grouped: Optional[GroupedMoe] = None,
) -> torch.Tensor:
    """gather+gemv up to ``threshold_tokens`` tokens, the grouped path above it
    (SGLang's fused grouped GEMM when plugged in; the reference otherwise), and
    on tensors the kernels cannot run on (CPU without the interpreter)."""
    if x.shape[0] <= threshold_tokens and kernels_run_on(x.device):
        return gather_gemv_moe(x, w13, w2, topk_ids, topk_weights)
    return (grouped or moe_reference)(x, w13, w2, topk_ids, topk_weights)


def routed_weight_bytes(tokens_topk_ids: torch.Tensor, hidden: int, inter: int, elem_bytes: int) -> int:
    """Bytes of expert weights a batch must read: each distinct routed expert once."""
    distinct = int(torch.unique(tokens_topk_ids[tokens_topk_ids >= 0]).numel())
    return distinct * 3 * hidden * inter * elem_bytes
