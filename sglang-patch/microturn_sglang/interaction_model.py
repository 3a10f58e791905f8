"""The interaction model assembled from a config: token, dMel, patch and
time-marker embeddings into one sequence, MoE transformer layers over a
slot-pool KV cache, a text head and a flow-matching audio head."""

from dataclasses import dataclass, field
from typing import List

import torch
from torch import nn

from microturn_sglang.model_blocks import (
    DmelEmbedding,
    FlowMatchingAudioHead,
    HmlpPatchEmbedding,
    KvView,
    MoeTransformerLayer,
    RmsNorm,
    TimeMarkerEmbedding,
)

# Byte-level vocabulary: 0..255 are bytes, then the special tokens.
TOKEN_END_OF_TURN = 256
TOKEN_SYSTEM = 257
TOKEN_USER = 258
TOKEN_CONTEXT = 259
VOCAB_SIZE = 260


@dataclass
class InteractionModelConfig:
    dim: int = 64
    n_layers: int = 2
    n_heads: int = 4
    n_experts: int = 4
    top_k: int = 2
    expert_dim: int = 32
    moe_threshold_tokens: int = 16
    vocab_size: int = VOCAB_SIZE
    n_mels: int = 80
    seed: int = 0
    architectures: List[str] = field(default_factory=lambda: ["MicroturnInteractionModel"])


class LayerKvCache:
    """K and V for every layer over the engine's whole slot pool."""

    def __init__(self, config: InteractionModelConfig, num_slots: int):
        head_dim = config.dim // config.n_heads
        shape = (config.n_layers, num_slots, config.n_heads, head_dim)
        self.k = torch.zeros(shape)
        self.v = torch.zeros(shape)

    def views(self, start: int, past_len: int) -> List[KvView]:
        return [KvView(self.k[i], self.v[i], start, past_len) for i in range(self.k.shape[0])]

    def move(self, src: int, dst: int, length: int) -> None:
        """Copies a session's KV when its reservation is relocated."""
        self.k[:, dst : dst + length] = self.k[:, src : src + length].clone()
        self.v[:, dst : dst + length] = self.v[:, src : src + length].clone()


class MicroturnInteractionModel(nn.Module):
    def __init__(self, config: InteractionModelConfig):
        super().__init__()
        if config.dim % config.n_heads:
            raise ValueError("dim must be divisible by n_heads")
        self.config = config
        torch.manual_seed(config.seed)
        self.tokens = nn.Embedding(config.vocab_size, config.dim)
        self.dmel = DmelEmbedding(config.dim)
        self.patches = HmlpPatchEmbedding(config.dim)
        self.time_marker = TimeMarkerEmbedding(config.dim)
        self.layers = nn.ModuleList(
            MoeTransformerLayer(config.dim, config.n_heads, config.n_experts, config.top_k,
                                config.expert_dim, config.moe_threshold_tokens)
            for _ in range(config.n_layers)
        )
        self.norm = RmsNorm(config.dim)
        self.lm_head = nn.Linear(config.dim, config.vocab_size, bias=False)
        self.audio_head = FlowMatchingAudioHead(config.dim, config.n_mels)
        for p in self.parameters():
            p.requires_grad_(False)

    def embed_tokens(self, ids: List[int]) -> torch.Tensor:
        return self.tokens(torch.tensor(ids, dtype=torch.long).reshape(-1))

    @torch.no_grad()
    def forward(self, embeds: torch.Tensor, kv: LayerKvCache, start: int, past_len: int) -> torch.Tensor:
        """Runs ``embeds`` ([T, dim]) as positions ``past_len..past_len+T`` of the
        session whose slots begin at ``start``; returns the last position's hidden state."""
        positions = torch.arange(past_len, past_len + embeds.shape[0])
        h = embeds
        for layer, view in zip(self.layers, kv.views(start, past_len)):
            h = layer(h, positions, view)
        return self.norm(h[-1:])

    @torch.no_grad()
    def next_token(self, hidden: torch.Tensor, temperature: float, generator: torch.Generator) -> int:
        logits = self.lm_head(hidden)[0].float()
        if temperature <= 0:
            return int(logits.argmax())
        probs = torch.softmax(logits / temperature, dim=-1)
        return int(torch.multinomial(probs, 1, generator=generator))

    def weight_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.parameters())


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

