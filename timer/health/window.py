"""The usage average: a time-weighted simple moving average over the last ``window`` seconds.

A moving average rather than an EWMA because its bounds are easy to state to an operator: a
burst of ``b`` seconds at full link raises the average by at most ``b / window``, and ``window``
seconds after traffic stops, the traffic is forgotten entirely. Each value holds over its
interval; intervals straddling the window's edge count for the part inside it. Gaps (dropped
intervals) count neither way, and until the window has filled, the average covers the time
measured so far.
"""

from __future__ import annotations

from collections import deque


class MovingAverage:
    """Values that each hold over a ``[start, end)`` interval, averaged over a trailing window."""

    def __init__(self) -> None:
        self._spans: deque[tuple[float, float, float]] = deque()

    def __len__(self) -> int:
        return len(self._spans)

    def add(self, start: float, end: float, value: float) -> None:
        """Record ``value`` over ``[start, end)``; empty or reversed intervals are ignored."""
        if end > start:
            self._spans.append((start, end, value))

    def forget_before(self, when: float) -> None:
        """Drop the intervals that end at or before ``when``."""
        while self._spans and self._spans[0][1] <= when:
            self._spans.popleft()

    def average(self, now: float, window: float) -> float | None:
        """Return the average over ``[now - window, now]``, or None when nothing covers it."""
        edge = now - window
        weighted = covered = 0.0
        for start, end, value in reversed(self._spans):
            if end <= edge:
                break
            overlap = min(end, now) - max(start, edge)
            if overlap > 0:
                weighted += value * overlap
                covered += overlap
        return weighted / covered if covered > 0 else None
