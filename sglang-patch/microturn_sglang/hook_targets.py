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
HTTP_SERVER = "sglang.srt.entrypoints.http_server"
HTTP_SETUP_AND_RUN = HTTP_SERVER + "._setup_and_run_http_server"
TOKENIZER_MANAGER = "sglang.srt.managers.tokenizer_manager.TokenizerManager"
TOKENIZER_CONTROL = "sglang.srt.managers.tokenizer_control_mixin.TokenizerControlMixin"
IO_STRUCT = "sglang.srt.managers.io_struct"
SESSION_CREATE_REQ = "sglang.srt.session.session_controller.Session.create_req"
SESSION_CONTROLLER_OPEN = "sglang.srt.session.session_controller.SessionController.open"
ALLOCATION = "sglang.srt.mem_cache.allocation"
ALLOC_FOR_EXTEND = ALLOCATION + ".alloc_for_extend"
PREFIX_KV_INDICES = ALLOCATION + "._prefix_kv_indices"
WRITE_CACHE_INDICES = ALLOCATION + ".write_cache_indices"
ALLOC_TOKEN_SLOTS = ALLOCATION + ".alloc_token_slots"
ALLOC_FOR_DECODE_DEFAULT = ALLOCATION + ".alloc_for_decode_default"
STREAMING_SESSION = "sglang.srt.session.streaming_session.StreamingSession"
SESSION_FREE_KV_ALIGNED = STREAMING_SESSION + "._free_kv_aligned"
SESSION_RELEASE = STREAMING_SESSION + ".release_session"
SESSION_CACHE_FINISHED = STREAMING_SESSION + ".try_cache_finished_req"
EVICT_TO_FREE_TOKENS = "sglang.srt.mem_cache.allocator.base.BaseTokenToKVPoolAllocator.evict_to_free_tokens"
PREFILL_BUDGET_AVAILABLE = "sglang.srt.mem_cache.prefill_budget.PrefillBudget._available_and_evictable"
SESSION_HELD_TOKENS = ("sglang.srt.managers.scheduler_components.pool_stats_observer."
                       "SchedulerPoolStatsObserver.session_held_tokens")

