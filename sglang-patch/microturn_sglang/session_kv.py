"""Streaming-session KV bookkeeping: each session owns one contiguous slot range
reserved up front and grown geometrically; appends write into place, rewind moves
the end back, close frees the range. Every operation is O(1) in session length."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

from microturn_sglang.slot_pool import KvPoolExhausted, SlotPool

DEFAULT_CAPACITY_TOKENS = 4096
DEFAULT_IDLE_TIMEOUT_MS = 60_000
GROWTH_FACTOR = 2


class SessionKvError(Exception):
    """Base of the bookkeeping's typed errors."""


class SessionNotFound(SessionKvError):
    pass


class SessionExists(SessionKvError):
    pass


class SessionBusy(SessionKvError):
    """An append is already in flight for this session."""


class RewindOutOfRange(SessionKvError):
    pass


class CapacityExceeded(SessionKvError):
    """The session would grow past the longest sequence it may hold."""


__all__ = [
    "CapacityExceeded",
    "KvPoolExhausted",
    "RewindOutOfRange",
    "SessionBusy",
    "SessionExists",
    "SessionKv",
    "SessionKvError",
    "SessionKvTable",
    "SessionNotFound",
    "SlotRange",
]


@dataclass(frozen=True)
class SlotRange:
    """Slots ``[start, start + length)`` of the KV pool."""

    start: int
    length: int


@dataclass(frozen=True)
class Relocation:
    """The session's range moved because the slots after it were taken: the KV of
    ``length`` tokens must be copied from ``src`` to ``dst`` (once per doubling)."""

    src: int
    dst: int
    length: int


@dataclass
class SessionKv:
    session_id: str
    start: int
    capacity: int
    length: int
    protected_len: int
    idle_timeout_ms: int
    last_active_ms: float
    in_flight: bool = False
    relocations: int = 0

    @property
    def slots(self) -> SlotRange:
        """The slots holding the sequence; contiguous, so no index row is kept."""
        return SlotRange(self.start, self.length)


class SessionKvTable:
    """All open sessions of one engine over one slot pool."""

    def __init__(
        self,
        pool: SlotPool,
        *,
        max_context_tokens: Optional[int] = None,
        default_capacity_tokens: int = DEFAULT_CAPACITY_TOKENS,
        default_idle_timeout_ms: int = DEFAULT_IDLE_TIMEOUT_MS,
        clock_ms: Callable[[], float] = lambda: time.monotonic() * 1000.0,
        on_relocate: Optional[Callable[[Relocation], None]] = None,
    ):
        self.pool = pool
        self.max_context_tokens = max_context_tokens or pool.num_slots
        self.default_capacity_tokens = min(default_capacity_tokens, self.max_context_tokens)
        self.default_idle_timeout_ms = default_idle_timeout_ms
        self._clock_ms = clock_ms
        self._on_relocate = on_relocate
        self._sessions: dict[str, SessionKv] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._sessions

    def get(self, session_id: str) -> SessionKv:
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionNotFound(f"session {session_id!r} is not open")
        return session

    def open(self, session_id: str, capacity_tokens: int = 0, idle_timeout_ms: int = 0) -> SessionKv:
        if session_id in self._sessions:
            raise SessionExists(f"session {session_id!r} is already open")
        capacity = capacity_tokens or self.default_capacity_tokens
        if capacity > self.max_context_tokens:
            raise CapacityExceeded(
                f"capacity {capacity} exceeds the engine's max context of {self.max_context_tokens} tokens"
            )
        start = self.pool.alloc(capacity)
        session = SessionKv(
            session_id=session_id,
            start=start,
            capacity=capacity,
            length=0,
            protected_len=0,
            idle_timeout_ms=idle_timeout_ms or self.default_idle_timeout_ms,
            last_active_ms=self._clock_ms(),
        )
        self._sessions[session_id] = session
        return session

    def protect_prefix(self, session_id: str) -> None:
        """Marks everything appended so far (the system prompt) as below any rewind."""
        session = self.get(session_id)
        session.protected_len = session.length

    def begin_append(self, session_id: str) -> SessionKv:
        session = self.get(session_id)
        if session.in_flight:
            raise SessionBusy(f"session {session_id!r} already has an append in flight")
        session.in_flight = True
        session.last_active_ms = self._clock_ms()
        return session

    def end_append(self, session_id: str) -> None:
        session = self._sessions.get(session_id)
        if session is not None:
            session.in_flight = False
            session.last_active_ms = self._clock_ms()

    def append(self, session_id: str, n_tokens: int) -> SlotRange:
        """Claims the next ``n_tokens`` slots of the session's range and returns
        them; the caller writes their KV there. Grows the reservation when full."""
        session = self.get(session_id)
        if n_tokens < 0:
            raise ValueError(f"n_tokens must be >= 0, got {n_tokens}")
        needed = session.length + n_tokens
        if needed > session.capacity:
            self._grow(session, needed)
        written = SlotRange(session.start + session.length, n_tokens)
        session.length = needed
        session.last_active_ms = self._clock_ms()
        return written

    def rewind(self, session_id: str, position_tokens: int) -> int:
        """Keeps the first ``position_tokens`` tokens; returns how many were dropped.
        The reservation is kept, so the next append reuses the same slots."""
        session = self.get(session_id)
        if position_tokens > session.length:
            raise RewindOutOfRange(
                f"rewind to {position_tokens} is past the sequence end {session.length}"
            )
        if position_tokens < session.protected_len:
            raise RewindOutOfRange(
                f"rewind to {position_tokens} is inside the system prompt ({session.protected_len} tokens)"
            )
        dropped = session.length - position_tokens
        session.length = position_tokens
        session.last_active_ms = self._clock_ms()
        return dropped

    def close(self, session_id: str) -> int:
        session = self.get(session_id)
        del self._sessions[session_id]
        self.pool.free(session.start, session.capacity)
        return session.length

    def reap_idle(self, now_ms: Optional[float] = None) -> list[str]:
        """Closes sessions idle past their timeout, except one mid-append."""
        now = self._clock_ms() if now_ms is None else now_ms
        expired = [
            sid
            for sid, s in self._sessions.items()
            if not s.in_flight and now - s.last_active_ms > s.idle_timeout_ms
        ]
        for sid in expired:
            self.close(sid)
        return expired

    def _grow(self, session: SessionKv, needed: int) -> None:
        if needed > self.max_context_tokens:
            raise CapacityExceeded(
                f"session {session.session_id!r} needs {needed} tokens; max context is {self.max_context_tokens}"
            )
        new_capacity = session.capacity
        while new_capacity < needed:
            new_capacity *= GROWTH_FACTOR
        new_capacity = min(new_capacity, self.max_context_tokens)
        if self.pool.try_grow(session.start, session.capacity, new_capacity):
            session.capacity = new_capacity
            return
        new_start = self.pool.alloc(new_capacity)
        relocation = Relocation(src=session.start, dst=new_start, length=session.length)
        if self._on_relocate is not None:
            try:
                self._on_relocate(relocation)
            except BaseException:
                # The copy failed: the session stays where it was, and the new range goes back.
                self.pool.free(new_start, new_capacity)
                raise
        self.pool.free(session.start, session.capacity)
        session.start = new_start
        session.capacity = new_capacity
        session.relocations += 1
