"""CPU reference engine: the interaction model over the session KV bookkeeping.
Owns the micro-turn (append input, generate within a budget, stop strings,
close-while-in-flight, speech for sessions that ask for it) independently of
the wire."""

from __future__ import annotations

import codecs
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, List, Optional, Union

import torch

from microturn_sglang.interaction_model import (
    TOKEN_CONTEXT,
    TOKEN_END_OF_TURN,
    TOKEN_SYSTEM,
    TOKEN_USER,
    LayerKvCache,
    MicroturnInteractionModel,
)
from microturn_sglang.session_kv import SessionBusy, SessionKvTable
from microturn_sglang.slot_pool import SlotPool
from microturn_sglang.vocoder import DEFAULT_ITERATIONS, StreamingVocoder, to_pcm16

# Speech: one mel frame (12.5 ms, 200 samples at 16 kHz) per output token, so a
# micro-turn budget of 16 tokens is 200 ms of speech (real time, the same rate
# as dMel input), and every output position stands for a fixed stretch of audio:
# a rewind to a played-up-to time drops exactly the tokens not heard.
AUDIO_SAMPLE_RATE_HZ = 16_000
AUDIO_SAMPLES_PER_TOKEN = 200
# The audio sampler's seed differs from the text sampler's, so a speaking
# session says the same text as a silent one.
_AUDIO_SEED_SALT = 0x5EEC


class Finish(Enum):
    LENGTH = "length"
    STOP = "stop"
    SILENT = "silent"
    ABORT = "abort"


@dataclass
class ChunkInput:
    seq: int = 0
    start_ms: int = 0
    duration_ms: int = 200
    text: str = ""
    dmel_codes: Optional[torch.Tensor] = None  # [frames, 80]
    patches: Optional[torch.Tensor] = None  # [n, 40, 40, 3] uint8
    context: List[str] = field(default_factory=list)
    max_output_tokens: int = 0
    stop: List[str] = field(default_factory=list)
    temperature: float = 0.0


@dataclass
class OutputPiece:
    text: str
    position_tokens: int
    # PCM16 little-endian mono at AUDIO_SAMPLE_RATE_HZ: the audio of the output
    # tokens since the previous piece (speaking sessions only; else empty).
    audio: bytes = b""


@dataclass
class TurnSummary:
    finish: Finish
    position_tokens: int
    input_end_tokens: int
    input_tokens: int
    output_tokens: int
    append_ms: float
    turn_ms: float
    capacity_tokens: int


TurnEvent = Union[OutputPiece, TurnSummary]