# TokenizerManager attributes the StreamingSession servicer reads; set in
# TokenizerManager.__init__ (instance attributes, checked by the tests there).
TOKENIZER_MANAGER_ATTRS = ("context_len", "served_model_name", "incremental_streaming_output")

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
    HookTarget("sglang.srt.layers.moe.moe_runner.base.PermuteMethodPool", "call",
               "the grouped runner's permutes, for batches with LoRA hooks (MoeRunner.run's non-fused path)"),
    HookTarget("sglang.srt.layers.moe.moe_runner.base.MoeRunnerConfig", "read",
               "activation, routed_scaling_factor, apply_router_weight_on_input"),
    HookTarget("sglang.srt.layers.moe.moe_runner.triton.TritonMoeQuantInfo", "read",
               "w13_weight / w2_weight handed to the runner by the unquantized method"),
    HookTarget("sglang.srt.layers.moe.token_dispatcher.standard.StandardCombineInput", "read",
               "what a runner core returns"),
    HookTarget("sglang.srt.layers.moe.utils.MoeRunnerBackend", "read", "the built-in TRITON backend"),
    HookTarget("sglang.srt.batch_invariant_ops.batch_invariant_ops.is_batch_invariant_mode_enabled", "call",
               "deterministic inference: keep the fixed-order down kernel (no per-expert split)"),
    HookTarget("sglang.srt.layers.moe.utils.get_moe_runner_backend", "call", "the server's selected backend"),
    HookTarget("sglang.srt.layers.moe.utils.resolve_moe_runner_backend", "call",
               "the RegisteredMoeRunnerBackend for our name"),
    HookTarget(UNQUANT_CREATE_MOE_RUNNER, "hook",
               "AFTER hook: the bf16 MoE method always builds a TRITON runner; swap in ours when selected"),
    HookTarget(HTTP_SETUP_AND_RUN, "hook",
               "AROUND hook (main process, MICROTURN_GRPC_PORT set): wraps the app's lifespan with the gRPC server"),
    HookTarget(HTTP_SERVER + ".app", "read", "the FastAPI app whose router.lifespan_context is wrapped"),
    HookTarget(HTTP_SERVER + ".lifespan", "read",
               "SGLang's lifespan, run inside ours; sets app.is_single_tokenizer_mode before it"),
    HookTarget(HTTP_SERVER + ".get_global_state", "call", "the TokenizerManager the HTTP API uses"),
    HookTarget(IO_STRUCT + ".OpenSessionReqInput", "call", "capacity_of_str_len, session_id, streaming, timeout"),
    HookTarget(IO_STRUCT + ".GenerateReqInput", "call", "rid, text, session_params, sampling_params, stream"),
    HookTarget(IO_STRUCT + ".CloseSessionReqInput", "call", "session_id"),
    HookTarget(TOKENIZER_CONTROL + ".open_session", "call", "opens a streaming session; None when refused"),
    HookTarget(TOKENIZER_CONTROL + ".close_session", "call", "closes it (deferred by SGLang while a request runs)"),
    HookTarget(TOKENIZER_MANAGER + ".generate_request", "call", "one session request, streamed"),
    HookTarget(TOKENIZER_MANAGER + ".abort_request", "call", "ends an Append the client cancelled or a close cut short"),
    HookTarget(TOKENIZER_MANAGER + ".is_ready", "call", "Health.serving"),
    HookTarget(SESSION_CONTROLLER_OPEN, "hook",
               "AFTER hook: remembers the tree cache holding the new session's KV (Session has no path to it)"),
    HookTarget(SESSION_CREATE_REQ, "hook",
               "AROUND hook: a streaming request with session_params.offset becomes a rewind that keeps the slot"),
    HookTarget("sglang.srt.managers.schedule_batch.FINISH_ABORT", "call", "the abort a refused rewind finishes with"),
    HookTarget(ALLOC_FOR_EXTEND, "hook",
               "AROUND hook: marks the batch's streaming-session borrowers (plain extend path only)"),
    HookTarget(PREFIX_KV_INDICES, "hook",
               "AROUND hook: a borrower gets its last prefix index, not a copy of its whole history"),
    HookTarget(WRITE_CACHE_INDICES, "hook",
               "AROUND hook: writes only the new indices of rows that already hold their prefix"),
    HookTarget(ALLOCATION + "._is_npu", "read", "the NPU extend path writes its own state: left alone"),
    # KV reserved per streaming session (session_reserve.py).
    HookTarget(ALLOC_TOKEN_SLOTS, "hook",
               "AROUND hook: inside an extend/decode batch, session turns take their slots from their reservation"),
    HookTarget(ALLOC_FOR_DECODE_DEFAULT, "hook",
               "AROUND hook: marks the decode batch whose one alloc_token_slots call serves session turns"),
    HookTarget(SESSION_FREE_KV_ALIGNED, "hook",
               "AROUND hook: a session's own tail (rewind, stale tail, overshoot) goes back into its reservation"),
    HookTarget(SESSION_RELEASE, "hook", "AROUND hook: close / idle reap give the unused reservation back"),
    HookTarget(SESSION_CACHE_FINISHED, "hook",
               "AROUND hook: an aborted turn drops the session's slot; the unused reservation goes back"),
    HookTarget(SESSION_HELD_TOKENS, "hook",
               "AFTER hook: reserved, unused slots count as session-held in the scheduler's pool invariant"),
    HookTarget(EVICT_TO_FREE_TOKENS, "hook",
               "AROUND hook: unused reserved slots go back to the free list before the radix tree is evicted"),
    HookTarget(PREFILL_BUDGET_AVAILABLE, "hook",
               "AFTER hook: admission counts unused reserved slots as evictable (they are reclaimed first)"),
    HookTarget("sglang.srt.mem_cache.allocator.token.TokenToKVPoolAllocator", "read",
               "the one allocator type reservations serve (page size 1)"),
    # The interaction model as an SGLang architecture (sglang_model.py).
    HookTarget("sglang.srt.models.registry.import_model_classes", "read",
               "how SGLANG_EXTERNAL_MODEL_PACKAGE's modules are scanned for EntryClass"),
    HookTarget("sglang.srt.environ.Envs.SGLANG_EXTERNAL_MODEL_PACKAGE", "read",
               "names microturn_sglang.sglang_models as the external model package"),
    HookTarget("sglang.srt.layers.radix_attention.RadixAttention", "call",
               "attention over SGLang's KV pool, through the server's attention backend"),
    HookTarget("sglang.srt.layers.logits_processor.LogitsProcessor", "call", "next-token logits from the final hidden state"),
    HookTarget("sglang.srt.layers.logits_processor.LogitsProcessorOutput", "read", "what the model's forward returns"),
    HookTarget("sglang.srt.model_executor.forward_batch_info.ForwardBatch", "read", "the batch forward() receives"),
    HookTarget("sglang.srt.runtime_context.get_parallel", "call", "tp_size, refused above 1"),
)

