"""A periodic check of many items, a slice at a time: each item once per pass, no long stop.

A loop over every connection in one go holds the event loop for as long as it takes (tens of
milliseconds at 10,000 connections), and every frame or request due meanwhile waits. A
:class:`SlicedSweep` cuts each pass into ``period / step`` slices of equal size, one per step,
so the same work leaves the loop free between slices. Items that arrive during a pass wait for
the next one (at most two periods); items that left are the caller's to skip.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")


class SlicedSweep(Generic[Item]):
    """Hands out one pass over ``snapshot()`` in ``period / step`` slices of equal size."""

    __slots__ = ("_index", "_pending", "_size", "slices")

    def __init__(self, *, period: float, step: float) -> None:
        if not 0 < step <= period:
            raise ValueError(f"expected 0 < step <= period, got step={step}, period={period}")
        self.slices = max(1, round(period / step))
        self._pending: Sequence[Item] = ()
        self._index = 0
        self._size = 0

    def next_slice(self, snapshot: Callable[[], Sequence[Item]]) -> Sequence[Item]:
        """The items to check now; a new pass starts from ``snapshot()`` once one ends."""
        if self._index >= len(self._pending):
            self._pending = snapshot()
            self._index = 0
            self._size = math.ceil(len(self._pending) / self.slices)
        chunk = self._pending[self._index : self._index + self._size]
        self._index += self._size
        return chunk
