"""Event-loop lag: how late the node's event loop wakes a task that asked to sleep.

A task that sleeps :data:`PERIOD` and wakes 300 ms late saw a loop busy for 300 ms: every
frame, handshake and ``/healthcheck`` answer waited as long. :class:`LagRecord` keeps the
lags in fixed buckets (bounded memory, whatever the uptime; the ``wstime_event_loop_lag_seconds``
histogram of ``/metrics``), so that a scraper can subtract two scrapes and read the
percentiles of the time between them (:func:`bucket_percentile`). Pure but for :func:`watch`,
the task that feeds it; times are arguments.

Limits: the resolution is the bucket, so percentiles are upper bounds (the bucket's upper
edge); a lag longer than the last bound counts as the record's exact ``max``. One sample per
period at most: a loop stalled for 2 s yields one 2 s sample, not forty.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

PERIOD = 0.05  # seconds the watcher sleeps between two samples
# Upper bounds of the buckets, in seconds; a last bucket (+Inf) takes the rest.
BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


def late_by(asked_at: float, period: float, woke_at: float) -> float:
    """Return how much later than ``asked_at + period`` the sleeper woke (never negative)."""
    return max(0.0, woke_at - asked_at - period)


@dataclass
class LagRecord:
    """Lag samples in fixed buckets since start, with their sum and the largest one."""

    bounds: tuple[float, ...] = BUCKETS
    counts: list[int] = field(default_factory=list)  # per bucket, the last one is +Inf
    total: float = 0.0
    max: float = 0.0

    def __post_init__(self) -> None:
        if list(self.bounds) != sorted(self.bounds) or not self.bounds:
            raise ValueError("bounds must be a non-empty increasing sequence of seconds")
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def add(self, lag: float) -> None:
        """Count one sample of ``lag`` seconds."""
        lag = max(0.0, lag)
        index = next((i for i, bound in enumerate(self.bounds) if lag <= bound), len(self.bounds))
        self.counts[index] += 1
        self.total += lag
        self.max = max(self.max, lag)

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, samples at or below it) per bucket, ending with (inf, count)."""
        result, seen = [], 0
        for bound, n in zip((*self.bounds, math.inf), self.counts, strict=True):
            seen += n
            result.append((bound, seen))
        return result

    def percentile(self, p: float) -> float | None:
        """The ``p``-th percentile (0-100) as its bucket's upper bound; None without samples."""
        found = bucket_percentile(self.cumulative(), p)
        return self.max if found == math.inf else found


def bucket_percentile(cumulative: Sequence[tuple[float, float]], p: float) -> float | None:
    """Return the upper bound of the bucket holding the ``p``-th percentile (nearest rank).

    ``cumulative`` is (upper bound, samples at or below it), increasing, as a Prometheus
    histogram's ``_bucket`` series, or the difference of two scrapes of one. None when it
    holds no sample; ``inf`` when the percentile lies past the last finite bound.
    """
    total = cumulative[-1][1] if cumulative else 0
    if total <= 0:
        return None
    rank = max(1, math.ceil(p / 100 * total))
    return next(bound for bound, seen in cumulative if seen >= rank)


async def watch(
    record: LagRecord, *, period: float = PERIOD, clock: Callable[[], float] | None = None
) -> None:
    """Sleep ``period`` over and over, recording how late each wake-up came; never returns."""
    now = clock or asyncio.get_running_loop().time
    while True:
        asked_at = now()
        await asyncio.sleep(period)
        record.add(late_by(asked_at, period, now()))
