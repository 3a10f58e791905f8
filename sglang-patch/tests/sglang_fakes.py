"""A stand-in for SGLang 0.5.23's TokenizerManager and the io_struct request
types, for driving the in-server StreamingSession servicer on CPU. It copies
the upstream behaviour the servicer depends on (read in
tokenizer_control_mixin.py, tokenizer_manager.py, scheduler.py and
session/session_controller.py of the pinned release):

- open_session returns the session id, or None when the id is taken; with
  streaming=True on a server without --enable-streaming-session it raises
  ValueError.
- generate_request is an async generator of dicts {text, output_ids,
  meta_info{id, finish_reason, prompt_tokens, completion_tokens, ...}};
  text is cumulative unless incremental_streaming_output; finish_reason is None
  until the last one, then {"type": "length"|"stop"|"abort", ...}.
- a session request's prompt_tokens is the whole sequence before its output
  (previous prompt + previous output + new input, BOS stripped after the first
  turn); an aborted turn leaves the session at its last finished request.
- scheduler refusals (unknown session, second request in flight, too long)
  arrive as an abort finish_reason with status_code 400; the tokenizer's own
  length check raises ValueError.
- abort_request(rid) ends a running request with {"type": "abort"} and no
  status_code; close_session drops the session.
- session_params.offset on a streaming session: refused ("Streaming sessions
  do not support offset.") unless `rewind_hook` stands for the plugin's hook
  in the scheduler (session_rewind.py), which cuts the session back to the
  offset (bounds from its plan_rewind; the first finished request's prompt
  counts as protected) before the turn runs, so an aborted turn keeps it.
Tokens here are bytes of UTF-8 text, and the "model" replies with scripted text.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

BOS = 1
EOS = 2


@dataclass(kw_only=True)
class OpenSessionReqInput:
    capacity_of_str_len: int
    session_id: Optional[str] = None
    streaming: Optional[bool] = None
    timeout: Optional[float] = None
    rid: Optional[str] = None


@dataclass(kw_only=True)
class CloseSessionReqInput:
    session_id: str
    rid: Optional[str] = None


@dataclass
class GenerateReqInput:
    rid: Optional[str] = field(default=None, kw_only=True)
    text: Optional[str] = None
    sampling_params: Optional[Dict[str, Any]] = None
    stream: bool = False
    session_params: Optional[Dict[str, Any]] = None


@dataclass
class FakeSession:
    streaming: bool
    timeout: Optional[float]
    committed: int = 0  # tokens of the last finished request, output included
    inflight: bool = False
    protected: int = 0  # the first finished request's prompt, published to the radix tree


class FakeTokenizerManager:
    def __init__(self, context_len: int = 512, incremental_streaming_output: bool = False,
                 enable_streaming_session: bool = True, step_delay_s: float = 0.0, rewind_hook: bool = False):
        self.context_len = context_len
        self.served_model_name = "fake/text-model"
        self.incremental_streaming_output = incremental_streaming_output
        self.enable_streaming_session = enable_streaming_session
        self.step_delay_s = step_delay_s
        self.rewind_hook = rewind_hook
        self.sessions: Dict[str, FakeSession] = {}
        self.replies: List[str] = []  # scripted model outputs, one per request with max_new_tokens > 0
        # (status_code, message): the next generate request is aborted so, as SGLang aborts one it cannot queue.
        self.abort_next = None
        self.requests: List[GenerateReqInput] = []
        self.aborted: List[str] = []
        self.closed: List[str] = []
        self._abort_flags: Dict[str, asyncio.Event] = {}
        self.ready = True

    def is_ready(self) -> bool:
        return self.ready

    async def open_session(self, obj: OpenSessionReqInput, request=None):
        if obj.streaming and not self.enable_streaming_session:
            raise ValueError("Streaming sessions are disabled. Please relaunch with --enable-streaming-session.")
        if obj.session_id is None:
            obj.session_id = uuid.uuid4().hex
        if obj.session_id in self.sessions:
            return None
        self.sessions[obj.session_id] = FakeSession(bool(obj.streaming), obj.timeout)
        return obj.session_id

    async def close_session(self, obj: CloseSessionReqInput, request=None):
        self.closed.append(obj.session_id)
        self.sessions.pop(obj.session_id, None)

    def abort_request(self, rid: str = "", abort_all: bool = False):
        self.aborted.append(rid)
        flag = self._abort_flags.get(rid)
        if flag is not None:
            flag.set()

    @staticmethod
    def _out(rid, text, ids, prompt, completion, finish):
        return {"text": text, "output_ids": list(ids), "meta_info": {
            "id": rid, "finish_reason": finish, "prompt_tokens": prompt, "weight_version": "default",
            "num_retractions": 0, "reasoning_tokens": 0, "completion_tokens": completion, "cached_tokens": 0}}

    async def generate_request(self, obj: GenerateReqInput, request=None):
        self.requests.append(obj)
        rid = obj.rid or uuid.uuid4().hex
        new_tokens = len(obj.text.encode())
        if new_tokens + 1 > self.context_len:  # TokenizerManager._validate_one_request
            raise ValueError(f"The input ({new_tokens + 1} tokens) is longer than the model's context "
                             f"length ({self.context_len} tokens).")
        sid = (obj.session_params or {}).get("id")
        session = self.sessions.get(sid)

        def refused(message):
            return self._out(rid, "", [], new_tokens, 0, {"type": "abort", "message": message, "status_code": 400,
                                                         "err_type": "BadRequestError"})

        if self.abort_next is not None:
            status_code, message = self.abort_next
            self.abort_next = None
            yield self._out(rid, "", [], new_tokens, 0, {"type": "abort", "message": message, "status_code": status_code})
            return
        if session is None:
            yield refused(f"Invalid request: session id {sid} does not exist")
            return
        if session.inflight:
            yield refused("Streaming session already has an active request.")
            return
        offset = (obj.session_params or {}).get("offset")
        if offset:
            if not self.rewind_hook:
                yield refused("Streaming sessions do not support offset.")
                return
            from microturn_sglang.session_rewind import plan_rewind

            plan = plan_rewind(offset, origin_len=session.committed, output_len=0, fill_len=session.committed,
                               protected_len=session.protected, new_input_tokens=new_tokens)
            if isinstance(plan, str):
                yield refused(plan)
                return
            session.committed = plan.position
        prompt = session.committed + new_tokens + (1 if session.committed == 0 else 0)
        if prompt >= self.context_len:
            yield refused(f"Input length ({prompt} tokens) exceeds the maximum allowed length "
                          f"({self.context_len - 1} tokens). Use a shorter input or enable --allow-auto-truncate.")
            return
        sampling = obj.sampling_params or {}
        budget = int(sampling.get("max_new_tokens", 128))
        reply = self.replies.pop(0) if budget > 0 and self.replies else ""
        stops = sampling.get("stop") or []
        session.inflight = True
        flag = self._abort_flags[rid] = asyncio.Event()
        ids: List[int] = []
        text, streamed = "", 0
        try:
            finish = None
            for ch in reply:
                if len(ids) == budget:
                    break
                await asyncio.sleep(self.step_delay_s)
                if flag.is_set():
                    finish = {"type": "abort", "message": "Abort in waiting queue"}
                    break
                ids.extend(ch.encode())
                text += ch
                matched = next((s for s in stops if text.endswith(s)), None)
                if matched is not None:
                    text = text[: -len(matched)]
                    finish = {"type": "stop", "matched": matched}
                    break
                if len(ids) < budget:  # the last token's text comes with the finish
                    yield self._out(rid, text[streamed:] if self.incremental_streaming_output else text,
                                    ids, prompt, len(ids), None)
                    streamed = len(text)
            if finish is None:
                if len(ids) >= budget:
                    finish = {"type": "length", "length": budget}
                else:
                    ids.append(EOS)
                    finish = {"type": "stop", "matched": EOS}
            if finish["type"] == "abort":
                # Session.abort_req: the session stays at its last finished request.
                yield {"text": "", "output_ids": [],
                       "meta_info": {"id": rid, "finish_reason": finish, "weight_version": "default"}}
                return
            if session.committed == 0:
                session.protected = prompt
            session.committed = prompt + len(ids)
            yield self._out(rid, text[streamed:] if self.incremental_streaming_output else text,
                            ids, prompt, len(ids), finish)
        finally:
            session.inflight = False
            self._abort_flags.pop(rid, None)


def fake_io_struct():
    import types

    return types.SimpleNamespace(OpenSessionReqInput=OpenSessionReqInput, GenerateReqInput=GenerateReqInput,
                                 CloseSessionReqInput=CloseSessionReqInput)
