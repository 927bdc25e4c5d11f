"""Full garbage collections paced by the node instead of by CPython's allocation counters.

CPython runs a full (generation 2) collection whenever the objects that survived two younger
collections since the last one exceed a quarter of the old ones. A node that takes thousands
of connections at once (a failover) grows its old objects by far more than that every half
second, so it ran a full collection every 0.4-0.8 s, each traversing every object of every
connection (130-540 ms at 6,000 connections) and freeing nothing: the event loop stalled and
ticks, handshakes and /healthcheck waited behind it.

The node switches CPython's automatic full collections off and runs them itself: when the old
generation has grown by ``growth`` since the last full collection (garbage accumulates there
as connections close, so memory stays bounded) and no sooner than ``min_interval`` after it.
Younger collections are CPython's, unchanged. :class:`FullCollectionPacer` decides (pure);
:func:`pace_full_collections` is the task that counts and collects, and restores CPython's
thresholds when it stops.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

CHECK_EVERY = 5.0  # seconds between two looks at the old generation's size
NEVER = 2**30  # a threshold for generation 2 that CPython's counters never reach


@dataclass
class FullCollectionPacer:
    """Whether a full collection is due, from the old generation's size and the time (pure)."""

    min_interval: float  # seconds between two full collections at least
    growth: float = 0.25  # as CPython: collect once old objects grew by this fraction
    last_at: float = -math.inf
    objects_after_last: int = 0
    collections: int = 0
    last_pause: float = 0.0  # seconds the last full collection took

    def due(self, now: float, old_objects: int) -> bool:
        return (now - self.last_at >= self.min_interval
                and old_objects > self.objects_after_last * (1 + self.growth))

    def collected(self, now: float, old_objects: int, pause: float) -> None:
        self.last_at = now
        self.objects_after_last = old_objects
        self.collections += 1
        self.last_pause = pause


def _old_objects() -> int:
    return len(gc.get_objects(generation=2))


async def pace_full_collections(pacer: FullCollectionPacer, *, node_name: str,
                                check_every: float = CHECK_EVERY,
                                clock: Callable[[], float] = time.monotonic) -> None:
    """Run full collections when ``pacer`` says so, until cancelled."""
    young, middle, old = gc.get_threshold()
    gc.set_threshold(young, middle, NEVER)
    pacer.objects_after_last = max(pacer.objects_after_last, _old_objects())
    try:
        while True:
            await asyncio.sleep(check_every)
            objects = _old_objects()
            if not pacer.due(clock(), objects):
                continue
            started = time.perf_counter()
            freed = gc.collect(2)
            pause = time.perf_counter() - started
            pacer.collected(clock(), _old_objects(), pause)
            logger.info("node=%s event=gc-full objects=%d freed=%d pause_ms=%.0f", node_name,
                        objects, freed, pause * 1000)
    finally:
        gc.set_threshold(young, middle, old)
