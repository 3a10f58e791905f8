"""config.json <-> InteractionModelConfig, without transformers or safetensors
(the writer itself runs in test_sglang_model_upstream.py)."""

import dataclasses

import pytest

from microturn_sglang.interaction_checkpoint import (
    ARCHITECTURE,
    MODEL_TYPE,
    CheckpointError,
    config_from_hf_dict,
    config_to_hf_dict,
)
from microturn_sglang.interaction_model import TOKEN_END_OF_TURN, InteractionModelConfig


def test_round_trip_keeps_every_architecture_field():
    config = InteractionModelConfig(dim=96, n_layers=3, n_heads=6, n_experts=8, top_k=2, expert_dim=48,
                                    moe_threshold_tokens=8)
    values = config_to_hf_dict(config)
    assert values["model_type"] == MODEL_TYPE and values["architectures"] == [ARCHITECTURE]
    assert (values["hidden_size"], values["num_attention_heads"], values["num_key_value_heads"],
            values["head_dim"]) == (96, 6, 6, 16)
    assert values["eos_token_id"] == TOKEN_END_OF_TURN
    assert dataclasses.replace(config_from_hf_dict(values), seed=config.seed) == config


def test_refuses_missing_fields_and_blocks_it_cannot_build():
    values = config_to_hf_dict(InteractionModelConfig())
    with pytest.raises(CheckpointError, match="lacks"):
        config_from_hf_dict({k: v for k, v in values.items() if k != "num_experts"})
    with pytest.raises(CheckpointError, match="rope_theta"):
        config_from_hf_dict(dict(values, rope_theta=500000.0))
