"""The interaction model's Hugging Face config class (model_type
``microturn_interaction``). The plugin registers it with AutoConfig, which is
how SGLang's config parser reads a checkpoint's config.json."""

from typing import Optional

from transformers import PretrainedConfig

from microturn_sglang.interaction_checkpoint import (
    FIXED_FIELDS,
    HF_FIELDS,
    MAX_POSITION_EMBEDDINGS,
    MODEL_TYPE,
    config_from_hf_dict,
)
from microturn_sglang.interaction_model import TOKEN_END_OF_TURN, InteractionModelConfig


class MicroturnInteractionConfig(PretrainedConfig):
    model_type = MODEL_TYPE

    def __init__(
        self,
        hidden_size: int = 64,
        num_hidden_layers: int = 2,
        num_attention_heads: int = 4,
        num_experts: int = 4,
        num_experts_per_tok: int = 2,
        moe_intermediate_size: int = 32,
        moe_threshold_tokens: int = 16,
        vocab_size: int = 260,
        n_mels: int = 80,
        num_key_value_heads: Optional[int] = None,
        head_dim: Optional[int] = None,
        max_position_embeddings: int = MAX_POSITION_EMBEDDINGS,
        rope_theta: float = FIXED_FIELDS["rope_theta"],
        rms_norm_eps: float = FIXED_FIELDS["rms_norm_eps"],
        eos_token_id: int = TOKEN_END_OF_TURN,
        tie_word_embeddings: bool = False,
        **kwargs,
    ):
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_experts = num_experts
        self.num_experts_per_tok = num_experts_per_tok
        self.moe_intermediate_size = moe_intermediate_size
        self.moe_threshold_tokens = moe_threshold_tokens
        self.vocab_size = vocab_size
        self.n_mels = n_mels
        self.num_key_value_heads = num_key_value_heads or num_attention_heads
        self.head_dim = head_dim or hidden_size // num_attention_heads
        self.max_position_embeddings = max_position_embeddings
        self.rope_theta = rope_theta
        self.rms_norm_eps = rms_norm_eps
        super().__init__(eos_token_id=eos_token_id, tie_word_embeddings=tie_word_embeddings, **kwargs)

    def to_interaction_config(self) -> InteractionModelConfig:
        values = {key: getattr(self, key) for key in HF_FIELDS}
        values.update({key: getattr(self, key) for key in FIXED_FIELDS})
        return config_from_hf_dict(values)
