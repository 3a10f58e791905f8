"""The gather+gemv MoE runner core inside SGLang: small batches (T <= threshold)
of bf16/fp16 unquantized experts go to the gather+gemv kernels; anything else
(larger T, quantized weights, biases, LoRA hooks, other activations) goes to
SGLang's own grouped Triton runner unchanged, LoRA hooks included. Imported only
inside SGLang."""

import os

from sglang.srt.layers.moe.moe_runner.base import DispatchMoeRunnerCore, MoeRunnerConfig, PermuteMethodPool
from sglang.srt.layers.moe.moe_runner.runner import MoeRunner
from sglang.srt.layers.moe.token_dispatcher.standard import StandardCombineInput
from sglang.srt.layers.moe.utils import MoeRunnerBackend, resolve_moe_runner_backend

from microturn_sglang.hook_targets import MOE_BACKEND_NAME
from microturn_sglang.moe_gather_gemv import DEFAULT_THRESHOLD_TOKENS, gather_gemv_moe

THRESHOLD_TOKENS = int(os.environ.get("MICROTURN_GATHER_GEMV_MAX_TOKENS", DEFAULT_THRESHOLD_TOKENS))
# Set only for SwiGLU variants (e.g. gpt-oss), whose gate/up layout and clamp differ.
_ACTIVATION_VARIANTS = ("gemm1_alpha", "gemm1_beta", "gemm1_clamp_limit", "swiglu_limit")
_QUANT_FLAGS = ("use_mxfp8", "use_fp8_w8a8", "use_int8_w8a8", "use_int8_w8a16", "use_int4_w4a16")


class GatherGemvRunnerCore(DispatchMoeRunnerCore):
    def __init__(self, config: MoeRunnerConfig):
        super().__init__(config)
        self._grouped = MoeRunner(MoeRunnerBackend.TRITON, config)

    @property
    def runner_backend(self):
        return resolve_moe_runner_backend(MOE_BACKEND_NAME)

    def _eligible(self, dispatch_output, quant_info) -> bool:
        x = dispatch_output.hidden_states
        return (
            x.shape[0] <= THRESHOLD_TOKENS
            and self.config.activation == "silu"
            and not self.config.apply_router_weight_on_input
            and getattr(self.config, "is_gated", True)
            and not getattr(self.config, "no_combine", False)
            and all(getattr(self.config, f, None) is None for f in _ACTIVATION_VARIANTS)
            and getattr(quant_info, "b13", None) is None
            and getattr(quant_info, "b2", None) is None
            and not getattr(quant_info, "fuse_swiglu_interleaved", False)
            and not any(getattr(quant_info, f, False) for f in _QUANT_FLAGS)
            and hasattr(quant_info, "w13_weight")
        )

    def _grouped_with_hooks(self, dispatch_output, quant_info, hooks):
        """SGLang's grouped Triton runner with the LoRA hooks its MoeRunner built for
        this layer: its own non-fused path (MoeRunner.run in 0.5.23), permute, run with
        the hooks, permute back. `_grouped.run` alone would take the fused path, which
        has no hooks, and drop the adapter. The hooks were built from the dispatch
        output's hidden states and topk ids, the very tensors the standard-to-triton
        permute hands on, so they are the ones SGLang's own path would build."""
        core = self._grouped.runner_core
        running_state = {}
        pre = PermuteMethodPool.get_pre_permute(dispatch_output.format.value, core.runner_backend.value)
        runner_input = pre(dispatch_output, quant_info, self.config, running_state)
        runner_output = core.run(runner_input, quant_info, running_state, hooks=hooks)
        post = PermuteMethodPool.get_post_permute(core.runner_backend.value, dispatch_output.format.value)
        return post(runner_output, quant_info, self.config, running_state)

    def run_from_dispatch(self, dispatch_output, quant_info, runner_config, hooks=None):
        if hooks is not None:
            return self._grouped_with_hooks(dispatch_output, quant_info, hooks)
        if not self._eligible(dispatch_output, quant_info):
            return self._grouped.run(dispatch_output, quant_info)
        topk = dispatch_output.topk_output
        # gather_gemv_moe picks the down form: split per expert for T <= 2 on an H200,
        # the fixed summation order under --enable-deterministic-inference.
        out = gather_gemv_moe(
            dispatch_output.hidden_states, quant_info.w13_weight, quant_info.w2_weight,
            topk.topk_ids, topk.topk_weights,
        )
        if runner_config.routed_scaling_factor not in (None, 1.0):
            out.mul_(runner_config.routed_scaling_factor)
        return StandardCombineInput(hidden_states=out)


def make_runner_core(config: MoeRunnerConfig) -> GatherGemvRunnerCore:
    return GatherGemvRunnerCore(config)
