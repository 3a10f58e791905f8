"""MicroturnInteractionForCausalLM against SGLang 0.5.23's own code on CPU: the
architecture resolves through SGLang's ModelRegistry and model loader, the
checkpoint loads, and extend/decode forwards through RadixAttention,
TorchNativeAttnBackend, SGLang's KV pools and LogitsProcessor give the
reference model's logits.

Stand-in: the ModelRunner handed to TorchNativeAttnBackend is a namespace with
the three attributes the backend reads (device, req_to_token_pool,
token_to_kv_pool); a real ModelRunner needs torch.distributed and a GPU memory
profile. Everything else below is SGLang's."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
import torch

from upstream import requires_sglang

pytestmark = requires_sglang

from microturn_sglang.interaction_checkpoint import (  # noqa: E402
    ARCHITECTURE,
    CONFIG_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    write_checkpoint,
)
from microturn_sglang.interaction_model import (  # noqa: E402
    TOKEN_END_OF_TURN,
    TOKEN_USER,
    VOCAB_SIZE,
    InteractionModelConfig,
    LayerKvCache,
    MicroturnInteractionModel,
)

SEED = 7
PKG_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def reference():
    return MicroturnInteractionModel(InteractionModelConfig(seed=SEED, moe_threshold_tokens=0)).eval()


@pytest.fixture(scope="module")
def checkpoint(reference, tmp_path_factory):
    return write_checkpoint(reference, tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def sglang_cpu():
    """Publishes a ServerArgs for CPU and the torch-native backend, as the
    scheduler does before it builds a model, and withdraws it afterwards."""
    from sglang.srt.runtime_context import get_context

    from microturn_sglang.sglang_plugin import register_interaction_config

    register_interaction_config()
    override = get_context().override_server_args(device="cpu", attention_backend="torch_native")
    override.install()
    yield
    override.restore()


def build_model(checkpoint, threshold_tokens=None):
    from sglang.srt.model_loader.weight_utils import safetensors_weights_iterator
    from transformers import AutoConfig

    from microturn_sglang.sglang_model import MicroturnInteractionForCausalLM

    config = AutoConfig.from_pretrained(str(checkpoint))
    if threshold_tokens is not None:
        config.moe_threshold_tokens = threshold_tokens
    model = MicroturnInteractionForCausalLM(config).eval()
    loaded = model.load_weights(safetensors_weights_iterator([str(checkpoint / WEIGHTS_FILE)]))
    return model, loaded


def test_config_json_parses_through_autoconfig(sglang_cpu, checkpoint, reference):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(checkpoint))
    assert type(config).__name__ == "MicroturnInteractionConfig"
    assert config.architectures == [ARCHITECTURE]
    # The seed only drew the random weights; the checkpoint carries the weights themselves.
    assert dataclasses.replace(config.to_interaction_config(), seed=SEED) == reference.config
    assert json.loads((checkpoint / CONFIG_FILE).read_text())["num_key_value_heads"] == reference.config.n_heads


def test_tokenizer_ids_are_the_models(sglang_cpu, checkpoint):
    from sglang.srt.utils.hf_transformers.tokenizer import get_tokenizer

    tokenizer = get_tokenizer(str(checkpoint))
    text = "<|user|>h\u00e9 <user>"  # the plain tag stays bytes; only the spelled special matches
    ids = tokenizer.encode(text, add_special_tokens=True)
    assert ids == [TOKEN_USER, *"h\u00e9 <user>".encode("utf-8")]
    assert tokenizer.decode(ids) == text
    assert tokenizer.decode([*b"ok", TOKEN_END_OF_TURN], skip_special_tokens=True) == "ok"
    assert tokenizer.eos_token_id == TOKEN_END_OF_TURN and len(tokenizer) == VOCAB_SIZE


def test_constructs_and_loads_every_weight(sglang_cpu, checkpoint, reference):
    model, loaded = build_model(checkpoint)
    expected = reference.state_dict()
    assert loaded == set(expected)
    for name, param in model.named_parameters():
        assert torch.equal(param, expected[name]), name
    assert [type(layer.attn.radix).__name__ for layer in model.layers] == ["RadixAttention"] * 2
    assert [layer.attn.radix.layer_id for layer in model.layers] == [0, 1]


def test_load_weights_refuses_unknown_misshapen_and_missing(sglang_cpu, checkpoint, reference):
    model, _ = build_model(checkpoint)
    weights = list(reference.state_dict().items())
    with pytest.raises(CheckpointError, match="has no parameter"):
        model.load_weights(weights + [("layers.9.attn.qkv.weight", torch.zeros(1))])
    with pytest.raises(CheckpointError, match="checkpoint shape"):
        model.load_weights([(weights[0][0], torch.zeros(3, 3))])
    with pytest.raises(CheckpointError, match="lacks"):
        model.load_weights(weights[1:])


def test_refuses_configs_it_cannot_serve(sglang_cpu, checkpoint):
    from transformers import AutoConfig

    from microturn_sglang.sglang_model import MicroturnInteractionForCausalLM

    config = AutoConfig.from_pretrained(str(checkpoint), num_key_value_heads=2)
    with pytest.raises(ValueError, match="no GQA"):
        MicroturnInteractionForCausalLM(config)
    with pytest.raises(ValueError, match="unquantized"):
        MicroturnInteractionForCausalLM(AutoConfig.from_pretrained(str(checkpoint)),
                                        quant_config=types.SimpleNamespace(get_name=lambda: "fp8"))


class SglangKv:
    """SGLang's req-to-token and token-to-KV pools with the torch-native
    backend; hands out scattered KV slots, as SGLang's allocator may."""

    def __init__(self, config, num_slots=512):
        from sglang.srt.layers.attention.torch_native_backend import TorchNativeAttnBackend
        from sglang.srt.mem_cache.memory_pool import MHATokenToKVPool, ReqToTokenPool

        self.req_to_token = ReqToTokenPool(size=4, max_context_len=128, device="cpu", enable_memory_saver=False)
        self.kv = MHATokenToKVPool(size=num_slots, page_size=1, dtype=torch.float32, head_num=config.n_heads,
                                   head_dim=config.dim // config.n_heads, layer_num=config.n_layers,
                                   device="cpu", enable_memory_saver=False)
        runner = types.SimpleNamespace(device="cpu", req_to_token_pool=self.req_to_token, token_to_kv_pool=self.kv)
        self.backend = TorchNativeAttnBackend(runner)
        self.free = (torch.randperm(num_slots, generator=torch.Generator().manual_seed(1)) + 1).tolist()
        self.lens = {}

    def _place(self, row, n):
        prefix = self.lens.get(row, 0)
        slots = torch.tensor([self.free.pop() for _ in range(n)], dtype=torch.int64)
        self.req_to_token.req_to_token[row, prefix : prefix + n] = slots.to(torch.int32)
        self.lens[row] = prefix + n
        return prefix, slots

    def run(self, model, mode, batch):
        """batch: [(req row, new token ids)]; returns next-token logits per request."""
        from sglang.srt.model_executor.forward_batch_info import CaptureHiddenMode, ForwardBatch, ForwardMode
        from sglang.srt.model_executor.forward_context import ForwardContext, forward_context

        placed = [(row, ids, *self._place(row, len(ids))) for row, ids in batch]
        seq_lens = torch.tensor([p[2] + len(p[1]) for p in placed])
        kwargs = dict(
            forward_mode=mode, batch_size=len(batch), capture_hidden_mode=CaptureHiddenMode.NULL,
            input_ids=torch.tensor([t for p in placed for t in p[1]]),
            positions=torch.cat([torch.arange(p[2], p[2] + len(p[1])) for p in placed]),
            req_pool_indices=torch.tensor([p[0] for p in placed]),
            out_cache_loc=torch.cat([p[3] for p in placed]),
            seq_lens=seq_lens, seq_lens_cpu=seq_lens, seq_lens_sum=int(seq_lens.sum()),
        )
        if mode == ForwardMode.EXTEND:
            new = [len(p[1]) for p in placed]
            prefixes = [p[2] for p in placed]
            kwargs.update(
                extend_num_tokens=sum(new), extend_seq_lens=torch.tensor(new), extend_seq_lens_cpu=new,
                extend_prefix_lens=torch.tensor(prefixes), extend_prefix_lens_cpu=prefixes,
                extend_start_loc=torch.cumsum(torch.tensor([0] + new[:-1]), 0),
            )
        forward_batch = ForwardBatch(**kwargs)
        self.backend.init_forward_metadata(forward_batch)
        with forward_context(ForwardContext(attn_backend=self.backend), forward_batch=forward_batch):
            out = model(forward_batch.input_ids, forward_batch.positions, forward_batch)
        return out.next_token_logits


