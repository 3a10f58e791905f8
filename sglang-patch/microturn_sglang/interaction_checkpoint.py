"""The interaction model's checkpoint: weights as ``model.safetensors`` under the
reference model's own parameter names, a Hugging Face style ``config.json``
(model_type ``microturn_interaction``) that SGLang's config parser reads, and a
byte-level ``tokenizer.json`` whose ids are the model's (byte b is id b, then
the special tokens), so SGLang can serve text without --skip-tokenizer-init.

``python -m microturn_sglang.interaction_checkpoint OUT_DIR [--seed N]`` writes
the tiny random-weight model the tests and the CPU reference server use."""

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict

from microturn_sglang.interaction_model import (
    TOKEN_CONTEXT,
    TOKEN_END_OF_TURN,
    TOKEN_SYSTEM,
    TOKEN_USER,
    InteractionModelConfig,
    MicroturnInteractionModel,
)

MODEL_TYPE = "microturn_interaction"
ARCHITECTURE = "MicroturnInteractionForCausalLM"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
# Spelled so that ordinary text (the chunk renderer's "<user>"-like tags) never
# matches one: a tokenizer turns any added token's text into its id.
SPECIAL_TOKENS = {
    TOKEN_END_OF_TURN: "<|end_of_turn|>",
    TOKEN_SYSTEM: "<|system|>",
    TOKEN_USER: "<|user|>",
    TOKEN_CONTEXT: "<|context|>",
}

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


def _byte_symbols() -> Dict[int, str]:
    """GPT-2's byte -> printable character map, the alphabet of tokenizers'
    ByteLevel pre-tokenizer and decoder."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("\u00a1"), ord("\u00ac") + 1),
                 *range(ord("\u00ae"), ord("\u00ff") + 1)]
    symbols = {b: chr(b) for b in printable}
    extra = (b for b in range(256) if b not in symbols)
    symbols.update({b: chr(256 + i) for i, b in enumerate(extra)})
    return symbols


def write_tokenizer(directory: Path) -> None:
    """A BPE tokenizer with no merges over the 256 byte symbols: every byte is
    its own token and its id is the byte's value."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    symbols = _byte_symbols()
    tokenizer = Tokenizer(models.BPE(vocab={symbols[b]: b for b in range(256)}, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    ordered = sorted(SPECIAL_TOKENS.items())
    if [i for i, _ in ordered] != list(range(256, 256 + len(ordered))):
        raise CheckpointError("special token ids must follow the 256 bytes without gaps")
    tokenizer.add_special_tokens([AddedToken(text, special=True, normalized=False) for _, text in ordered])
    tokenizer.save(str(directory / TOKENIZER_FILE))
    settings = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": SPECIAL_TOKENS[TOKEN_END_OF_TURN],
                "model_max_length": MAX_POSITION_EMBEDDINGS, "clean_up_tokenization_spaces": False}
    (directory / TOKENIZER_CONFIG_FILE).write_text(json.dumps(settings, indent=2) + "\n")


def write_checkpoint(model: MicroturnInteractionModel, directory: Path) -> Path:
    """Writes config.json, model.safetensors and the tokenizer into ``directory``."""
    try:  # SGLang's own dependencies; only the writer needs them
        import tokenizers  # noqa: F401
        from safetensors.torch import save_file
    except ImportError as err:
        raise RuntimeError(f"writing a checkpoint needs safetensors and tokenizers ({err})") from err

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().contiguous() for name, t in model.state_dict().items()}
    save_file(tensors, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
    (directory / CONFIG_FILE).write_text(json.dumps(config_to_hf_dict(model.config), indent=2) + "\n")
    write_tokenizer(directory)
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
