"""The plugin's own logic against stand-ins for the SGLang modules it imports
(SGLang's runtime cannot be imported on CPU here; test_hook_targets.py checks
the real names and signatures against the pinned source)."""

import enum
import importlib
import sys
import types
from dataclasses import dataclass
from typing import NamedTuple, Optional

import pytest
import torch

from microturn_sglang import session_rewind
from microturn_sglang.hook_targets import (
    ALLOC_FOR_DECODE_DEFAULT,
    ALLOC_FOR_EXTEND,
    ALLOC_TOKEN_SLOTS,
    EVICT_TO_FREE_TOKENS,
    HTTP_SETUP_AND_RUN,
    MOE_BACKEND_NAME,
    PREFILL_BUDGET_AVAILABLE,
    PREFIX_KV_INDICES,
    SESSION_CACHE_FINISHED,
    SESSION_CONTROLLER_OPEN,
    SESSION_CREATE_REQ,
    SESSION_FREE_KV_ALIGNED,
    SESSION_HELD_TOKENS,
    SESSION_RELEASE,
    UNQUANT_CREATE_MOE_RUNNER,
    WRITE_CACHE_INDICES,
)
from microturn_sglang.moe_gather_gemv import moe_reference


class Backend(enum.Enum):
    TRITON = "triton"

    def is_triton(self):
        return self is Backend.TRITON


@dataclass(frozen=True)
class Registered:
    value: str

    def is_triton(self):
        return False


@dataclass
class RunnerConfig:
    activation: str = "silu"
    is_gated: bool = True
    apply_router_weight_on_input: bool = False
    no_combine: bool = False
    routed_scaling_factor: Optional[float] = None
    gemm1_alpha: Optional[float] = None
    gemm1_beta: Optional[float] = None
    gemm1_clamp_limit: Optional[float] = None
    swiglu_limit: Optional[float] = None


class CombineInput(NamedTuple):
    hidden_states: torch.Tensor


class FakeTritonCore:
    """SGLang's TritonRunnerCore as the hooked path calls it: permuted input in,
    the hooks applied (here: added to the output) out."""

    runner_backend = Backend.TRITON

    def __init__(self):
        self.hooks = []

    def run(self, runner_input, quant_info, running_state, hooks=None):
        self.hooks.append(hooks)
        t = runner_input.topk_output
        out = moe_reference(runner_input.hidden_states, quant_info.w13_weight, quant_info.w2_weight, t.topk_ids, t.topk_weights)
        return out + hooks


class FakePermuteMethodPool:
    @staticmethod
    def get_pre_permute(dispatch_format, runner_format):
        assert (dispatch_format, runner_format) == ("standard", "triton")
        return lambda dispatch_output, quant_info, config, state: dispatch_output

    @staticmethod
    def get_post_permute(runner_format, combine_format):
        assert (runner_format, combine_format) == ("triton", "standard")
        return lambda runner_output, quant_info, config, state: CombineInput(runner_output)


class FakeMoeRunner:
    built = []

    def __init__(self, backend, config):
        self.runner_backend, self.config, self.calls = backend, config, 0
        self.runner_core = FakeTritonCore()
        FakeMoeRunner.built.append(self)

    def run(self, dispatch_output, quant_info):
        self.calls += 1
        t = dispatch_output.topk_output
        return CombineInput(moe_reference(dispatch_output.hidden_states, quant_info.w13_weight,
                                          quant_info.w2_weight, t.topk_ids, t.topk_weights))


class PretrainedConfig:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


# Modules that import the stand-ins: imported afresh in the test, dropped after it.
BUILT_ON_FAKES = ("microturn_sglang.moe_runner_core", "microturn_sglang.interaction_hf_config")


@pytest.fixture
def fake_sglang(monkeypatch):
    calls = {"choices": [], "cores": {}, "hooks": [], "selected": Registered(MOE_BACKEND_NAME), "configs": {}}

    class DispatchMoeRunnerCore:
        def __init__(self, config):
            self.config = config

    mods = {
        "sglang.srt.arg_groups.choices": dict(add_moe_runner_backend_choices=calls["choices"].extend),
        "sglang.srt.layers.moe.moe_runner.runner": dict(
            register_moe_runner_core=lambda name, f: calls["cores"].__setitem__(name, f), MoeRunner=FakeMoeRunner),
        "sglang.srt.plugins.hook_registry": dict(
            HookRegistry=types.SimpleNamespace(register=lambda *a: calls["hooks"].append(a)),
            HookType=types.SimpleNamespace(AFTER="after", AROUND="around")),
        "sglang.srt.layers.moe.moe_runner.base": dict(
            DispatchMoeRunnerCore=DispatchMoeRunnerCore, MoeRunnerConfig=RunnerConfig, PermuteMethodPool=FakePermuteMethodPool),
        "sglang.srt.layers.moe.token_dispatcher.standard": dict(StandardCombineInput=CombineInput),
        "sglang.srt.layers.moe.utils": dict(
            MoeRunnerBackend=Backend, resolve_moe_runner_backend=Registered,
            get_moe_runner_backend=lambda: calls["selected"]),
        "transformers": dict(
            AutoConfig=types.SimpleNamespace(register=lambda t, c: calls["configs"].__setitem__(t, c)),
            PretrainedConfig=PretrainedConfig),
    }
    for name, attrs in mods.items():
        monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(**attrs))
    monkeypatch.delenv("MICROTURN_GRPC_PORT", raising=False)
    for name in BUILT_ON_FAKES:
        monkeypatch.delitem(sys.modules, name, raising=False)
    plugin = importlib.reload(importlib.import_module("microturn_sglang.sglang_plugin"))
    FakeMoeRunner.built.clear()
    monkeypatch.setattr(session_rewind, "_registered", False)
    yield plugin, calls
    for name in BUILT_ON_FAKES:
        sys.modules.pop(name, None)
    plugin._loaded = False