# Not touched by the patch: what tests/test_sglang_model_upstream.py drives the
# model with (SGLang's own pools, backend, batch, loader), checked the same way.
UPSTREAM_TEST_TARGETS = (
    HookTarget("sglang.srt.runtime_context.get_context", "call", "publishes a CPU ServerArgs"),
    HookTarget("sglang.srt.runtime_context.RuntimeContext.override_server_args", "call", "the scoped ServerArgs"),
    HookTarget("sglang.srt.plugins.load_plugins", "call", "runs the plugin through its entry point"),
    HookTarget("sglang.srt.configs.model_config.ModelConfig", "call", "parses the checkpoint's config.json"),
    HookTarget("sglang.srt.configs.model_config.ModelConfig.get_total_num_kv_heads", "call", "KV heads it sizes the pool by"),
    HookTarget("sglang.srt.configs.load_config.LoadConfig", "call", "default (safetensors) load format"),
    HookTarget("sglang.srt.configs.device_config.DeviceConfig", "call", "device cpu"),
    HookTarget("sglang.srt.model_loader.get_model", "call", "DefaultModelLoader: class from architectures, load_weights"),
    HookTarget("sglang.srt.model_loader.utils.get_model_architecture", "call", "architecture resolution"),
    HookTarget("sglang.srt.models.registry.ModelRegistry", "read", "the registry the loader resolves through"),
    HookTarget("sglang.srt.models.registry._ModelRegistry._default_models_loaded", "read",
               "stock models stay unimported with the external package set"),
    HookTarget("sglang.srt.model_loader.weight_utils.safetensors_weights_iterator", "call", "the loader's weight stream"),
    HookTarget("sglang.srt.utils.hf_transformers.tokenizer.get_tokenizer", "call", "loads the written tokenizer"),
    HookTarget("sglang.srt.layers.attention.torch_native_backend.TorchNativeAttnBackend", "call", "CPU attention backend"),
    HookTarget("sglang.srt.layers.attention.torch_native_backend.TorchNativeAttnBackend.init_forward_metadata", "call",
               "per-batch setup the model runner does"),
    HookTarget("sglang.srt.mem_cache.memory_pool.ReqToTokenPool", "call", "request rows of KV slot ids"),
    HookTarget("sglang.srt.mem_cache.memory_pool.MHATokenToKVPool", "call", "the KV buffers RadixAttention writes"),
    HookTarget("sglang.srt.model_executor.forward_batch_info.ForwardMode", "read", "EXTEND / DECODE"),
    HookTarget("sglang.srt.model_executor.forward_batch_info.CaptureHiddenMode", "read", "NULL, as the scheduler sets it"),
    HookTarget("sglang.srt.model_executor.forward_context.ForwardContext", "call", "carries the attention backend"),
    HookTarget("sglang.srt.model_executor.forward_context.forward_context", "call", "publishes it around forward()"),
    # What tests/sglang_session_driver.py builds to drive the session hooks like the scheduler does.
    HookTarget("sglang.srt.server_args.ServerArgs", "call", "the CPU, torch_native server args of the driver"),
    HookTarget("sglang.srt.managers.io_struct.SessionParams", "call", "session_params of a turn (id, offset)"),
    HookTarget("sglang.srt.managers.io_struct.TokenizedGenerateReqInput", "call", "the request a session turn starts from"),
    HookTarget("sglang.srt.managers.schedule_batch.Req", "call", "the scheduler's request the session builds"),
    HookTarget("sglang.srt.managers.schedule_batch.FINISH_LENGTH", "call", "how a driven turn finishes"),
    HookTarget("sglang.srt.sampling.sampling_params.SamplingParams", "call", "a turn's sampling parameters"),
    HookTarget("sglang.srt.mem_cache.allocator.token.TokenToKVPoolAllocator", "call", "page-size-1 KV slot allocator"),
    HookTarget("sglang.srt.mem_cache.allocator.paged.PagedTokenToKVPoolAllocator", "call", "paged KV slot allocator"),
    HookTarget("sglang.srt.mem_cache.cache_init_params.CacheInitParams", "call", "how the tree cache is built"),
    HookTarget("sglang.srt.mem_cache.unified_radix_cache.UnifiedRadixCache", "call", "the tree cache owning streaming sessions"),
    HookTarget("sglang.srt.mem_cache.unified_cache.component_type.ComponentType", "read", "the cache's full-attention component"),
    HookTarget("sglang.srt.mem_cache.common.checkpoint_kv_cache", "call", "what the scheduler does after a turn's extend"),
    HookTarget("sglang.srt.mem_cache.common.release_kv_cache", "call", "what the scheduler does when a turn finishes"),
)

