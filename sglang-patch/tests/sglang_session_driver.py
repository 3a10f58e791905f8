"""Drives SGLang 0.5.23's real streaming-session machinery on CPU, in the
order the scheduler calls it: `Session.create_req`, `Req.init_next_round_input`
(-> `UnifiedRadixCache.match_prefix` -> `StreamingSession.try_match_prefix`),
`allocation.alloc_for_extend`, `checkpoint_kv_cache`, `alloc_for_decode_default`
and `release_kv_cache` (-> `StreamingSession.try_cache_finished_req`), on a
real `ReqToTokenPool`, `TokenToKVPoolAllocator` and `UnifiedRadixCache`.

Stand-ins, because no model runs here: the `ScheduleBatch` handed to the
allocation functions is a namespace with the fields they read, and "sampling"
appends fixed token ids. Page size 1 (paged allocation runs Triton kernels)."""

from __future__ import annotations

import sys
from array import array
from contextlib import contextmanager
from importlib import import_module
from types import SimpleNamespace

import torch
from sglang.srt import runtime_context
from sglang.srt.managers.io_struct import (
    CloseSessionReqInput,
    OpenSessionReqInput,
    SessionParams,
    TokenizedGenerateReqInput,
)
from sglang.srt.managers.schedule_batch import FINISH_ABORT, FINISH_LENGTH, Req
from sglang.srt.mem_cache import allocation
from sglang.srt.mem_cache.allocator.paged import PagedTokenToKVPoolAllocator
from sglang.srt.mem_cache.allocator.token import TokenToKVPoolAllocator
from sglang.srt.mem_cache.cache_init_params import CacheInitParams
from sglang.srt.mem_cache.common import checkpoint_kv_cache, release_kv_cache
from sglang.srt.mem_cache.memory_pool import ReqToTokenPool
from sglang.srt.mem_cache.unified_cache.component_type import ComponentType
from sglang.srt.mem_cache.unified_radix_cache import UnifiedRadixCache
from sglang.srt.sampling.sampling_params import SamplingParams
from sglang.srt.server_args import ServerArgs
from sglang.srt.session.session_controller import SessionController

VOCAB = 1000


def _importable(dotted: str) -> bool:
    try:
        import_module(dotted)
    except ImportError:
        return False
    return True


@contextmanager
def applied_session_hooks():
    """The plugin's session hooks registered and applied by SGLang's own
    HookRegistry; undone afterwards (also where HookRegistry propagated a
    hooked function into modules that imported it by name)."""
    from sglang.srt.plugins.hook_registry import HookRegistry, HookType

    from microturn_sglang import hook_targets, session_rewind
    from microturn_sglang.sglang_plugin import register_session_hooks

    targets = [t.path for t in hook_targets.HOOK_TARGETS if t.use == "hook" and t.path.startswith(
        ("sglang.srt.session.", "sglang.srt.mem_cache.allocation.",
         "sglang.srt.managers.scheduler_components.pool_stats_observer.",
         "sglang.srt.mem_cache.allocator.base.", "sglang.srt.mem_cache.prefill_budget."))]
    owners = {}
    for path in targets:
        parts = path.split(".")
        cut = next(c for c in range(len(parts) - 1, 0, -1) if _importable(".".join(parts[:c])))
        owner = import_module(".".join(parts[:cut]))
        for attr in parts[cut:-1]:
            owner = getattr(owner, attr)
        name = parts[-1]
        owners[path] = (owner, name, owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name))
    registered = session_rewind.rewind_enabled()
    register_session_hooks(HookRegistry, HookType)
    HookRegistry.apply_hooks()
    try:
        yield
    finally:
        for path, (owner, name, original) in owners.items():
            wrapped = getattr(owner, name)
            setattr(owner, name, original)
            for module in list(sys.modules.values()):
                if getattr(module, name, None) is wrapped and module is not owner:
                    setattr(module, name, original)
            HookRegistry._hooks.pop(path, None)
            HookRegistry._patched.discard(path)
        session_rewind._registered = registered


def cpu_context():
    """A scheduler-role runtime context (attention backend torch_native, so
    `write_cache_indices` takes its non-Triton path), to enter with
    `runtime_context.use_context`."""
    args = ServerArgs(model_path="dummy", device="cpu", attention_backend="torch_native")
    context = runtime_context.create_context(args, role="scheduler")
    context.parallel.override_permanently(tp_rank=0)
    return context


