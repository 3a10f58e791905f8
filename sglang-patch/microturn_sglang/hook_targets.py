"""Every SGLang symbol the patch touches, in one place, so the whole patch
surface is visible at a glance. tests/test_hook_targets.py checks that each one
resolves in the pinned SGLang release (sglang-patch/SGLANG_VERSION)."""

from dataclasses import dataclass

MOE_BACKEND_NAME = "gather_gemv"


@dataclass(frozen=True)
class HookTarget:
    path: str  # dotted path: module, then attribute chain
    use: str  # "hook" (HookRegistry target), "call" (API we call), "base" (class we subclass), "read" (type we read)
    why: str


HOOK_REGISTRY = "sglang.srt.plugins.hook_registry.HookRegistry"
UNQUANT_CREATE_MOE_RUNNER = "sglang.srt.layers.quantization.unquant.UnquantizedFusedMoEMethod.create_moe_runner"

HOOK_TARGETS = (
    HookTarget(HOOK_REGISTRY + ".register", "call", "registers the hooks below at plugin load"),
    HookTarget("sglang.srt.plugins.hook_registry.HookType", "read", "AFTER hook type"),
    HookTarget("sglang.srt.plugins.GENERAL_PLUGINS_GROUP", "read", "entry-point group our pyproject declares"),
    HookTarget("sglang.srt.arg_groups.choices.add_moe_runner_backend_choices", "call",
               "lets --moe-runner-backend accept gather_gemv"),
    HookTarget("sglang.srt.layers.moe.moe_runner.runner.register_moe_runner_core", "call",
               "registers the gather+gemv runner core under its backend name"),
    HookTarget("sglang.srt.layers.moe.moe_runner.runner.MoeRunner", "call",
               "the grouped (fused Triton) runner used above the token threshold"),
    HookTarget("sglang.srt.layers.moe.moe_runner.base.DispatchMoeRunnerCore", "base",
               "runner core that consumes the standard dispatch output directly"),
    HookTarget("sglang.srt.layers.moe.moe_runner.base.MoeRunnerConfig", "read",
               "activation, routed_scaling_factor, apply_router_weight_on_input"),
    HookTarget("sglang.srt.layers.moe.moe_runner.triton.TritonMoeQuantInfo", "read",
               "w13_weight / w2_weight handed to the runner by the unquantized method"),
    HookTarget("sglang.srt.layers.moe.token_dispatcher.standard.StandardCombineInput", "read",
               "what a runner core returns"),
    HookTarget("sglang.srt.layers.moe.utils.MoeRunnerBackend", "read", "the built-in TRITON backend"),
    HookTarget("sglang.srt.layers.moe.utils.get_moe_runner_backend", "call", "the server's selected backend"),
    HookTarget("sglang.srt.layers.moe.utils.resolve_moe_runner_backend", "call",
               "the RegisteredMoeRunnerBackend for our name"),
    HookTarget(UNQUANT_CREATE_MOE_RUNNER, "hook",
               "AFTER hook: the bf16 MoE method always builds a TRITON runner; swap in ours when selected"),
)
