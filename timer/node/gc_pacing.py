"""Full garbage collections paced by the node instead of by CPython's allocation counters.

CPython runs a full (generation 2) collection whenever the objects that survived two younger
collections since the last one exceed a quarter of the old ones. A node taking thousands of
connections at once (a failover, a ramp) grows its old objects by far more than that every half
second, so it ran a full collection every 0.4-0.8 s, each traversing every object of every
connection (130-540 ms at 6,000 connections, 1.25 s at 10,000) and mostly freeing nothing: the
event loop stalled and ticks, handshakes and /healthcheck waited behind it.

So the node switches CPython's automatic full collections off and runs them itself
(:func:`pace_full_collections`), at most every ``min_interval`` seconds:

- when its connections grew by a quarter since the last one, or ``routine_every`` seconds
  after it: a collection of the young generations only, after which every object (mostly the
  connections open now) is frozen (:func:`gc.freeze`) and not traversed again. A pass over the
  objects made since the last freeze, old generation included, took 140-400 ms after a ramp to
  10,000 connections and freed nothing: what outlives the young generations is live. The rare
  cyclic garbage that did is frozen with it until the next full pass;
- when a quarter of the connections frozen so far have closed, or ``full_every`` seconds after
  the last full pass: everything is unfrozen and collected once (the long pause, but only after
  that much churn or time), then frozen again.

Memory stays bounded by the garbage of a quarter of the connections and of ``full_every``
seconds. The node decides from its own counts of connections and closes: counting the objects
of the old generation (``gc.get_objects``) would itself take 200 ms at 10,000 connections.
Younger collections are CPython's, unchanged. :class:`FullCollectionPacer` decides (pure); the
task collects, and restores CPython's behaviour when it stops (the node stops only when its
process ends, or in tests).
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

NOTHING, NEW_OBJECTS, EVERYTHING = "nothing", "new", "everything"


@dataclass
class FullCollectionPacer:
    """Which full collection is due, from the node's connections, closes and the time (pure)."""

    min_interval: float  # seconds between two full collections at least
    routine_every: float = 60.0  # collect the new objects at least this often
    full_every: float = 600.0  # collect everything at least this often
    growth: float = 0.25  # collect the new objects once connections grew by this fraction
    churn: float = 0.25  # collect everything once this fraction of frozen connections closed
    last_at: float = -math.inf
    last_full_at: float = -math.inf
    connections_at_last: int = 0
    connections_frozen: int = 0  # connections open at the last freeze, at most
    closes_at_freeze: int = 0  # the node's close count at the last full pass
    collections: int = 0
    last_pause: float = 0.0  # seconds the last collection took

    def due(self, now: float, *, connections: int, closes: int) -> str:
        """NOTHING, NEW_OBJECTS or EVERYTHING."""
        if now - self.last_at < self.min_interval:
            return NOTHING
        if (
            closes - self.closes_at_freeze > self.churn * max(1, self.connections_frozen)
            or now - self.last_full_at >= self.full_every
        ):
            return EVERYTHING
        if (
            connections > self.connections_at_last * (1 + self.growth)
            or now - self.last_at >= self.routine_every
        ):
            return NEW_OBJECTS
        return NOTHING

    def collected(
        self, now: float, kind: str, *, connections: int, closes: int, pause: float
    ) -> None:
        self.last_at = now
        self.connections_at_last = connections
        if kind == EVERYTHING:
            self.connections_frozen, self.closes_at_freeze = connections, closes
            self.last_full_at = now
        else:  # the connections of this round joined the frozen ones
            self.connections_frozen = max(self.connections_frozen, connections)
        self.collections += 1
        self.last_pause = pause


async def pace_full_collections(
    pacer: FullCollectionPacer,
    *,
    node_name: str,
    connections: Callable[[], int],
    closes: Callable[[], int],
    check_every: float = CHECK_EVERY,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Run the full collections ``pacer`` calls for, until cancelled."""
    young, middle, old = gc.get_threshold()
    gc.set_threshold(young, middle, NEVER)
    try:
        while True:
            await asyncio.sleep(check_every)
            kind = pacer.due(clock(), connections=connections(), closes=closes())
            if kind == NOTHING:
                continue
            started = time.perf_counter()
            if kind == EVERYTHING:
                gc.unfreeze()
            freed = gc.collect(2 if kind == EVERYTHING else 1)
            gc.freeze()
            pause = time.perf_counter() - started
            pacer.collected(clock(), kind, connections=connections(), closes=closes(), pause=pause)
            logger.info(
                "node=%s event=gc-full kind=%s freed=%d pause_ms=%.0f",
                node_name,
                kind,
                freed,
                pause * 1000,
            )
    finally:
        gc.set_threshold(young, middle, old)
        gc.unfreeze()  # what was frozen is collectable again, as before the task
