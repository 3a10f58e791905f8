"""SGLang general plugin (entry point group ``sglang.srt.plugins``): registers
the gather+gemv MoE runner backend (selected with
``--moe-runner-backend gather_gemv``; every other backend is left untouched)
and, when MICROTURN_GRPC_PORT is set, serves microturn.v1.StreamingSession
from the HTTP server process (grpc_in_server.py). Streaming sessions accept
``session_params.offset`` as a rewind (session_rewind.py)."""

import logging

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

logger = logging.getLogger(__name__)
_loaded = False


def load() -> None:
    """Called by sglang.srt.plugins.load_plugins() in every SGLang process."""
    global _loaded
    if _loaded:
        return
    from microturn_sglang import grpc_in_server

    # Before anything is registered: load_plugins() logs and swallows an
    # Exception, which would leave the server half-patched (no StreamingSession
    # gRPC service, health checks passing). SystemExit is not swallowed.
    try:
        grpc_port = grpc_in_server.check_env_for_sglang()
    except ValueError as err:
        raise SystemExit(f"microturn: {err}") from err
    from sglang.srt.arg_groups.choices import add_moe_runner_backend_choices
    from sglang.srt.layers.moe.moe_runner.runner import register_moe_runner_core
    from sglang.srt.plugins.hook_registry import HookRegistry, HookType

    from microturn_sglang.moe_runner_core import make_runner_core

    register_interaction_config()
    add_moe_runner_backend_choices([MOE_BACKEND_NAME])
    register_moe_runner_core(MOE_BACKEND_NAME, make_runner_core)
    HookRegistry.register(UNQUANT_CREATE_MOE_RUNNER, use_gather_gemv_runner, HookType.AFTER)
    logger.info("microturn: MoE runner backend %r registered", MOE_BACKEND_NAME)
    register_session_hooks(HookRegistry, HookType)
    if grpc_port is not None and grpc_in_server.in_main_process():
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

def register_session_hooks(registry, hook_type) -> None:
    """Streaming-session rewind (session_rewind.py), no per-chunk row
    rewrite (session_row_write.py) and KV reserved per session
    (session_reserve.py). The scheduler processes are where they
    act; the main process records that rewind is on for the gRPC servicer."""
    from microturn_sglang import session_reserve, session_rewind, session_row_write

    registry.register(SESSION_CONTROLLER_OPEN, session_rewind.remember_session_cache, hook_type.AFTER)
    registry.register(SESSION_CREATE_REQ, session_rewind.rewind_streaming_session, hook_type.AROUND)
    registry.register(ALLOC_FOR_EXTEND, session_row_write.alloc_for_extend_marking_borrowers, hook_type.AROUND)
    registry.register(PREFIX_KV_INDICES, session_row_write.prefix_kv_indices_in_place, hook_type.AROUND)
    registry.register(WRITE_CACHE_INDICES, session_row_write.write_cache_indices_new_only, hook_type.AROUND)
    registry.register(ALLOC_TOKEN_SLOTS, session_reserve.alloc_token_slots_from_reservations, hook_type.AROUND)
    registry.register(ALLOC_FOR_DECODE_DEFAULT, session_reserve.alloc_for_decode_marking_sessions, hook_type.AROUND)
    registry.register(SESSION_FREE_KV_ALIGNED, session_reserve.free_tail_into_reservation, hook_type.AROUND)
    registry.register(SESSION_RELEASE, session_reserve.release_with_session, hook_type.AROUND)
    registry.register(SESSION_CACHE_FINISHED, session_reserve.release_on_abort, hook_type.AROUND)
    registry.register(SESSION_HELD_TOKENS, session_reserve.session_held_with_reservations, hook_type.AFTER)
    registry.register(EVICT_TO_FREE_TOKENS, session_reserve.reclaim_slack_before_eviction, hook_type.AROUND)
    registry.register(PREFILL_BUDGET_AVAILABLE, session_reserve.admission_counts_slack, hook_type.AFTER)
    session_rewind.mark_registered()
    logger.info("microturn: streaming-session rewind (session_params.offset), in-place rows and "
                "per-session KV reservations enabled")


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
