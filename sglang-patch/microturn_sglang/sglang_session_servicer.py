"""microturn.v1.StreamingSession served inside the SGLang server process, on
the TokenizerManager's event loop, mapped onto SGLang 0.5.23's own streaming
sessions (`open_session` / `generate_request` with `session_params` /
`close_session`). Text only: each AppendRequest is rendered to text the way the
sidecar renders it (chunk_text.py) and appended to the session's sequence.

Rewind(p) is carried by the next Append as `session_params.offset = p`, which
the plugin's session_rewind hook turns into a rewind inside the scheduler.
Without the plugin's hooks (stock 0.5.23 refuses the offset) Rewind is refused
with FAILED_PRECONDITION and capabilities say supports_rewind=false."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Optional

import grpc

from microturn_sglang import session_rewind
from microturn_sglang.chunk_text import render_chunk_text
from microturn_sglang.engine_servicer import ENGINE_NAME, ERROR_CODE_TRAILER, PROTOCOL_VERSION, _major
from microturn_sglang.gen.microturn.v1 import common_pb2, engine_pb2, engine_pb2_grpc

logger = logging.getLogger(__name__)

DEFAULT_IDLE_TIMEOUT_MS = 60_000

_FINISH = {
    "length": engine_pb2.FINISH_REASON_LENGTH,
    "stop": engine_pb2.FINISH_REASON_STOP,
    "abort": engine_pb2.FINISH_REASON_ABORT,
}

# What SGLang answers an offset it will not apply: out of bounds (the plugin's
# hook), or no hook in the scheduler (stock refusal).
_OFFSET_REFUSED = "Streaming sessions do not support offset"

# SGLang's scheduler no longer has the session (reaped or closed): nothing to close.
_SESSION_GONE = "does not exist"

# SGLang reports these refusals as text (a ValueError from the TokenizerManager,
# or an abort finish_reason from the scheduler); the message is all there is.
_MESSAGE_CODES = (
    (_SESSION_GONE, grpc.StatusCode.NOT_FOUND),
    ("close was requested for session", grpc.StatusCode.NOT_FOUND),
    ("already has an active request", grpc.StatusCode.FAILED_PRECONDITION),
    ("Streaming sessions are disabled", grpc.StatusCode.FAILED_PRECONDITION),
    (session_rewind.REFUSAL_PREFIX, grpc.StatusCode.OUT_OF_RANGE),
    (_OFFSET_REFUSED, grpc.StatusCode.FAILED_PRECONDITION),
    ("context length", grpc.StatusCode.RESOURCE_EXHAUSTED),
    ("Use a shorter input", grpc.StatusCode.RESOURCE_EXHAUSTED),
)


# The engine code each status stands for, sent in the microturn-error-code trailer as the
# reference servicer does: the status alone cannot tell a busy session from a server that
# cannot rewind, nor a full sequence from a full queue.
_ENGINE_CODES = {
    grpc.StatusCode.NOT_FOUND: "unknown_session",
    grpc.StatusCode.ALREADY_EXISTS: "invalid_argument",
    grpc.StatusCode.FAILED_PRECONDITION: "busy",
    grpc.StatusCode.OUT_OF_RANGE: "rewind_out_of_range",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "too_large",
    grpc.StatusCode.INVALID_ARGUMENT: "invalid_argument",
    grpc.StatusCode.UNAVAILABLE: "unavailable",
}


class Refusal(Exception):
    """A request the servicer answers with a gRPC status instead of output, and the
    engine code for the microturn-error-code trailer (by default the status's)."""

    def __init__(self, code: grpc.StatusCode, message: str, engine_code: Optional[str] = None):
        super().__init__(message)
        self.code = code
        self.engine_code = engine_code or _ENGINE_CODES.get(code, "internal")


def refusal_for(message: str, default: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT) -> Refusal:
    for needle, code in _MESSAGE_CODES:
        if needle in message:
            # Refusals that are no busy session, though FAILED_PRECONDITION too.
            not_busy = needle in (_OFFSET_REFUSED, "Streaming sessions are disabled")
            return Refusal(code, message, "invalid_argument" if not_busy else None)
    return Refusal(default, message)


async def _refuse(context, err: Refusal) -> None:
    context.set_trailing_metadata(((ERROR_CODE_TRAILER, err.engine_code),))
    await context.abort(err.code, str(err))


@dataclass
class _Session:
    session_id: str
    capacity_tokens: int
    idle_timeout_s: float
    last_active: float
    position_tokens: int = 0
    rid: Optional[str] = None  # the Append in flight, if any
    closing: bool = False
    # Rewind never goes below this: the system prompt, or without one the first
    # Append's input, which SGLang may publish to its radix cache and protect.
    floor_tokens: Optional[int] = None
    # A Rewind the next Append carries to SGLang as session_params.offset, and
    # the position to restore if SGLang refuses it there.
    rewind_to: Optional[int] = None
    position_before_rewind: int = 0


@dataclass
class _Turn:
    """What one Append's stream has reported so far."""

    text: str = ""
    prompt_tokens: Optional[int] = None
    completion_tokens: int = 0
    first_output_at: Optional[float] = None
    finish: Optional[dict] = field(default=None)


def _io():
    from sglang.srt.managers.io_struct import CloseSessionReqInput, GenerateReqInput, OpenSessionReqInput

    return OpenSessionReqInput, GenerateReqInput, CloseSessionReqInput


class SglangStreamingSessionServicer(engine_pb2_grpc.StreamingSessionServicer):
    def __init__(self, tokenizer_manager, *, default_idle_timeout_ms: int = DEFAULT_IDLE_TIMEOUT_MS,
                 clock=time.monotonic, supports_rewind: Optional[bool] = None):
        self.tm = tokenizer_manager
        # The plugin loads in every SGLang process: registered here means the
        # scheduler processes registered the rewind hook too.
        self.supports_rewind = session_rewind.rewind_enabled() if supports_rewind is None else supports_rewind
        self.default_idle_timeout_ms = default_idle_timeout_ms
        self.clock = clock
        self.sessions: dict[str, _Session] = {}

    # -- helpers ---------------------------------------------------------------

    def capabilities(self) -> engine_pb2.EngineCapabilities:
        return engine_pb2.EngineCapabilities(
            engine=ENGINE_NAME,
            model_id=str(self.tm.served_model_name),
            input_modalities=[common_pb2.MODALITY_TEXT],
            output_modalities=[common_pb2.MODALITY_TEXT],
            supports_rewind=self.supports_rewind,
            max_context_tokens=int(self.tm.context_len),
            protocol_version=PROTOCOL_VERSION,
            random_weights=False,
        )

    def _prune(self) -> None:
        """Forgets sessions idle past their timeout: SGLang's scheduler reaps
        them on the same timeout, so the record would only be stale."""
        now = self.clock()
        for sid in [s.session_id for s in self.sessions.values()
                    if s.rid is None and now - s.last_active > s.idle_timeout_s]:
            del self.sessions[sid]

    def _session(self, session_id: str) -> _Session:
        self._prune()
        session = self.sessions.get(session_id)
        if session is None:
            raise Refusal(grpc.StatusCode.NOT_FOUND, f"session {session_id!r} is not open")
        return session

    async def _run(self, context, coro_fn):
        try:
            return await coro_fn()
        except Refusal as err:
            await _refuse(context, err)

    async def _generate(self, session: _Session, text: str, sampling: dict, turn: _Turn):
        """Streams one session request; yields each new piece of text with the
        sequence length after it. Leaves the last report in `turn`."""
        _, GenerateReqInput, _ = _io()
        rid = uuid.uuid4().hex
        session_params = {"id": session.session_id}
        if session.rewind_to is not None:
            session_params["offset"] = session.rewind_to
        obj = GenerateReqInput(rid=rid, text=text, session_params=session_params,
                               sampling_params=sampling, stream=True)
        incremental = bool(getattr(self.tm, "incremental_streaming_output", False))
        session.rid = rid
        finished = False
        try:
            async for out in self.tm.generate_request(obj, None):
                meta = out["meta_info"]
                reason = meta.get("finish_reason")
                finished = reason is not None
                if isinstance(reason, dict) and reason.get("type") == "abort" and not session.closing:
                    status_code = reason.get("status_code")
                    if status_code is not None:
                        # A 5xx abort (the queue is full, the scheduler gave up) may pass: retry, not a bad request.
                        default = grpc.StatusCode.UNAVAILABLE if int(status_code) >= 500 else grpc.StatusCode.INVALID_ARGUMENT
                        refusal = refusal_for(str(reason.get("message") or "request aborted by SGLang"), default)
                        if refusal.code == grpc.StatusCode.NOT_FOUND:
                            self.sessions.pop(session.session_id, None)  # SGLang reaped or is closing it
                        raise refusal
                if "prompt_tokens" in meta:  # an abort from the waiting queue has no counts
                    turn.prompt_tokens = int(meta["prompt_tokens"])
                    turn.completion_tokens = int(meta.get("completion_tokens") or 0)
                piece = out.get("text") or ""
                if not incremental:  # cumulative text: keep what is new
                    piece = piece[len(turn.text):]
                if turn.first_output_at is None:
                    turn.first_output_at = time.perf_counter()
                if finished:
                    turn.finish = reason if isinstance(reason, dict) else {"type": str(reason)}
                if piece:
                    turn.text += piece
                    yield piece, (turn.prompt_tokens or session.position_tokens) + turn.completion_tokens
        except ValueError as err:
            raise refusal_for(str(err)) from err
        finally:
            if not finished:  # cancelled by the client or refused mid-stream
                self.tm.abort_request(rid)
            session.rid = None
            session.last_active = self.clock()

    # -- RPCs ------------------------------------------------------------------

    async def OpenSession(self, request, context):
        return await self._run(context, lambda: self._open(request))

    async def _open(self, request):
        if _major(request.protocol_version) != _major(PROTOCOL_VERSION):
            raise Refusal(grpc.StatusCode.FAILED_PRECONDITION,
                          f"protocol_version {request.protocol_version!r} is not compatible "
                          f"with the engine's {PROTOCOL_VERSION}", "invalid_argument")
        if request.audio_output:
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT,
                          "audio_output is not served: this engine's output_modalities is TEXT")
        self._prune()
        sid = request.session_id or uuid.uuid4().hex
        if sid in self.sessions:
            raise Refusal(grpc.StatusCode.ALREADY_EXISTS, f"session {sid!r} is already open")
        context_len = int(self.tm.context_len)
        capacity = request.capacity_tokens or context_len
        if capacity > context_len:
            raise Refusal(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"capacity_tokens {capacity} exceeds the model's context length {context_len}")
        idle_s = (request.idle_timeout_ms or self.default_idle_timeout_ms) / 1000
        OpenSessionReqInput, _, CloseSessionReqInput = _io()
        try:
            opened = await self.tm.open_session(
                OpenSessionReqInput(capacity_of_str_len=capacity, session_id=sid, streaming=True, timeout=idle_s),
                None)
        except ValueError as err:
            raise refusal_for(str(err), grpc.StatusCode.FAILED_PRECONDITION) from err
        if opened is None:
            raise Refusal(grpc.StatusCode.ALREADY_EXISTS, f"SGLang refused to open session {sid!r}: the id is in use")
        session = _Session(opened, capacity, idle_s, self.clock())
        self.sessions[opened] = session
        if request.system_prompt:
            # A prefill-only request puts the system prompt at the start of the
            # sequence now and tells its length in tokens.
            turn = _Turn()
            try:
                async for _ in self._generate(session, request.system_prompt, {"max_new_tokens": 0}, turn):
                    pass
            except BaseException as err:
                # _generate already forgot the session when SGLang answered NOT_FOUND.
                self.sessions.pop(opened, None)
                if not (isinstance(err, Refusal) and _SESSION_GONE in str(err)):
                    # Also on "close was requested": closing again is harmless there.
                    try:
                        await self.tm.close_session(CloseSessionReqInput(session_id=opened), None)
                    except Exception:  # keep the refusal the client is owed
                        logger.exception("microturn: closing session %r after a refused system prompt failed", opened)
                raise
            session.position_tokens = (turn.prompt_tokens or 0) + turn.completion_tokens
            session.floor_tokens = session.position_tokens
        return engine_pb2.OpenSessionResponse(session_id=opened, capabilities=self.capabilities(),
                                              position_tokens=session.position_tokens, capacity_tokens=capacity)

    async def Append(self, request, context):
        try:
            session = self._session(request.session_id)
            if request.audio.frames or request.audio.codes:
                raise Refusal(grpc.StatusCode.INVALID_ARGUMENT,
                              "MODALITY_AUDIO is not accepted: this engine serves a text model (input_modalities is TEXT)")
            if len(request.video):
                raise Refusal(grpc.StatusCode.INVALID_ARGUMENT,
                              "MODALITY_VIDEO is not accepted: this engine serves a text model (input_modalities is TEXT)")
            self._refuse_in_flight(session, "an Append")
            if not request.temperature >= 0:  # NaN too
                raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, f"temperature must be >= 0, got {request.temperature}")
            sampling = {"max_new_tokens": request.max_output_tokens, "temperature": request.temperature}
            # SGLang's stop check (`stop_str in tail`) takes "" as found at once: empty ones mean nothing, as in the reference engine.
            stop = [s for s in request.stop if s]
            if stop:
                sampling["stop"] = stop
            text = render_chunk_text(request.start_ms, request.text, request.context)
            before = session.position_tokens
            started = time.perf_counter()
            turn = _Turn()
            try:
                async for piece, position in self._generate(session, text, sampling, turn):
                    yield engine_pb2.AppendResponse(delta=engine_pb2.OutputDelta(text=piece, position_tokens=position))
            except Refusal as err:
                self._settle_rewind(session, turn, err)
                raise
            self._settle_rewind(session, turn, None)
            yield engine_pb2.AppendResponse(done=self._done(session, before, started, turn))
        except Refusal as err:
            await _refuse(context, err)

    @staticmethod
    def _refuse_in_flight(session: _Session, what: str) -> None:
        if session.rid is not None:
            raise Refusal(grpc.StatusCode.FAILED_PRECONDITION,
                          f"session {session.session_id!r} already has an Append in flight; {what} must wait for it")

    @staticmethod
    def _settle_rewind(session: _Session, turn: _Turn, refusal: Optional[Refusal]) -> None:
        """A finished turn has applied the rewind it carried. SGLang refusing
        the rewind itself left the session as it was. Otherwise (an abort, a
        refusal for another reason) it is unknown whether the scheduler got to
        it, so the next Append carries it again: an offset equal to the
        session's length changes nothing, so resending is harmless."""
        if session.rewind_to is None:
            return
        if refusal is not None and any(m in str(refusal) for m in (session_rewind.REFUSAL_PREFIX, _OFFSET_REFUSED)):
            session.position_tokens = session.position_before_rewind
            session.rewind_to = None
        elif refusal is None and (turn.finish or {}).get("type", "abort") != "abort":
            session.rewind_to = None

    def _done(self, session: _Session, before: int, started: float, turn: _Turn) -> engine_pb2.AppendDone:
        now = time.perf_counter()
        kind = (turn.finish or {}).get("type", "abort")
        finish = _FINISH.get(kind, engine_pb2.FINISH_REASON_ABORT)
        if finish == engine_pb2.FINISH_REASON_ABORT or turn.prompt_tokens is None:
            # SGLang drops an aborted turn whole (input too): the next request
            # re-prefills from the last finished one.
            input_end, output = before, 0
        else:
            input_end, output = turn.prompt_tokens, turn.completion_tokens
            if finish == engine_pb2.FINISH_REASON_STOP and not turn.text:
                finish = engine_pb2.FINISH_REASON_SILENT
        session.position_tokens = input_end + output
        if session.floor_tokens is None and finish != engine_pb2.FINISH_REASON_ABORT:
            session.floor_tokens = input_end
        first = turn.first_output_at or now
        return engine_pb2.AppendDone(
            finish_reason=finish,
            position_tokens=session.position_tokens,
            input_end_tokens=input_end,
            input_tokens=input_end - before,
            output_tokens=output,
            append_ms=(first - started) * 1000,
            turn_ms=(now - started) * 1000,
            capacity_tokens=max(session.capacity_tokens, session.position_tokens),
        )

    async def Rewind(self, request, context):
        return await self._run(context, lambda: self._rewind(request))

    async def _rewind(self, request):
        session = self._session(request.session_id)
        if not self.supports_rewind:
            raise Refusal(grpc.StatusCode.FAILED_PRECONDITION,
                          "Rewind needs the microturn plugin's session hooks in SGLang's scheduler (stock 0.5.23 "
                          "streaming sessions refuse session_params.offset); capabilities.supports_rewind is false",
                          "invalid_argument")
        self._refuse_in_flight(session, "Rewind")
        target, position = request.position_tokens, session.position_tokens
        if target > position:
            raise Refusal(grpc.StatusCode.OUT_OF_RANGE,
                          f"cannot rewind to {target}: the session holds {position} tokens")
        floor = session.floor_tokens or 0
        if target < floor:
            raise Refusal(grpc.StatusCode.OUT_OF_RANGE,
                          f"cannot rewind to {target}: below the session's first {floor} tokens (the system prompt, "
                          f"or the first Append's input, which SGLang protects in its radix cache)")
        if target < position:
            if session.rewind_to is None:
                session.position_before_rewind = position
            session.rewind_to = target
            session.position_tokens = target
            session.last_active = self.clock()
        return engine_pb2.RewindResponse(position_tokens=target, dropped_tokens=position - target)

    async def CloseSession(self, request, context):
        async def close():
            session = self._session(request.session_id)
            _, _, CloseSessionReqInput = _io()
            if session.rid is not None:
                # The Append in flight ends with FINISH_REASON_ABORT.
                session.closing = True
                self.tm.abort_request(session.rid)
            del self.sessions[session.session_id]
            await self.tm.close_session(CloseSessionReqInput(session_id=session.session_id), None)
            return engine_pb2.CloseSessionResponse(position_tokens=session.position_tokens)
        return await self._run(context, close)

    async def Health(self, request, context):
        self._prune()
        return engine_pb2.HealthResponse(serving=bool(self.tm.is_ready()), active_sessions=len(self.sessions),
                                         capabilities=self.capabilities())
