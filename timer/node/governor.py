"""The governor: follow the health policy's draining flag, and shed load when overloaded.

Once per sample interval it reads the process's :class:`~timer.health.monitor.HealthMonitor`
(the policy the admin set, and the measured usage), starts or cancels the policy drain, and asks
:class:`~timer.core.shedding.Shedder` how many connections to close with 1013.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from ..core.close_codes import CLOSE_TRY_AGAIN_LATER
from ..core.shedding import Shedder
from ..health.monitor import HealthMonitor
from .counters import NodeCounters
from .drainer import POLICY, Drainer

logger = logging.getLogger(__name__)

C = TypeVar("C")


class Governor(Generic[C]):
    """See the module docstring; ``close`` is the node's, which records exact counts first."""

    def __init__(
        self,
        *,
        node_name: str,
        monitor: Callable[[], HealthMonitor],
        drainer: Drainer,
        shedder: Shedder | None,
        every: float,
        counters: NodeCounters,
        connections: Callable[[], Sequence[C]],
        close: Callable[[list[C], int, str], Awaitable[int]],
        choose: Callable[[Sequence[C], int], list[C]] = random.sample,
    ) -> None:
        self.node_name = node_name
        self._monitor = monitor
        self.drainer = drainer
        self.shedder = shedder  # None: shedding is off
        self.every = every
        self._connections = connections
        self._close = close
        self._choose = choose
        self.counters = counters

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.every)
            await self.step(loop.time())

    async def step(self, now: float) -> None:
        """One round: follow the draining flag, then shed if the node is over its level."""
        monitor = self._monitor()
        policy = monitor.policy
        if policy.draining and not self.drainer.draining:
            self.drainer.start(POLICY)
        elif not policy.draining and self.drainer.draining:
            self.drainer.cancel()
        if self.shedder is None or self.drainer.draining:
            return
        connections = self._connections()
        count = self.shedder.decide(
            now=now, connections=len(connections), usage=monitor.usage, threshold=policy.threshold
        )
        if count:
            victims = self._choose(connections, count)
            closed = await self._close(victims, CLOSE_TRY_AGAIN_LATER, "node overloaded")
            self.counters.shed += closed
            logger.warning(
                "node=%s event=shed closed=%d usage=%.3f shed_level=%s",
                self.node_name,
                closed,
                monitor.usage or 0.0,
                self.shedder.shed_level,
            )