class SchedulerDriver:
    def __init__(self, kv_slots: int = 512, rows: int = 8, max_context: int = 512, page_size: int = 1):
        self.pool = ReqToTokenPool(size=rows, max_context_len=max_context, device="cpu", enable_memory_saver=False)
        if page_size == 1:
            self.allocator = TokenToKVPoolAllocator(size=kv_slots, dtype=torch.bfloat16, device="cpu", kvcache=None,
                                                    need_sort=False)
        else:  # on CPU its naive (non-Triton) kernels run
            self.allocator = PagedTokenToKVPoolAllocator(size=kv_slots, page_size=page_size, dtype=torch.bfloat16,
                                                         device="cpu", kvcache=None, need_sort=False)
        self.cache = UnifiedRadixCache(CacheInitParams(
            disable=False, req_to_token_pool=self.pool, token_to_kv_pool_allocator=self.allocator,
            page_size=page_size, tree_components=(ComponentType.FULL,)))
        self.controller = SessionController(self.cache)
        self.next_token = 500

    # -- session lifecycle ---------------------------------------------------

    def open(self, session_id: str, streaming: bool = True, capacity: int = 1000):
        out = self.controller.open(OpenSessionReqInput(capacity_of_str_len=capacity, session_id=session_id,
                                                       streaming=streaming))
        assert out.success
        return self.controller.get(session_id)

    def close(self, session_id: str) -> None:
        self.controller.close(CloseSessionReqInput(session_id=session_id))

    def submit(self, session_id: str, input_ids, max_new_tokens: int, offset=None, after_rid=None):
        """Session.create_req, as Scheduler.handle_generate_request calls it."""
        sampling = SamplingParams(max_new_tokens=max_new_tokens)
        sampling.normalize(None)
        tokenized = TokenizedGenerateReqInput(
            rid=f"r{self.next_token}", input_text=None, input_ids=array("q", input_ids), input_embeds=None,
            mm_inputs=None, token_type_ids=None, sampling_params=sampling, return_logprob=False,
            logprob_start_len=-1, top_logprobs_num=0, token_ids_logprob=None, stream=True,
            session_params=SessionParams(id=session_id, offset=offset, rid=after_rid))
        self.next_token += 1
        return self.controller.get(session_id).create_req(tokenized, None, VOCAB)

    def plain_request(self, rid: str, input_ids, max_new_tokens: int):
        """A request outside any session, as the scheduler builds one."""
        sampling = SamplingParams(max_new_tokens=max_new_tokens)
        sampling.normalize(None)
        return Req(rid, None, array("q", input_ids), sampling)

    # -- one turn through the scheduler's steps -------------------------------

    def match(self, req) -> None:
        req.init_next_round_input(self.cache)
        req.extend_end = len(req.full_untruncated_fill_ids)

    def prefill(self, *reqs) -> None:
        """One extend batch: match (if not done), allocate, sample each
        request's first token."""
        for req in reqs:
            if req.extend_end is None:
                self.match(req)
        seqs = [len(r.full_untruncated_fill_ids) for r in reqs]
        extend = [s - r.prefix_len for s, r in zip(seqs, reqs)]
        batch = SimpleNamespace(
            maybe_evict_swa=lambda: None, reqs=list(reqs), is_dllm=lambda: False, device="cpu",
            prefix_lens=[r.prefix_len for r in reqs], extend_lens=extend, extend_num_tokens=sum(extend),
            seq_lens=torch.tensor(seqs), seq_lens_cpu=torch.tensor(seqs), req_to_token_pool=self.pool,
            tree_cache=self.cache, hisparse_coordinator=None)
        self.last_out_cache_loc = allocation.alloc_for_extend(batch)[0]
        for req in reqs:
            self._sample(req)
            if not req.finished():
                checkpoint_kv_cache(req, self.cache)

    def decode(self, req) -> None:
        seq = req.kv.kv_allocated_len
        batch = SimpleNamespace(
            maybe_evict_swa=lambda: None, reqs=[req], device="cpu", seq_lens=torch.tensor([seq]),
            seq_lens_cpu=torch.tensor([seq]), req_pool_indices=torch.tensor([req.kv.req_pool_idx]),
            req_pool_indices_cpu=torch.tensor([req.kv.req_pool_idx]), req_to_token_pool=self.pool,
            tree_cache=self.cache, model_config=SimpleNamespace(is_encoder_decoder=False))
        allocation.alloc_for_decode_default(batch, 1)
        self._sample(req)

    def _sample(self, req) -> None:
        req.output_ids.append(self.next_token)
        self.next_token += 1
        if len(req.output_ids) >= req.sampling_params.max_new_tokens:
            req.finished_reason = FINISH_LENGTH(length=len(req.output_ids))

    def finish(self, req, abort: bool = False) -> None:
        if abort:
            req.finished_reason = FINISH_ABORT("aborted by the test")
        release_kv_cache(req, self.cache, checkpoint=True)

    def run_turn(self, req, abort_after_prefill: bool = False, prefilled: bool = False):
        if not prefilled:
            self.prefill(req)
        if abort_after_prefill:
            self.finish(req, abort=True)
            return req
        while not req.finished():
            self.decode(req)
        self.finish(req)
        return req

    def turn(self, session_id: str, input_ids, max_new_tokens: int, offset=None):
        req = self.submit(session_id, input_ids, max_new_tokens, offset)
        assert req.to_finish is None, req.to_finish.message
        return self.run_turn(req)

    # -- observations -----------------------------------------------------------

    def slot(self, session_id: str):
        return self.cache.session.slots.get(session_id)

    def row(self, session_id: str, length: int) -> list:
        return self.pool.req_to_token[self.slot(session_id).kv.req_pool_idx, :length].tolist()

    def history(self, session_id: str) -> list:
        """The session's committed tokens: the last finished request's input
        up to the committed length, then its output."""
        session = self.controller.get(session_id)
        [node] = session.req_nodes.values()
        req = node.req
        return (list(req.origin_input_ids[: session.committed_origin_len])
                + list(req.output_ids[: req.sampling_params.max_new_tokens]))

    def free_slots(self) -> int:
        """Slots held by no row and no tree node: the allocator's free list
        plus what sessions hold reserved but unused (session_reserve.py;
        0 without its hooks)."""
        from microturn_sglang import session_reserve

        return self.allocator.available_size() + session_reserve.unused_reserved_tokens(self.cache)

    def global_free_slots(self) -> int:
        return self.allocator.available_size()
