"""The interaction model as an SGLang model architecture,
``MicroturnInteractionForCausalLM``: the text-token path of
``MicroturnInteractionModel`` with its KV in SGLang's pool (RadixAttention, so
any attention backend the server runs), logits through SGLang's
LogitsProcessor, and the project's MoE block (gather+gemv for small batches).

Parameter names are the reference model's, so a checkpoint written by
``interaction_checkpoint.write_checkpoint`` loads one to one. Tensor parallelism
is not supported (tp_size 1): the blocks are plain torch modules."""

from typing import Iterable, Optional, Set, Tuple

import torch
from torch import nn

from sglang.srt.layers.logits_processor import LogitsProcessor, LogitsProcessorOutput
from sglang.srt.layers.radix_attention import RadixAttention
from sglang.srt.model_executor.forward_batch_info import ForwardBatch
from sglang.srt.runtime_context import get_parallel

from microturn_sglang.interaction_checkpoint import CheckpointError
from microturn_sglang.interaction_hf_config import MicroturnInteractionConfig
from microturn_sglang.model_blocks import (
    DmelEmbedding,
    FlowMatchingAudioHead,
    HmlpPatchEmbedding,
    MoeFeedForward,
    RmsNorm,
    SlotAttention,
    TimeMarkerEmbedding,
    rotary,
)


class RadixSlotAttention(SlotAttention):
    """SlotAttention's projections and RoPE; K/V are written to and read from
    SGLang's token-to-KV pool by RadixAttention instead of a session slice."""

    def __init__(self, dim: int, n_heads: int, rope_theta: float, layer_id: int, prefix: str):
        super().__init__(dim, n_heads, rope_theta)
        self.radix = RadixAttention(
            num_heads=n_heads,
            head_dim=self.head_dim,
            scaling=self.head_dim**-0.5,
            num_kv_heads=n_heads,
            layer_id=layer_id,
            prefix=f"{prefix}.radix",
        )

    def forward(self, h: torch.Tensor, positions: torch.Tensor, forward_batch: ForwardBatch) -> torch.Tensor:
        t = h.shape[0]
        q, k, v = self.qkv(h).view(t, 3, self.n_heads, self.head_dim).unbind(1)
        q, k = rotary(q, positions, self.rope_theta), rotary(k, positions, self.rope_theta)
        o = self.radix(q.reshape(t, -1), k.contiguous(), v.contiguous(), forward_batch)
        return self.out(o.reshape(t, -1))


class MicroturnDecoderLayer(nn.Module):
    """MoeTransformerLayer with RadixSlotAttention; same parameter names."""

    def __init__(self, config: MicroturnInteractionConfig, layer_id: int, prefix: str):
        super().__init__()
        dim = config.hidden_size
        self.attn_norm, self.ffn_norm = RmsNorm(dim, config.rms_norm_eps), RmsNorm(dim, config.rms_norm_eps)
        self.attn = RadixSlotAttention(dim, config.num_attention_heads, config.rope_theta, layer_id, f"{prefix}.attn")
        self.moe = MoeFeedForward(dim, config.num_experts, config.num_experts_per_tok,
                                  config.moe_intermediate_size, config.moe_threshold_tokens)

    def forward(self, h: torch.Tensor, positions: torch.Tensor, forward_batch: ForwardBatch) -> torch.Tensor:
        h = h + self.attn(self.attn_norm(h), positions, forward_batch)
        return h + self.moe(self.ffn_norm(h))


class MicroturnInteractionForCausalLM(nn.Module):
    def __init__(self, config: MicroturnInteractionConfig, quant_config=None, prefix: str = ""):
        super().__init__()
        if quant_config is not None:
            raise ValueError(f"{type(self).__name__} has unquantized weights only, got {quant_config.get_name()}")
        tp_size = get_parallel().tp_size
        if tp_size != 1:
            raise ValueError(f"{type(self).__name__} runs with tensor parallel size 1, got {tp_size}")
        if config.hidden_size % config.num_attention_heads:
            raise ValueError("hidden_size must be divisible by num_attention_heads")
        if config.num_key_value_heads != config.num_attention_heads:
            raise ValueError("the interaction model has one KV head per query head (no GQA)")
        if config.head_dim != config.hidden_size // config.num_attention_heads:
            raise ValueError("head_dim must be hidden_size // num_attention_heads")
        self.config = config
        dim = config.hidden_size
        self.tokens = nn.Embedding(config.vocab_size, dim)
        # Loaded with the checkpoint but not reached by forward(): SGLang feeds
        # token ids (or precomputed input_embeds), see docs/sglang-patch.md.
        self.dmel = DmelEmbedding(dim)
        self.patches = HmlpPatchEmbedding(dim)
        self.time_marker = TimeMarkerEmbedding(dim)
        self.layers = nn.ModuleList(
            MicroturnDecoderLayer(config, i, f"{prefix}layers.{i}") for i in range(config.num_hidden_layers)
        )
        self.norm = RmsNorm(dim, config.rms_norm_eps)
        self.lm_head = nn.Linear(dim, config.vocab_size, bias=False)
        self.audio_head = FlowMatchingAudioHead(dim, config.n_mels)
        self.logits_processor = LogitsProcessor(config)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.tokens

    @torch.no_grad()
    def forward(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        forward_batch: ForwardBatch,
        input_embeds: Optional[torch.Tensor] = None,
    ) -> LogitsProcessorOutput:
        h = self.tokens(input_ids) if input_embeds is None else input_embeds.to(self.lm_head.weight.dtype)
        for layer in self.layers:
            h = layer(h, positions, forward_batch)
        return self.logits_processor(input_ids, self.norm(h), self.lm_head, forward_batch)

    def load_weights(self, weights: Iterable[Tuple[str, torch.Tensor]]) -> Set[str]:
        """Copies every parameter from ``(name, tensor)`` pairs named as the
        reference model's state_dict; an unknown, misshapen or missing name
        raises CheckpointError."""
        params = dict(self.named_parameters())
        loaded: Set[str] = set()
        for name, tensor in weights:
            param = params.get(name)
            if param is None:
                raise CheckpointError(f"checkpoint weight {name!r} has no parameter in {type(self).__name__}")
            if tuple(param.shape) != tuple(tensor.shape):
                raise CheckpointError(f"{name}: checkpoint shape {tuple(tensor.shape)}, model {tuple(param.shape)}")
            with torch.no_grad():
                param.copy_(tensor.to(device=param.device, dtype=param.dtype))
            loaded.add(name)
        missing = sorted(set(params) - loaded)
        if missing:
            raise CheckpointError(f"checkpoint lacks {len(missing)} weights, e.g. {missing[:3]}")
        return loaded