class TurnEvents(Iterator[TurnEvent]):
    """The events of one turn whose session is claimed. Releases the claim exactly
    once: when the turn ends or fails, or when it is closed or dropped, even before
    its first step (a generator's ``finally`` never runs if it never started, which
    would leave the session busy for good). Nothing is appended before the first
    step, so a turn dropped then leaves the sequence where it was."""

    def __init__(self, steps: Iterator[TurnEvent], release: Callable[[], None]):
        self._steps = steps
        self._release: Optional[Callable[[], None]] = release

    def __next__(self) -> TurnEvent:
        try:
            return next(self._steps)
        except BaseException:  # StopIteration at the end included
            self._finish()
            raise

    def close(self) -> None:
        """Ends the turn where it is (as a cancelled turn: what went in stays) and
        releases the session; a close-while-in-flight then takes effect."""
        # Not in a `finally`: a close racing a step on another thread fails (the
        # generator is executing) and must not release the session under that step.
        self._steps.close()
        self._finish()

    def __del__(self) -> None:
        self.close()

    def _finish(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


@dataclass
class OpenedSession:
    session_id: str
    position_tokens: int
    capacity_tokens: int


class ReferenceEngine:
    """Thread-safe: the lock is held per step (input append, one output token),
    never while the caller consumes events, so other sessions and a second
    append on the same session are answered while a turn is streaming."""

    def __init__(self, model: MicroturnInteractionModel, *, num_slots: int = 1 << 15,
                 default_capacity_tokens: int = 1024, idle_timeout_ms: int = 60_000,
                 audio_flow_steps: int = 8, vocoder_iterations: int = DEFAULT_ITERATIONS,
                 speech_ceiling: Optional[float] = None):
        self.model = model
        # A soft limiter on the vocoded samples (ceiling * tanh(x / ceiling), full
        # scale 1.0): linear well below the ceiling, never above it. The reference
        # server sets one because a random-weight model's speech is noise many times
        # full scale; a pipeline check must not play it at full volume.
        self.speech_ceiling = speech_ceiling
        self.audio_flow_steps = audio_flow_steps
        self.vocoder_iterations = vocoder_iterations
        # Vocoder state of each speaking session: touched by its one in-flight
        # turn, or under the lock by open/rewind/close.
        self._voices: dict[str, StreamingVocoder] = {}
        self.kv = LayerKvCache(model.config, num_slots)
        self.table = SessionKvTable(
            SlotPool(num_slots),
            default_capacity_tokens=default_capacity_tokens,
            default_idle_timeout_ms=idle_timeout_ms,
            on_relocate=lambda r: self.kv.move(r.src, r.dst, r.length),
        )
        self._lock = threading.RLock()
        self._closing: set[str] = set()

    @property
    def max_context_tokens(self) -> int:
        return self.table.max_context_tokens

    @property
    def can_speak(self) -> bool:
        return getattr(self.model, "audio_head", None) is not None

    def active_sessions(self) -> int:
        with self._lock:
            return len(self.table)

    def open(self, session_id: str = "", capacity_tokens: int = 0, idle_timeout_ms: int = 0,
             system_prompt: str = "", audio_output: bool = False) -> OpenedSession:
        if audio_output and not self.can_speak:
            raise ValueError("audio_output needs a model with an audio head")
        sid = session_id or uuid.uuid4().hex
        with self._lock:
            session = self.table.open(sid, capacity_tokens, idle_timeout_ms)
            try:
                if system_prompt:
                    ids = [TOKEN_SYSTEM, *system_prompt.encode("utf-8")]
                    self._run_input(sid, self.model.embed_tokens(ids))
                self.table.protect_prefix(sid)
            except Exception:
                self.table.close(sid)
                raise
            if audio_output:
                self._voices[sid] = StreamingVocoder(self.vocoder_iterations)
            return OpenedSession(sid, session.length, session.capacity)

    def speaks(self, session_id: str) -> bool:
        with self._lock:
            return session_id in self._voices

    def append(self, session_id: str, chunk: ChunkInput) -> TurnEvents:
        """Claims the session (SessionBusy if a turn is in flight) before returning
        the event iterator, so the refusal reaches the caller at once; the iterator
        releases it (see TurnEvents)."""
        # Checked before anything is appended: NaN would fail sampling after the input went in.
        if not chunk.temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {chunk.temperature}")
        with self._lock:
            self.table.begin_append(session_id)
        return TurnEvents(self._turn(session_id, chunk), lambda: self._end_turn(session_id))

    def rewind(self, session_id: str, position_tokens: int) -> tuple[int, int]:
        with self._lock:
            session = self.table.get(session_id)
            if session.in_flight:
                raise SessionBusy(f"session {session_id!r} has an append in flight")
            dropped = self.table.rewind(session_id, position_tokens)
            if dropped and session_id in self._voices:
                # The overlap held belongs to audio now unsaid; speech resumes fresh.
                self._voices[session_id].reset()
            return session.length, dropped

    def close(self, session_id: str) -> int:
        """Closes now, or at the end of the in-flight turn (which then ends with ABORT)."""
        with self._lock:
            session = self.table.get(session_id)
            if session.in_flight:
                self._closing.add(session_id)
                return session.length
            self._voices.pop(session_id, None)
            return self.table.close(session_id)

    def reap_idle(self) -> list[str]:
        with self._lock:
            reaped = self.table.reap_idle()
            for sid in reaped:
                self._voices.pop(sid, None)
            return reaped

    def _embed_chunk(self, chunk: ChunkInput) -> torch.Tensor:
        parts = [self.model.time_marker(torch.tensor([float(chunk.start_ms)]))]
        for item in chunk.context:
            parts.append(self.model.embed_tokens([TOKEN_CONTEXT, *item.encode("utf-8")]))
        if chunk.text:
            parts.append(self.model.embed_tokens([TOKEN_USER, *chunk.text.encode("utf-8")]))
        if chunk.dmel_codes is not None and chunk.dmel_codes.numel():
            parts.append(self.model.dmel(chunk.dmel_codes))
        if chunk.patches is not None and chunk.patches.numel():
            parts.append(self.model.patches(chunk.patches))
        with torch.no_grad():
            return torch.cat(parts, dim=0)

    def _run_input(self, session_id: str, embeds: torch.Tensor) -> torch.Tensor:
        session = self.table.get(session_id)
        past = session.length
        self.table.append(session_id, embeds.shape[0])  # may relocate: read start after
        return self.model(embeds, self.kv, session.start, past)

    def _turn(self, session_id: str, chunk: ChunkInput) -> Iterator[TurnEvent]:
        t0 = time.perf_counter()
        finish = Finish.LENGTH
        output_tokens = 0
        emitted = 0
        text = ""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        hold_back = max((len(s) for s in chunk.stop), default=1) - 1
        seed = zlib.crc32(f"{session_id}/{chunk.seq}".encode())
        generator = torch.Generator().manual_seed(seed)
        with self._lock:
            voice = self._voices.get(session_id)
            session = self.table.get(session_id)
            past = session.length
            hidden = self._run_input(session_id, self._embed_chunk(chunk))
            input_end = session.length
        input_tokens = input_end - past
        audio_generator = torch.Generator().manual_seed(seed ^ _AUDIO_SEED_SALT) if voice else None
        append_ms = (time.perf_counter() - t0) * 1000.0
        for _ in range(chunk.max_output_tokens):
            with self._lock:
                if session_id in self._closing:
                    finish = Finish.ABORT
                    break
                if session.length >= self.table.max_context_tokens:
                    # The sequence is full: the turn ends here (LENGTH), as a budget spent would,
                    # with what it said so far, rather than failing after its output went out.
                    break
                token = self.model.next_token(hidden, chunk.temperature, generator)
                spoken_from = hidden  # the state that chose the token conditions its audio
                hidden = self._run_input(session_id, self.model.embed_tokens([token]))
                position = session.length
            if token == TOKEN_END_OF_TURN:
                finish = Finish.SILENT if output_tokens == 0 else Finish.STOP
                output_tokens += 1
                break
            output_tokens += 1
            # Outside the lock: only this turn touches the session's vocoder.
            audio = self._speak(voice, spoken_from, audio_generator) if voice else b""
            text += decoder.decode(bytes([token]) if token < 256 else b"")
            cut = min((text.find(s) for s in chunk.stop if s and s in text), default=-1)
            if cut >= 0:
                if cut > emitted or audio:
                    yield OutputPiece(text[emitted:max(cut, emitted)], position, audio)
                emitted = len(text)
                finish = Finish.STOP
                break
            safe = len(text) - hold_back
            if safe > emitted or audio:
                # A speaking session gets a piece per token: its audio is not held back with the text.
                yield OutputPiece(text[emitted:max(safe, emitted)], position, audio)
                emitted = max(safe, emitted)
        # The model yielded the turn: its utterance ends here, so the vocoder's last
        # 37.5 ms come out now (fading), not at the start of its next utterance.
        tail = self._flush_voice(voice) if voice and finish in (Finish.STOP, Finish.SILENT) else b""
        rest = text[emitted:] if finish is not Finish.STOP else ""
        if rest or tail:
            yield OutputPiece(rest, session.length, tail)
        yield TurnSummary(
            finish=finish,
            position_tokens=session.length,
            input_end_tokens=input_end,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            append_ms=append_ms,
            turn_ms=(time.perf_counter() - t0) * 1000.0,
            capacity_tokens=session.capacity,
        )

    def _end_turn(self, session_id: str) -> None:
        with self._lock:
            self.table.end_append(session_id)
            if session_id in self._closing:
                self._closing.discard(session_id)
                self._voices.pop(session_id, None)
                if session_id in self.table:
                    self.table.close(session_id)

    def _flush_voice(self, voice: StreamingVocoder) -> bytes:
        return self._pcm(voice.flush())

    def _pcm(self, samples: torch.Tensor) -> bytes:
        if self.speech_ceiling is not None:
            samples = self.speech_ceiling * torch.tanh(samples / self.speech_ceiling)
        return to_pcm16(samples)

    def _speak(self, voice: StreamingVocoder, hidden: torch.Tensor, generator: torch.Generator) -> bytes:
        """One token's audio: the flow head's frame for ``hidden``, read as log10 mel in
        the dMel convention (the vocoder clamps it to [-7, 2]), vocoded to 200 samples."""
        frame = self.model.audio_head.sample(hidden, steps=self.audio_flow_steps, generator=generator)
        return self._pcm(voice.push(frame))
