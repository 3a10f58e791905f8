"""SGLang general plugin (entry point group ``sglang.srt.plugins``): registers
the gather+gemv MoE runner backend (selected with
``--moe-runner-backend gather_gemv``; every other backend is left untouched)
and, when MICROTURN_GRPC_PORT is set, serves microturn.v1.StreamingSession
from the HTTP server process (grpc_in_server.py)."""

import logging

from microturn_sglang.hook_targets import HTTP_SETUP_AND_RUN, MOE_BACKEND_NAME, UNQUANT_CREATE_MOE_RUNNER

logger = logging.getLogger(__name__)
_loaded = False


def load() -> None:
    """Called by sglang.srt.plugins.load_plugins() in every SGLang process."""
    global _loaded
    if _loaded:
        return
    from sglang.srt.arg_groups.choices import add_moe_runner_backend_choices
    from sglang.srt.layers.moe.moe_runner.runner import register_moe_runner_core
    from sglang.srt.plugins.hook_registry import HookRegistry, HookType

    from microturn_sglang import grpc_in_server
    from microturn_sglang.moe_runner_core import make_runner_core

    register_interaction_config()
    add_moe_runner_backend_choices([MOE_BACKEND_NAME])
    register_moe_runner_core(MOE_BACKEND_NAME, make_runner_core)
    HookRegistry.register(UNQUANT_CREATE_MOE_RUNNER, use_gather_gemv_runner, HookType.AFTER)
    logger.info("microturn: MoE runner backend %r registered", MOE_BACKEND_NAME)
    if grpc_in_server.grpc_port_from_env() is not None and grpc_in_server.in_main_process():
        # Registered only where the HTTP server runs: applying it imports
        # http_server, which scheduler processes have no use for.
        HookRegistry.register(HTTP_SETUP_AND_RUN, grpc_in_server.serve_session_grpc_with_http, HookType.AROUND)
        logger.info("microturn: StreamingSession gRPC will start with the HTTP server")
    _loaded = True


def register_interaction_config() -> None:
    """AutoConfig is what SGLang's config parser calls on a model directory; an
    unknown model_type fails there, before any model class is looked up."""
    from transformers import AutoConfig

    from microturn_sglang.interaction_hf_config import MicroturnInteractionConfig

    try:
        AutoConfig.register(MicroturnInteractionConfig.model_type, MicroturnInteractionConfig)
    except ValueError as err:  # a second load in this process (tests, re-entry)
        if "already" not in str(err):
            raise


def use_gather_gemv_runner(result, method, layer, moe_runner_config):
    """AFTER create_moe_runner: the unquantized method hard-codes the TRITON
    runner; when the server selected gather_gemv, rebuild it with ours (which
    keeps a TRITON runner for batches above the threshold)."""
    from sglang.srt.layers.moe.moe_runner.runner import MoeRunner
    from sglang.srt.layers.moe.utils import get_moe_runner_backend

    backend = get_moe_runner_backend()
    if backend.value == MOE_BACKEND_NAME and method.runner.runner_backend.is_triton():
        method.runner = MoeRunner(backend, moe_runner_config)
    return result