class ReferenceSessions:
    """The reference model, one contiguous KV slice per request."""

    def __init__(self, model):
        self.model, self.kv, self.lens = model, LayerKvCache(model.config, num_slots=256), {}

    def run(self, row, ids):
        start, past = 64 * row, self.lens.get(row, 0)
        hidden = self.model(self.model.embed_tokens(ids), self.kv, start, past)
        self.lens[row] = past + len(ids)
        return self.model.lm_head(hidden)[0]


@pytest.mark.parametrize("threshold_tokens", [0, 16], ids=["moe-torch", "moe-gather-gemv"])
def test_extend_decode_and_chunk_logits_match_the_reference(sglang_cpu, checkpoint, reference, threshold_tokens):
    """Two requests prefilled in one batch, decoded together, then one gets a
    further chunk on top of its KV (a streaming-session turn)."""
    from sglang.srt.model_executor.forward_batch_info import ForwardMode

    model, _ = build_model(checkpoint, threshold_tokens)
    sglang, ref = SglangKv(reference.config), ReferenceSessions(reference)
    prompts = {1: [TOKEN_USER, *b"hello there"], 2: [TOKEN_USER, *b"hi!"]}

    steps = [
        (ForwardMode.EXTEND, list(prompts.items())),
        (ForwardMode.DECODE, None),  # each request's argmax from the step before
        (ForwardMode.EXTEND, [(1, [TOKEN_USER, *b"more"])]),
        (ForwardMode.DECODE, None),
    ]
    last = {}
    for mode, batch in steps:
        if batch is None:
            batch = [(row, [int(logits.argmax())]) for row, logits in last.items()]
        got = sglang.run(model, mode, batch)
        assert got.shape == (len(batch), reference.config.vocab_size)
        for (row, ids), logits in zip(batch, got):
            expected = ref.run(row, ids)
            torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)
            last[row] = logits
    assert sglang.lens == ref.lens == {1: 12 + 1 + 5 + 1, 2: 4 + 1 + 1}


