"""A timing wheel: which connections are due at each step of a per-process ticker.

Pure bookkeeping, no clock and no I/O. One interval is cut into ``slots`` steps. A connection
added at time ``t`` is first due at the first step at or after ``t + interval`` (or sooner, if
asked) and then once per interval at the same step, so every connection keeps its own phase
(frames spread over the interval instead of one burst) and its deadlines follow
``start + k * interval`` without drift.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class TimingWheel(Generic[T]):
    """Slots of items keyed by a hashable id; add, remove and due are O(1) per item."""

    def __init__(self, *, interval: float, slots: int, start: float) -> None:
        if interval <= 0 or slots < 1:
            raise ValueError("interval must be > 0 and slots >= 1")
        self.interval = interval
        self.slots = slots
        self.start = start
        self.step_duration = interval / slots
        # Per slot: key -> (first due step, item). Dicts keep insertion order and delete in O(1).
        self._slots: list[dict[Hashable, tuple[int, T]]] = [{} for _ in range(slots)]
        self._slot_of: dict[Hashable, int] = {}

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._slot_of

    def time_of(self, step: int) -> float:
        """Return the deadline of ``step``."""
        return self.start + step * self.step_duration

    def step_at(self, now: float) -> int:
        """Return the first step whose deadline is at or after ``now``."""
        # The small epsilon keeps a time computed by time_of() on its own step.
        return max(0, math.ceil((now - self.start) / self.step_duration - 1e-9))

    def add(self, key: Hashable, item: T, now: float, *, after: float | None = None) -> int:
        """Schedule ``item`` ``after`` seconds after ``now`` (one interval if None), then once an
        interval; return its first due step.

        ``after`` should be a few steps at least: a step the ticker has already fired comes
        round again only an interval later.
        """
        if key in self._slot_of:
            raise KeyError(f"{key!r} is already on the wheel")
        first = self.step_at(now + (self.interval if after is None else after))
        slot = first % self.slots
        self._slots[slot][key] = (first, item)
        self._slot_of[key] = slot
        return first

    def remove(self, key: Hashable) -> T | None:
        """Take ``key`` off the wheel; return its item, or None if it was not there."""
        slot = self._slot_of.pop(key, None)
        if slot is None:
            return None
        return self._slots[slot].pop(key)[1]

    def due(self, step: int) -> Iterator[T]:
        """Yield the items due at ``step`` (a snapshot: the caller may add or remove meanwhile)."""
        for first, item in list(self._slots[step % self.slots].values()):
            if first <= step:
                yield item
