"""Interaction-model blocks (torch): dMel input embedding, hMLP embedding of
40x40 RGB patches, time-marker embedding, an MoE transformer layer whose experts
run on the gather+gemv path, and a flow-matching audio head."""

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from microturn_sglang.moe_gather_gemv import DEFAULT_THRESHOLD_TOKENS, moe_forward, moe_grouped_torch

DMEL_CHANNELS = 80
DMEL_LEVELS = 16
PATCH_SIZE_PX = 40


class DmelEmbedding(nn.Module):
    """One vector per dMel frame: a learned embedding per (channel, 4-bit level),
    summed over the 80 channels and scaled so the sum's variance does not grow
    with the channel count."""

    def __init__(self, dim: int, channels: int = DMEL_CHANNELS, levels: int = DMEL_LEVELS):
        super().__init__()
        self.channels, self.levels = channels, levels
        self.table = nn.Embedding(channels * levels, dim)
        self.register_buffer("channel_offset", torch.arange(channels) * levels, persistent=False)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """codes: ``[frames, channels]`` integers in ``[0, levels)``; returns ``[frames, dim]``."""
        if codes.dim() != 2 or codes.shape[1] != self.channels:
            raise ValueError(f"dMel codes must be [frames, {self.channels}], got {tuple(codes.shape)}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.levels):
            raise ValueError(f"dMel codes must be in [0, {self.levels})")
        idx = codes.long() + self.channel_offset
        return self.table(idx).sum(dim=1) / math.sqrt(self.channels)


class HmlpPatchEmbedding(nn.Module):
    """Hierarchical MLP stem over one 40x40 RGB patch: 5x5 sub-patches, then 2x2,
    then 4x4 groups, each a per-position linear map (kernel == stride), so patches
    never mix with each other."""

    def __init__(self, dim: int, patch_size: int = PATCH_SIZE_PX):
        super().__init__()
        if patch_size != 40:
            raise ValueError("the hMLP stem is laid out for 40x40 patches")
        mid = max(dim // 4, 8)
        self.stages = nn.Sequential(
            nn.Conv2d(3, mid, kernel_size=5, stride=5),
            nn.GELU(),
            nn.Conv2d(mid, mid, kernel_size=2, stride=2),
            nn.GELU(),
            nn.Conv2d(mid, dim, kernel_size=4, stride=4),
        )
        self.patch_size = patch_size

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        """rgb: ``[patches, 40, 40, 3]`` uint8; returns ``[patches, dim]``."""
        p = self.patch_size
        if rgb.dim() != 4 or tuple(rgb.shape[1:]) != (p, p, 3):
            raise ValueError(f"patches must be [n, {p}, {p}, 3], got {tuple(rgb.shape)}")
        x = rgb.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return self.stages(x).flatten(1)


class TimeMarkerEmbedding(nn.Module):
    """Embeds a chunk's input time (ms) so the model always knows the time:
    sinusoids over periods from 200 ms (one micro-turn) to ~3 hours."""

    def __init__(self, dim: int, n_freqs: int = 16):
        super().__init__()
        periods_ms = torch.logspace(math.log10(200.0), math.log10(200.0 * 2**16), n_freqs)
        self.register_buffer("omega", 2 * math.pi / periods_ms, persistent=False)
        self.proj = nn.Linear(2 * n_freqs, dim)

    def forward(self, start_ms: torch.Tensor) -> torch.Tensor:
        """start_ms: ``[n]``; returns ``[n, dim]``."""
        phase = start_ms.double()[:, None] * self.omega.double()[None, :]
        feats = torch.cat([phase.sin(), phase.cos()], dim=-1).float()
        return self.proj(feats)


class RmsNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotary(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """Rotary position embedding on ``[T, heads, head_dim]``."""
    half = x.shape[-1] // 2
    freqs = theta ** (-torch.arange(half, dtype=torch.float32, device=x.device) / half)
    angles = positions.float()[:, None] * freqs[None, :]
    cos, sin = angles.cos()[:, None, :], angles.sin()[:, None, :]
    x1, x2 = x[..., :half].float(), x[..., half:].float()
    # Angles in fp32 (bf16 positions lose integers past 256); back to x's dtype for the KV cache.
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).to(x.dtype)


@dataclass
class KvView:
    """A session's KV for one layer: caches over the whole slot pool, the
    session's first slot and how many tokens it already holds there. The
    session's slots are contiguous, so attention reads one slice."""

    k: torch.Tensor  # [slots, heads, head_dim]
    v: torch.Tensor
    start: int
    past_len: int


class SlotAttention(nn.Module):
    def __init__(self, dim: int, n_heads: int, rope_theta: float = 10000.0):
        super().__init__()
        self.n_heads, self.head_dim, self.rope_theta = n_heads, dim // n_heads, rope_theta
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)

    def forward(self, h: torch.Tensor, positions: torch.Tensor, kv: KvView) -> torch.Tensor:
        t = h.shape[0]
        q, k, v = self.qkv(h).view(t, 3, self.n_heads, self.head_dim).unbind(1)
        q, k = rotary(q, positions, self.rope_theta), rotary(k, positions, self.rope_theta)
        write = slice(kv.start + kv.past_len, kv.start + kv.past_len + t)
        kv.k[write], kv.v[write] = k, v
        keys = kv.k[kv.start : write.stop]  # [L, heads, hd]: a view, no gather
        values = kv.v[kv.start : write.stop]
        scores = torch.einsum("thd,lhd->htl", q, keys) / math.sqrt(self.head_dim)
        total = write.stop - kv.start
        causal = torch.arange(total)[None, :] > (kv.past_len + torch.arange(t))[:, None]
        scores = scores.masked_fill(causal[None], float("-inf"))
        attn = torch.softmax(scores, dim=-1)
        return self.out(torch.einsum("htl,lhd->thd", attn, values).reshape(t, -1))


class MoeFeedForward(nn.Module):
    """Top-k routed SiLU-gated experts in SGLang's weight layout."""

    def __init__(self, dim: int, n_experts: int, top_k: int, expert_dim: int, threshold_tokens: int):
        super().__init__()
        self.top_k, self.threshold_tokens = top_k, threshold_tokens
        self.router = nn.Linear(dim, n_experts, bias=False)
        self.w13 = nn.Parameter(torch.randn(n_experts, 2 * expert_dim, dim) / math.sqrt(dim))
        self.w2 = nn.Parameter(torch.randn(n_experts, dim, expert_dim) / math.sqrt(expert_dim))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(self.router(h).float(), dim=-1)
        weights, ids = probs.topk(self.top_k, dim=-1)
        weights = weights / weights.sum(-1, keepdim=True)
        threshold = self.threshold_tokens
        if torch.cuda.is_available() and torch.cuda.is_current_stream_capturing():
            # The per-expert torch path reads routing on the host, which a CUDA
            # graph capture (SGLang's decode graphs) forbids; gather+gemv does not.
            threshold = max(threshold, h.shape[0])
        return moe_forward(
            h, self.w13, self.w2, ids.to(torch.int32), weights,
            threshold_tokens=threshold, grouped=moe_grouped_torch,
        )


class MoeTransformerLayer(nn.Module):
    def __init__(self, dim: int, n_heads: int, n_experts: int, top_k: int, expert_dim: int,
                 threshold_tokens: int = DEFAULT_THRESHOLD_TOKENS):
        super().__init__()
        self.attn_norm, self.ffn_norm = RmsNorm(dim), RmsNorm(dim)
        self.attn = SlotAttention(dim, n_heads)
        self.moe = MoeFeedForward(dim, n_experts, top_k, expert_dim, threshold_tokens)

    def forward(self, h: torch.Tensor, positions: torch.Tensor, kv: KvView) -> torch.Tensor:
        h = h + self.attn(self.attn_norm(h), positions, kv)
        return h + self.moe(self.ffn_norm(h))


class FlowMatchingAudioHead(nn.Module):
    """Predicts mel frames from the model's hidden state by flow matching: a
    velocity field v(x_t, t | h) carried from Gaussian noise (t=0) to the frame
    (t=1) with Euler steps."""

    def __init__(self, dim: int, n_mels: int = DMEL_CHANNELS, hidden: Optional[int] = None):
        super().__init__()
        hidden = hidden or 2 * dim
        self.n_mels = n_mels
        self.net = nn.Sequential(
            nn.Linear(n_mels + dim + 1, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, n_mels),
        )

    def velocity(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x_t, cond, t[:, None]], dim=-1))

    def loss(self, target: torch.Tensor, cond: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Rectified-flow objective on the straight path noise -> target."""
        noise = torch.randn(target.shape, generator=generator)
        t = torch.rand(target.shape[0], generator=generator)
        x_t = (1 - t[:, None]) * noise + t[:, None] * target
        return F.mse_loss(self.velocity(x_t, t, cond), target - noise)

    @torch.no_grad()
    def sample(self, cond: torch.Tensor, steps: int = 8, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Euler sampler: ``[frames, dim]`` conditions -> ``[frames, n_mels]``."""
        if steps <= 0:
            raise ValueError("steps must be positive")
        x = torch.randn(cond.shape[0], self.n_mels, generator=generator)
        dt = 1.0 / steps
        for i in range(steps):
            t = torch.full((cond.shape[0],), i * dt)
            x = x + dt * self.velocity(x, t, cond)
        return x