def test_sglang_loads_the_checkpoint_as_a_server_would(checkpoint, reference):
    """A fresh process with SGLANG_EXTERNAL_MODEL_PACKAGE set: SGLang's
    load_plugins() (entry points) registers the config, ModelConfig parses the
    directory, get_model_architecture resolves through ModelRegistry, and
    SGLang's DefaultModelLoader builds the model and loads the safetensors."""
    script = textwrap.dedent(f"""
        import json, torch
        from sglang.srt.plugins import load_plugins
        load_plugins()
        from sglang.srt.runtime_context import get_context
        get_context().override_server_args(device="cpu", attention_backend="torch_native").install()
        from sglang.srt.configs.device_config import DeviceConfig
        from sglang.srt.configs.load_config import LoadConfig
        from sglang.srt.configs.model_config import ModelConfig
        from sglang.srt.model_loader import get_model
        from sglang.srt.model_loader.utils import get_model_architecture
        from sglang.srt.models.registry import ModelRegistry
        config = ModelConfig(model_path={str(checkpoint)!r}, dtype="float32")
        cls, arch = get_model_architecture(config)
        model = get_model(model_config=config, load_config=LoadConfig(), device_config=DeviceConfig(device="cpu"))
        torch.save({{k: v for k, v in model.state_dict().items()}}, {str(checkpoint / "loaded.pt")!r})
        print(json.dumps(dict(arch=arch, cls=cls.__module__ + "." + cls.__name__, model=type(model).__name__,
                              defaults_imported=ModelRegistry._default_models_loaded,
                              context_len=config.context_len, kv_heads=config.get_total_num_kv_heads())))
    """)
    env = dict(os.environ, SGLANG_EXTERNAL_MODEL_PACKAGE="microturn_sglang.sglang_models",
               PYTHONPATH=os.pathsep.join(filter(None, [str(PKG_ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == dict(arch=ARCHITECTURE, cls="microturn_sglang.sglang_model." + ARCHITECTURE,
                          model=ARCHITECTURE, defaults_imported=False, context_len=65536,
                          kv_heads=reference.config.n_heads)
    loaded = torch.load(checkpoint / "loaded.pt")
    for name, tensor in reference.state_dict().items():
        assert torch.equal(loaded[name], tensor), name