# Upstream state the rewind hook reads or writes (session_rewind.py); checked
# against the pinned source by tests/test_hook_targets.py.
SESSION_REWIND_STATE = {
    "sglang.srt.session.session_controller.Session": (
        "capacity_of_str_len", "streaming", "_inflight", "req_nodes", "committed_origin_len", "committed_unpadded_len",
        "committed_fill_len", "session_id"),
    "sglang.srt.session.session_controller.SessionController": ("sessions", "tree_cache"),
    "sglang.srt.session.streaming_session.StreamingSession": ("slots", "borrowed_slot", "cache"),
    "sglang.srt.session.streaming_session.SessionSlot": ("kv",),
    "sglang.srt.managers.scheduler_components.pool_stats_observer.SchedulerPoolStatsObserver": ("tree_cache",),
    "sglang.srt.mem_cache.prefill_budget.PrefillBudget": ("tree_cache",),
    "sglang.srt.mem_cache.allocator.token.TokenToKVPoolAllocator": ("free", "available_size"),
    "sglang.srt.mem_cache.allocator.base.BaseTokenToKVPoolAllocator": ("device",),
    "sglang.srt.mem_cache.memory_pool.ReqToTokenPool": ("req_to_token",),
    "sglang.srt.managers.schedule_batch.ReqKvInfo": ("kv_committed_len", "cache_protected_len", "req_pool_idx",
                                                     "holds_kv"),
    "sglang.srt.managers.schedule_batch.ScheduleBatch": ("reqs", "tree_cache", "is_dllm", "hisparse_coordinator",
                                                         "req_to_token_pool"),
    "sglang.srt.mem_cache.unified_radix_cache.UnifiedRadixCache": ("session", "is_swa_enabled", "is_mamba_enabled",
                                                                  "page_size", "token_to_kv_pool_allocator",
                                                                  "req_to_token_pool"),
}
