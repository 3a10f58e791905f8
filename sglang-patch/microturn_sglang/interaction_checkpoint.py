"""The interaction model's checkpoint: weights as ``model.safetensors`` under the
reference model's own parameter names, and a Hugging Face style ``config.json``
(model_type ``microturn_interaction``) that SGLang's config parser reads.

``python -m microturn_sglang.interaction_checkpoint OUT_DIR [--seed N]`` writes
the tiny random-weight model the tests and the CPU reference server use."""

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict

from microturn_sglang.interaction_model import TOKEN_END_OF_TURN, InteractionModelConfig, MicroturnInteractionModel

MODEL_TYPE = "microturn_interaction"
ARCHITECTURE = "MicroturnInteractionForCausalLM"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"

# config.json key -> InteractionModelConfig field; the standard names are the
# ones SGLang's ModelConfig reads to size the KV pool and the context.
HF_FIELDS = {
    "hidden_size": "dim",
    "num_hidden_layers": "n_layers",
    "num_attention_heads": "n_heads",
    "num_experts": "n_experts",
    "num_experts_per_tok": "top_k",
    "moe_intermediate_size": "expert_dim",
    "moe_threshold_tokens": "moe_threshold_tokens",
    "vocab_size": "vocab_size",
    "n_mels": "n_mels",
}
# Fixed by the blocks (RmsNorm eps, SlotAttention's RoPE base); written so that
# SGLang and other readers see them, checked when read back.
FIXED_FIELDS = {"rope_theta": 10000.0, "rms_norm_eps": 1e-6}
MAX_POSITION_EMBEDDINGS = 65536  # the session KV's largest reservation


class CheckpointError(ValueError):
    """A checkpoint that does not match the model it is loaded into."""


def config_to_hf_dict(config: InteractionModelConfig) -> Dict[str, Any]:
    values = asdict(config)
    out: Dict[str, Any] = {hf: values[ours] for hf, ours in HF_FIELDS.items()}
    out.update(FIXED_FIELDS)
    out.update(
        model_type=MODEL_TYPE,
        architectures=[ARCHITECTURE],
        num_key_value_heads=config.n_heads,
        head_dim=config.dim // config.n_heads,
        max_position_embeddings=MAX_POSITION_EMBEDDINGS,
        eos_token_id=TOKEN_END_OF_TURN,
        tie_word_embeddings=False,
        torch_dtype="float32",
    )
    return out


def config_from_hf_dict(values: Dict[str, Any]) -> InteractionModelConfig:
    missing = [k for k in HF_FIELDS if k not in values]
    if missing:
        raise CheckpointError(f"config.json lacks {missing}")
    for key, expected in FIXED_FIELDS.items():
        if key in values and float(values[key]) != expected:
            raise CheckpointError(f"config.json {key}={values[key]}: the model's blocks are built for {expected}")
    return InteractionModelConfig(**{ours: values[hf] for hf, ours in HF_FIELDS.items()})


def write_checkpoint(model: MicroturnInteractionModel, directory: Path) -> Path:
    """Writes ``config.json`` and ``model.safetensors`` into ``directory``."""
    from safetensors.torch import save_file  # only the writer needs it

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().contiguous() for name, t in model.state_dict().items()}
    save_file(tensors, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
    (directory / CONFIG_FILE).write_text(json.dumps(config_to_hf_dict(model.config), indent=2) + "\n")
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description="Write a random-weight interaction model checkpoint.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model = MicroturnInteractionModel(InteractionModelConfig(seed=args.seed))
    print(write_checkpoint(model, args.out_dir))


if __name__ == "__main__":
    main()