SESSION_HOOKS = [(SESSION_CONTROLLER_OPEN, "after"), (SESSION_CREATE_REQ, "around"), (ALLOC_FOR_EXTEND, "around"),
                 (PREFIX_KV_INDICES, "around"), (WRITE_CACHE_INDICES, "around"), (ALLOC_TOKEN_SLOTS, "around"),
                 (ALLOC_FOR_DECODE_DEFAULT, "around"), (SESSION_FREE_KV_ALIGNED, "around"),
                 (SESSION_RELEASE, "around"), (SESSION_CACHE_FINISHED, "around"), (SESSION_HELD_TOKENS, "after"),
                 (EVICT_TO_FREE_TOKENS, "around"), (PREFILL_BUDGET_AVAILABLE, "after")]


def test_load_registers_backend_core_and_hook_once(fake_sglang):
    plugin, calls = fake_sglang
    plugin.load()
    plugin.load()
    assert calls["choices"] == [MOE_BACKEND_NAME]
    assert list(calls["cores"]) == [MOE_BACKEND_NAME]
    assert [(h[0], h[2]) for h in calls["hooks"]] == [(UNQUANT_CREATE_MOE_RUNNER, "after"), *SESSION_HOOKS]
    assert calls["hooks"][2][1] is session_rewind.rewind_streaming_session
    assert session_rewind.rewind_enabled()
    assert list(calls["configs"]) == ["microturn_interaction"]
    assert calls["configs"]["microturn_interaction"].__name__ == "MicroturnInteractionConfig"


def test_grpc_hook_is_registered_only_with_a_port_in_the_main_process(fake_sglang, monkeypatch):
    plugin, calls = fake_sglang
    monkeypatch.setenv("MICROTURN_GRPC_PORT", "50051")
    monkeypatch.setattr("multiprocessing.parent_process", lambda: object())  # a scheduler process
    plugin.load()
    assert [h[0] for h in calls["hooks"]] == [UNQUANT_CREATE_MOE_RUNNER] + [t for t, _ in SESSION_HOOKS]
    plugin._loaded = False
    calls["hooks"].clear()
    monkeypatch.setattr("multiprocessing.parent_process", lambda: None)
    plugin.load()
    from microturn_sglang.grpc_in_server import serve_session_grpc_with_http

    assert calls["hooks"][len(SESSION_HOOKS) + 1] == (HTTP_SETUP_AND_RUN, serve_session_grpc_with_http, "around")


@pytest.mark.parametrize("env, named", [
    ({"MICROTURN_GRPC_PORT": "5006l"}, "MICROTURN_GRPC_PORT"),
    ({"MICROTURN_GRPC_PORT": "70000"}, "MICROTURN_GRPC_PORT"),
    ({"MICROTURN_GRPC_PORT": "0"}, "MICROTURN_GRPC_PORT"),  # the sidecar could never find a random port
    ({"MICROTURN_GRPC_PORT": "50061", "MICROTURN_GRPC_HOST": "0.0.0.0:50061"}, "MICROTURN_GRPC_HOST"),
    ({"MICROTURN_GRPC_PORT": "50061", "MICROTURN_GRPC_HOST": "local host"}, "MICROTURN_GRPC_HOST"),
], ids=["typo", "range", "zero", "host-with-port", "space"])
def test_bad_grpc_env_stops_before_anything_is_registered(fake_sglang, monkeypatch, env, named):
    """load_plugins() swallows an Exception from a plugin: a ValueError after the
    MoE backend and session hooks were registered left a half-patched server
    without the gRPC service. The plugin checks the environment first and
    raises SystemExit, which load_plugins does not catch."""
    plugin, calls = fake_sglang
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("multiprocessing.parent_process", lambda: None)
    with pytest.raises(SystemExit) as info:
        try:
            plugin.load()
        except Exception:  # what sglang.srt.plugins.load_plugins does
            pytest.fail("swallowed by load_plugins")
    assert named in str(info.value.code) and repr(env[named]) in str(info.value.code)
    assert calls["choices"] == [] and calls["cores"] == {} and calls["hooks"] == [] and calls["configs"] == {}
    assert not plugin._loaded and not session_rewind.rewind_enabled()


