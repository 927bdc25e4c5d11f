"""The sampler: reads the network counters once per interval and feeds the process's monitor.

One supervised task per process (started by the node), so a sampler that dies is logged and
restarted, and one that wedges shows as a stale sample age, which fails the health check. The
same task reloads the health policy (:mod:`.policy_store`). psutil's reads are system calls,
so they run in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psutil

from .capacity import Capacity, link_capacity, select_interfaces
from .monitor import HealthMonitor
from .policy_store import refresh_forever
from .rates import CounterSample, counters_from_psutil

logger = logging.getLogger(__name__)


class Sampler:
    """Reads ``interfaces`` (empty: every up interface but loopback) every ``interval`` seconds."""

    def __init__(
        self,
        monitor: HealthMonitor,
        *,
        node_name: str,
        interval: float,
        interfaces: tuple[str, ...],
        link_capacity: int | None,
        policy_every: float,
        connections: Callable[[], int],
    ) -> None:
        self.monitor = monitor
        self.node_name = node_name
        self.interval = interval
        self.interfaces = interfaces
        self.link_capacity = link_capacity
        self.policy_every = policy_every
        self.connections = connections
        self._measuring: tuple[tuple[str, ...], Capacity] | None = None
        self._status = ""

    async def run(self) -> None:
        """Sample and reload the policy until cancelled; if sampling fails, both restart.

        The policy refresh catches its own errors (it keeps the last policy), so a policy that
        cannot be loaded never stops the sampling: that would turn every node stale at once.
        """
        async with asyncio.TaskGroup() as group:
            group.create_task(self.sample_forever())
            group.create_task(refresh_forever(self.monitor, self.node_name, self.policy_every))

    async def sample_forever(self) -> None:
        """Feed one sample per interval, on deadlines ``start + k * interval``."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        k = 0
        while True:
            sample, capacity = await asyncio.to_thread(self.read)
            connections = self.connections()
            self.monitor.observe(sample, capacity, connections)
            self._log_changes(sample, capacity, connections)
            # After a stall, skip the missed deadlines instead of sampling in a burst.
            k = max(k + 1, int((loop.time() - start) / self.interval) + 1)
            await asyncio.sleep(max(0.0, start + k * self.interval - loop.time()))

    def read(self) -> tuple[CounterSample, Capacity]:
        """Read the counters and link speeds of the measured interfaces (blocking)."""
        stats = psutil.net_if_stats()
        names = select_interfaces(stats, self.interfaces)
        pernic = psutil.net_io_counters(pernic=True)
        at = self.monitor.clock()
        return (
            CounterSample(at, counters_from_psutil(pernic, names)),
            link_capacity(stats, names, self.link_capacity),
        )

    def _log_changes(self, sample: CounterSample, capacity: Capacity, connections: int) -> None:
        measuring = (tuple(sorted(sample.interfaces)), capacity)
        if measuring != self._measuring:
            self._measuring = measuring
            if capacity.bits_per_second is None:
                logger.warning(
                    "node=%s measures %s but knows no capacity for it (link speed 0?); "
                    "set WSTIME_LINK_CAPACITY, or a capacity in the health policy",
                    self.node_name,
                    ",".join(measuring[0]) or "no interface",
                )
            else:
                logger.info(
                    "node=%s measures %s, capacity %s bit/s from %s",
                    self.node_name,
                    ",".join(measuring[0]),
                    capacity.bits_per_second,
                    capacity.source,
                )
        report = self.monitor.report(sample.at, connections)
        if report.status != self._status:
            if self._status:
                logger.warning(
                    "node=%s health %s -> %s (usage %s, connections %s)",
                    self.node_name,
                    self._status,
                    report.status,
                    "-" if report.usage is None else f"{report.usage:.3f}",
                    connections,
                )
            self._status = report.status
