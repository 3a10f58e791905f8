"""microturn.v1.StreamingSession over gRPC: converts wire messages to engine
calls and maps the engine's typed errors to gRPC status codes (the one place
that does so on the Python side)."""

from __future__ import annotations

from typing import Iterator

import grpc
import torch

from microturn_sglang.gen.microturn.v1 import common_pb2, engine_pb2, engine_pb2_grpc
from microturn_sglang.model_blocks import DMEL_CHANNELS, DMEL_LEVELS, PATCH_SIZE_PX
from microturn_sglang.reference_engine import (
    AUDIO_SAMPLE_RATE_HZ,
    ChunkInput,
    Finish,
    OutputPiece,
    ReferenceEngine,
)
from microturn_sglang.session_kv import (
    CapacityExceeded,
    KvPoolExhausted,
    RewindOutOfRange,
    SessionBusy,
    SessionExists,
    SessionNotFound,
)

PROTOCOL_VERSION = "1.0"
ENGINE_NAME = "sglang-patch"

# Each engine failure: its gRPC status, and the exact engine code sent in the
# `microturn-error-code` trailer (the status alone cannot tell a full KV pool,
# retry later, from a sequence that is full).
ERROR_CODE_TRAILER = "microturn-error-code"
_ERRORS = [
    (SessionNotFound, grpc.StatusCode.NOT_FOUND, "unknown_session"),
    (SessionExists, grpc.StatusCode.ALREADY_EXISTS, "invalid_argument"),
    (SessionBusy, grpc.StatusCode.FAILED_PRECONDITION, "busy"),
    (RewindOutOfRange, grpc.StatusCode.OUT_OF_RANGE, "rewind_out_of_range"),
    (CapacityExceeded, grpc.StatusCode.RESOURCE_EXHAUSTED, "too_large"),
    (KvPoolExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED, "unavailable"),
    (ValueError, grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument"),
]

_FINISH = {
    Finish.LENGTH: engine_pb2.FINISH_REASON_LENGTH,
    Finish.STOP: engine_pb2.FINISH_REASON_STOP,
    Finish.SILENT: engine_pb2.FINISH_REASON_SILENT,
    Finish.ABORT: engine_pb2.FINISH_REASON_ABORT,
}


def _major(version: str) -> str:
    return version.split(".", 1)[0].strip()


def engine_code_for(err: Exception) -> str:
    for kind, _, code in _ERRORS:
        if isinstance(err, kind):
            return code
    return "internal"


def status_for(err: Exception) -> grpc.StatusCode:
    for kind, status, _ in _ERRORS:
        if isinstance(err, kind):
            return status
    return grpc.StatusCode.INTERNAL


def dmel_codes(audio: common_pb2.DmelAudio) -> torch.Tensor:
    if audio.frames == 0:
        return torch.zeros(0, DMEL_CHANNELS, dtype=torch.uint8)
    if audio.channels != DMEL_CHANNELS:
        raise ValueError(f"audio.channels must be {DMEL_CHANNELS}, got {audio.channels}")
    if len(audio.codes) != audio.frames * audio.channels:
        raise ValueError(f"audio.codes has {len(audio.codes)} bytes; frames x channels is {audio.frames * audio.channels}")
    codes = torch.frombuffer(bytearray(audio.codes), dtype=torch.uint8).view(audio.frames, audio.channels)
    if int(codes.max()) >= DMEL_LEVELS:
        raise ValueError(f"audio.codes must be 4-bit (0..{DMEL_LEVELS - 1})")
    return codes


def video_patches(frames) -> torch.Tensor:
    out = []
    for f in frames:
        if f.patch_size_px != PATCH_SIZE_PX:
            raise ValueError(f"video patch_size_px must be {PATCH_SIZE_PX}, got {f.patch_size_px}")
        n = f.rows * f.cols
        if len(f.rgb) != n * PATCH_SIZE_PX * PATCH_SIZE_PX * 3:
            raise ValueError(f"video rgb has {len(f.rgb)} bytes; {f.rows}x{f.cols} patches need {n * PATCH_SIZE_PX**2 * 3}")
        if n:
            out.append(torch.frombuffer(bytearray(f.rgb), dtype=torch.uint8).view(n, PATCH_SIZE_PX, PATCH_SIZE_PX, 3))
    return torch.cat(out) if out else torch.zeros(0, PATCH_SIZE_PX, PATCH_SIZE_PX, 3, dtype=torch.uint8)


def output_delta(piece: OutputPiece) -> engine_pb2.OutputDelta:
    delta = engine_pb2.OutputDelta(text=piece.text, position_tokens=piece.position_tokens)
    if piece.audio:
        delta.audio.CopyFrom(common_pb2.PcmAudio(sample_rate_hz=AUDIO_SAMPLE_RATE_HZ, channels=1, pcm16=piece.audio))
    return delta


class StreamingSessionServicer(engine_pb2_grpc.StreamingSessionServicer):
    def __init__(self, engine: ReferenceEngine, model_id: str = "microturn-tiny-random"):
        self.engine = engine
        self.model_id = model_id

    def capabilities(self) -> engine_pb2.EngineCapabilities:
        return engine_pb2.EngineCapabilities(
            engine=ENGINE_NAME,
            model_id=self.model_id,
            input_modalities=[common_pb2.MODALITY_TEXT, common_pb2.MODALITY_AUDIO, common_pb2.MODALITY_VIDEO],
            output_modalities=[common_pb2.MODALITY_TEXT]
            + ([common_pb2.MODALITY_AUDIO] if self.engine.can_speak else []),
            supports_rewind=True,
            max_context_tokens=self.engine.max_context_tokens,
            protocol_version=PROTOCOL_VERSION,
            random_weights=True,
        )

    def _fail(self, context: grpc.ServicerContext, err: Exception):
        code = status_for(err)
        message = str(err) if code is not grpc.StatusCode.INTERNAL else f"engine failure: {err!r}"
        context.set_trailing_metadata(((ERROR_CODE_TRAILER, engine_code_for(err)),))
        context.abort(code, message)

    def OpenSession(self, request, context):
        if _major(request.protocol_version) != _major(PROTOCOL_VERSION):
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"protocol_version {request.protocol_version!r} is not compatible with the engine's {PROTOCOL_VERSION}",
            )
        try:
            opened = self.engine.open(request.session_id, request.capacity_tokens,
                                      request.idle_timeout_ms, request.system_prompt,
                                      audio_output=request.audio_output)
        except Exception as err:  # noqa: BLE001 - mapped to a status, the server stays up
            self._fail(context, err)
        return engine_pb2.OpenSessionResponse(
            session_id=opened.session_id,
            capabilities=self.capabilities(),
            position_tokens=opened.position_tokens,
            capacity_tokens=opened.capacity_tokens,
        )

    def Append(self, request, context) -> Iterator[engine_pb2.AppendResponse]:
        try:
            chunk = ChunkInput(
                seq=request.seq,
                start_ms=request.start_ms,
                duration_ms=request.duration_ms,
                text=request.text,
                dmel_codes=dmel_codes(request.audio),
                patches=video_patches(request.video),
                context=[item.text for item in request.context if item.text],
                max_output_tokens=request.max_output_tokens,
                stop=list(request.stop),
                temperature=request.temperature,
            )
            events = self.engine.append(request.session_id, chunk)
        except Exception as err:  # noqa: BLE001
            self._fail(context, err)
        try:
            for event in events:
                if isinstance(event, OutputPiece):
                    yield engine_pb2.AppendResponse(delta=output_delta(event))
                else:
                    yield engine_pb2.AppendResponse(done=engine_pb2.AppendDone(
                        finish_reason=_FINISH[event.finish],
                        position_tokens=event.position_tokens,
                        input_end_tokens=event.input_end_tokens,
                        input_tokens=event.input_tokens,
                        output_tokens=event.output_tokens,
                        append_ms=event.append_ms,
                        turn_ms=event.turn_ms,
                        capacity_tokens=event.capacity_tokens,
                    ))
        except Exception as err:  # noqa: BLE001
            events.close()
            self._fail(context, err)

    def Rewind(self, request, context):
        try:
            position, dropped = self.engine.rewind(request.session_id, request.position_tokens)
        except Exception as err:  # noqa: BLE001
            self._fail(context, err)
        return engine_pb2.RewindResponse(position_tokens=position, dropped_tokens=dropped)

    def CloseSession(self, request, context):
        try:
            position = self.engine.close(request.session_id)
        except Exception as err:  # noqa: BLE001
            self._fail(context, err)
        return engine_pb2.CloseSessionResponse(position_tokens=position)

    def Health(self, request, context):
        return engine_pb2.HealthResponse(
            serving=True, active_sessions=self.engine.active_sessions(), capabilities=self.capabilities()
        )
