"""KV slot pool: hands out contiguous token-slot ranges from one fixed pool and
takes them back, coalescing neighbours so long sessions do not fragment it."""

from __future__ import annotations

from dataclasses import dataclass


class KvPoolExhausted(RuntimeError):
    """No free range is large enough for the request."""


@dataclass
class SlotPoolStats:
    alloc_calls: int = 0
    free_calls: int = 0
    grown_in_place: int = 0


class SlotPool:
    """First-fit-by-size (best fit) allocator over slots ``[0, num_slots)``.

    Free ranges are indexed by start and by end so that freeing a range merges
    it with both neighbours in O(1); allocation scans the free ranges, whose
    count stays small because of that merging (bounded by live sessions + 1).
    """

    def __init__(self, num_slots: int):
        if num_slots <= 0:
            raise ValueError(f"num_slots must be positive, got {num_slots}")
        self.num_slots = num_slots
        self._free_by_start: dict[int, int] = {0: num_slots}
        self._free_by_end: dict[int, int] = {num_slots: 0}
        self._used = 0
        self.stats = SlotPoolStats()

    @property
    def free_slots(self) -> int:
        return self.num_slots - self._used

    @property
    def used_slots(self) -> int:
        return self._used

    @property
    def free_ranges(self) -> int:
        return len(self._free_by_start)

    @property
    def largest_free_range(self) -> int:
        return max(self._free_by_start.values(), default=0)

    def alloc(self, n: int) -> int:
        """Reserves ``n`` contiguous slots and returns the first one."""
        if n <= 0:
            raise ValueError(f"allocation size must be positive, got {n}")
        best_start, best_len = -1, 0
        for start, length in self._free_by_start.items():
            if length >= n and (best_start < 0 or length < best_len):
                best_start, best_len = start, length
                if length == n:
                    break
        if best_start < 0:
            raise KvPoolExhausted(
                f"no free range of {n} slots (free {self.free_slots} of {self.num_slots}, "
                f"largest range {self.largest_free_range})"
            )
        self._take(best_start, best_len, best_start, n)
        self.stats.alloc_calls += 1
        return best_start

    def try_grow(self, start: int, length: int, new_length: int) -> bool:
        """Extends ``[start, start+length)`` to ``new_length`` when the slots right
        after it are free; the range keeps its start, so nothing moves."""
        extra = new_length - length
        if extra <= 0:
            return True
        end = start + length
        free_len = self._free_by_start.get(end)
        if free_len is None or free_len < extra:
            return False
        self._take(end, free_len, end, extra)
        self.stats.grown_in_place += 1
        return True

    def free(self, start: int, n: int) -> None:
        """Returns ``[start, start+n)`` to the pool, merging with free neighbours."""
        if n <= 0:
            return
        end = start + n
        if start < 0 or end > self.num_slots:
            raise ValueError(f"range [{start}, {end}) outside pool of {self.num_slots}")
        if start in self._free_by_start or end in self._free_by_end or self._overlaps_free(start, end):
            raise ValueError(f"range [{start}, {end}) is already free (double free)")
        self._used -= n
        self.stats.free_calls += 1
        prev_start = self._free_by_end.pop(start, None)
        if prev_start is not None:
            del self._free_by_start[prev_start]
            start = prev_start
        next_len = self._free_by_start.pop(end, None)
        if next_len is not None:
            del self._free_by_end[end + next_len]
            end = end + next_len
        self._free_by_start[start] = end - start
        self._free_by_end[end] = start

    def _overlaps_free(self, start: int, end: int) -> bool:
        # Only reached on the error path's cheap checks missing; the scan keeps a
        # corrupted free list from going unnoticed in tests.
        return any(s < end and start < s + length for s, length in self._free_by_start.items())

    def _take(self, free_start: int, free_len: int, take_start: int, n: int) -> None:
        del self._free_by_start[free_start]
        del self._free_by_end[free_start + free_len]
        head = take_start - free_start
        tail_start = take_start + n
        tail = free_start + free_len - tail_start
        if head > 0:
            self._free_by_start[free_start] = head
            self._free_by_end[take_start] = free_start
        if tail > 0:
            self._free_by_start[tail_start] = tail
            self._free_by_end[tail_start + tail] = tail_start
        self._used += n