def test_ipv6_host_is_accepted_in_the_main_process(fake_sglang, monkeypatch):
    plugin, calls = fake_sglang
    monkeypatch.setenv("MICROTURN_GRPC_PORT", "50061")
    monkeypatch.setenv("MICROTURN_GRPC_HOST", "::")
    monkeypatch.setattr("multiprocessing.parent_process", lambda: None)
    plugin.load()
    assert calls["hooks"][-1][0] == HTTP_SETUP_AND_RUN


def test_real_load_plugins_does_not_swallow_a_bad_port(tmp_path):
    """Against SGLang's own load_plugins() (entry point group
    sglang.srt.plugins): the process stops with the message instead of
    serving half-patched."""
    import importlib.metadata
    import os
    import subprocess

    if not any(ep.value.startswith("microturn_sglang") for ep in importlib.metadata.entry_points(group="sglang.srt.plugins")):
        pytest.skip("microturn_sglang is not installed as an sglang.srt.plugins entry point")
    probe = ("import importlib.util, sys\n"
             "if importlib.util.find_spec('sglang.srt.plugins') is None: sys.exit(77)\n"
             "try:\n"
             "    from sglang.srt.plugins import load_plugins\n"
             "except Exception as err:\n"
             "    print('cannot import SGLang:', err); sys.exit(77)\n"
             "load_plugins()\n"
             "print('SERVED HALF-PATCHED')\n")
    env = {**os.environ, "MICROTURN_GRPC_PORT": "5006l"}
    env.pop("MICROTURN_GRPC_HOST", None)
    done = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    if done.returncode == 77:
        pytest.skip(f"SGLang's plugin loader cannot be imported here: {done.stdout.strip()}")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "SERVED HALF-PATCHED" not in done.stdout
    assert "microturn: MICROTURN_GRPC_PORT must be a TCP port" in done.stderr and "'5006l'" in done.stderr


def test_after_hook_swaps_runner_only_when_selected(fake_sglang):
    plugin, calls = fake_sglang
    method = types.SimpleNamespace(runner=FakeMoeRunner(Backend.TRITON, RunnerConfig()))
    plugin.use_gather_gemv_runner(None, method, None, RunnerConfig())
    assert method.runner.runner_backend == Registered(MOE_BACKEND_NAME)
    calls["selected"] = Backend.TRITON
    other = types.SimpleNamespace(runner=FakeMoeRunner(Backend.TRITON, RunnerConfig()))
    plugin.use_gather_gemv_runner(None, other, None, RunnerConfig())
    assert other.runner.runner_backend is Backend.TRITON


def dispatch(tokens, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(tokens, 32, generator=g).bfloat16()
    w13 = (torch.randn(8, 32, 32, generator=g) / 6).bfloat16()
    w2 = (torch.randn(8, 32, 16, generator=g) / 4).bfloat16()
    weights, ids = torch.softmax(torch.randn(tokens, 8, generator=g), -1).topk(2, -1)
    topk = types.SimpleNamespace(topk_ids=ids.int(), topk_weights=weights)
    quant = types.SimpleNamespace(w13_weight=w13, w2_weight=w2, b13=None, b2=None, use_fp8_w8a8=False)
    standard = types.SimpleNamespace(value="standard")
    return types.SimpleNamespace(hidden_states=x, topk_output=topk, format=standard), quant


def rel(a, b):
    return float((a.float() - b.float()).norm() / b.float().norm())


def test_runner_core_small_batches_use_gather_gemv_others_fall_back(fake_sglang):
    plugin, calls = fake_sglang
    plugin.load()
    core = calls["cores"][MOE_BACKEND_NAME](RunnerConfig(routed_scaling_factor=2.0))
    grouped = FakeMoeRunner.built[-1]
    small, quant = dispatch(3)
    out = core.run_from_dispatch(small, quant, core.config).hidden_states
    expected = 2.0 * moe_reference(small.hidden_states, quant.w13_weight, quant.w2_weight,
                                   small.topk_output.topk_ids, small.topk_output.topk_weights).float()
    assert grouped.calls == 0 and rel(out, expected) <= 1e-2
    large, quant_l = dispatch(40)
    core.run_from_dispatch(large, quant_l, core.config)
    quant.use_fp8_w8a8 = True
    core.run_from_dispatch(small, quant, core.config)
    assert grouped.calls == 2


def test_runner_core_runs_lora_hooks_through_the_grouped_runner(fake_sglang):
    """A batch with LoRA hooks (any size) goes through the grouped runner's
    non-fused path with those hooks: `run` alone would take the fused path and
    drop the adapter."""
    plugin, calls = fake_sglang
    plugin.load()
    core = calls["cores"][MOE_BACKEND_NAME](RunnerConfig())
    grouped = FakeMoeRunner.built[-1]
    small, quant = dispatch(3)
    out = core.run_from_dispatch(small, quant, core.config, hooks=1.5).hidden_states
    t = small.topk_output
    expected = moe_reference(small.hidden_states, quant.w13_weight, quant.w2_weight, t.topk_ids, t.topk_weights) + 1.5
    assert grouped.runner_core.hooks == [1.5] and grouped.calls == 0
    assert rel(out, expected) <= 1e-3


