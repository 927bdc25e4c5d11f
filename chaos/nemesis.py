"""The nemesis: faults on a seeded random schedule, each one healed when its time is up.

A fault holds its target (a node, or Redis) for its whole life, so two faults never fight over
one process; up to ``max_concurrent`` faults on different targets overlap (a Redis stall while a
node is killed, for instance). Every kill is followed by a restart, every stop by a continue,
every cut by its removal: when :meth:`Nemesis.run` returns, the cluster is whole again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from .cluster import LIBFAKETIME, ChaosCluster, NodeSlot

logger = logging.getLogger(__name__)

PROCESS_KINDS = (
    "node-kill",
    "node-term",
    "node-hang",
    "redis-kill-keep",
    "redis-kill-empty",
    "redis-stall",
    "duplicate",
    "skew",
)
NETNS_KINDS = ("redis-cut", "clients-cut", "lossy")
ALL_KINDS = PROCESS_KINDS + NETNS_KINDS
REDIS_KINDS = ("redis-kill-keep", "redis-kill-empty", "redis-stall")


@dataclass(frozen=True)
class Planned:
    """One fault of the schedule: ``at`` seconds after the faults start."""

    at: float
    kind: str
    target: str
    draw: float  # seeds the fault's own choices (durations, skew, victim)


@dataclass
class Fault:
    """One injected fault, as JSON in the run's faults file."""

    kind: str
    target: str
    started: float
    params: dict = field(default_factory=dict)
    healed: float | None = None
    error: str = ""
    skipped: str = ""  # why a planned fault was not injected

    def as_json(self) -> dict:
        return asdict(self)


class Nemesis:
    """Injects ``kinds`` of faults into ``cluster`` for ``duration`` seconds, from ``rng``."""

    def __init__(
        self,
        cluster: ChaosCluster,
        *,
        kinds: tuple[str, ...],
        rng: random.Random,
        clock: Callable[[], float],
        duplicate: Callable[[random.Random, int], str | None],
        max_concurrent: int = 2,
        gap: tuple[float, float] = (1.0, 4.0),
    ) -> None:
        self.cluster = cluster
        self.kinds = kinds
        self.rng = rng
        self.clock = clock
        self.duplicate = duplicate
        self.max_concurrent = max_concurrent
        self.gap = gap
        self.faults: list[Fault] = []
        self.busy: set[str] = set()
        self._tasks: set[asyncio.Task] = set()

    def counts(self) -> Counter:
        """Injected faults by kind (skipped ones not counted)."""
        return Counter(fault.kind for fault in self.faults if not fault.skipped)

    def plan(self, duration: float) -> list[Planned]:
        """The schedule: when, what, on which target; from the seed alone, never from timing."""
        planned: list[Planned] = []
        at = 0.0
        nodes = [slot.name for slot in self.cluster.slots]
        while True:
            at += self.rng.uniform(*self.gap)
            if at >= duration:
                return planned
            kind = self.rng.choice(self.kinds)
            if kind == "duplicate":
                target = "clients"
            elif kind in REDIS_KINDS:
                target = "redis"
            else:
                target = self.rng.choice(nodes)
            planned.append(Planned(at, kind, target, self.rng.random()))

    async def run(self, duration: float) -> None:
        """Inject the planned faults for ``duration`` seconds, then wait for every one to heal.

        A fault whose target is still held by an earlier one, or that would exceed
        ``max_concurrent``, is skipped and recorded as such: the schedule stays the seed's.
        """
        start = self.clock()
        try:
            for item in self.plan(duration):
                await asyncio.sleep(max(0.0, start + item.at - self.clock()))
                busy = item.target in self.busy
                if busy or len(self._tasks) >= self.max_concurrent:
                    self.faults.append(
                        Fault(
                            kind=item.kind,
                            target=item.target,
                            started=self.clock(),
                            healed=self.clock(),
                            skipped="target busy" if busy else "too many faults",
                        )
                    )
                    continue
                task = asyncio.create_task(self._inject(item.kind, item.target, item.draw))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _inject(self, kind: str, target: str, draw: float) -> None:
        # Every random choice of the fault comes from its own generator, seeded from the
        # schedule's, so the schedule replays whatever the faults' timings were.
        rng = random.Random(draw)
        fault = Fault(kind=kind, target=target, started=self.clock())
        self.faults.append(fault)
        self.busy.add(target)
        logger.info("fault %s on %s", kind, target)
        try:
            await getattr(self, "_" + kind.replace("-", "_"))(fault, target, rng)
        except Exception as exc:
            logger.exception("fault %s on %s failed", kind, target)
            fault.error = f"{type(exc).__name__}: {exc}"[:300]
        finally:
            self.busy.discard(target)
            fault.healed = self.clock()

    def _slot(self, name: str) -> NodeSlot:
        return next(slot for slot in self.cluster.slots if slot.name == name)

    async def _restart(self, slot: NodeSlot, skew: int = 0) -> None:
        await asyncio.to_thread(self.cluster.start_node, slot, skew)

    async def _wait_exit(self, slot: NodeSlot, timeout: float) -> None:
        process = slot.process
        assert process is not None
        try:
            await asyncio.wait_for(asyncio.to_thread(process.process.wait), timeout)
        except TimeoutError:
            process.kill()

    async def _node_kill(self, fault: Fault, target: str, rng: random.Random) -> None:
        slot = self._slot(target)
        fault.params["down_s"] = down = round(rng.uniform(0.3, 3.0), 2)
        slot.process.kill(signal.SIGKILL)
        await asyncio.sleep(down)
        await self._restart(slot, slot.skew)

    async def _node_term(self, fault: Fault, target: str, rng: random.Random) -> None:
        slot = self._slot(target)
        slot.process.kill(signal.SIGTERM)
        await self._wait_exit(slot, 35)
        await self._restart(slot, slot.skew)

    async def _node_hang(self, fault: Fault, target: str, rng: random.Random) -> None:
        slot = self._slot(target)
        fault.params["hung_s"] = hung = round(rng.uniform(1.0, 6.0), 2)
        slot.process.kill(signal.SIGSTOP)
        try:
            await asyncio.sleep(hung)
        finally:
            slot.process.kill(signal.SIGCONT)

    async def _redis_down(self, fault: Fault, rng: random.Random, *, keep: bool) -> None:
        redis = self.cluster.redis
        fault.params["down_s"] = down = round(rng.uniform(0.3, 3.0), 2)
        redis.kill(signal.SIGKILL)
        if not keep:
            self.cluster.wipe_redis_data()
        await asyncio.sleep(down)
        await asyncio.to_thread(self.cluster.start_redis)

    async def _redis_kill_keep(self, fault: Fault, target: str, rng: random.Random) -> None:
        await self._redis_down(fault, rng, keep=True)

    async def _redis_kill_empty(self, fault: Fault, target: str, rng: random.Random) -> None:
        await self._redis_down(fault, rng, keep=False)

    async def _redis_stall(self, fault: Fault, target: str, rng: random.Random) -> None:
        redis = self.cluster.redis
        fault.params["stalled_s"] = stalled = round(rng.uniform(0.3, 3.0), 2)
        redis.kill(signal.SIGSTOP)
        try:
            await asyncio.sleep(stalled)
        finally:
            redis.kill(signal.SIGCONT)

    async def _duplicate(self, fault: Fault, target: str, rng: random.Random) -> None:
        # "takeover": a second tab opens the session; "race": two open it at the same instant,
        # so that their handshakes overlap on the nodes.
        fault.params["mode"] = mode = rng.choice(("takeover", "race"))
        fault.params["id"] = self.duplicate(rng, 2 if mode == "race" else 1)

    async def _skew(self, fault: Fault, target: str, rng: random.Random) -> None:
        if not LIBFAKETIME.exists():
            raise RuntimeError(f"{LIBFAKETIME} missing (Debian package faketime)")
        slot = self._slot(target)
        fault.params["skew_s"] = skew = rng.choice((-1, 1)) * rng.randint(2, 5)
        fault.params["held_s"] = held = round(rng.uniform(4.0, 12.0), 2)
        # A clock is skewed from a process's start: libfaketime shifts the monotonic clock too,
        # and changing the offset of a running process would move that clock backwards. So the
        # node restarts (a drain, as a deployment would) with the skew, and again without it.
        slot.process.kill(signal.SIGTERM)
        await self._wait_exit(slot, 35)
        await self._restart(slot, skew)
        await asyncio.sleep(held)
        slot.process.kill(signal.SIGTERM)
        await self._wait_exit(slot, 35)
        await self._restart(slot, 0)

    async def _partition(self, fault: Fault, target: str, rng: random.Random, cut) -> None:
        slot = self._slot(target)
        ns = self.cluster.namespaces
        assert ns is not None
        fault.params["held_s"] = held = round(rng.uniform(1.0, 8.0), 2)
        await asyncio.to_thread(cut, ns, slot)
        try:
            await asyncio.sleep(held)
        finally:
            await asyncio.to_thread(ns.heal, slot.k)

    async def _redis_cut(self, fault: Fault, target: str, rng: random.Random) -> None:
        port = self.cluster.redis_port
        await self._partition(fault, target, rng, lambda ns, slot: ns.cut_redis(slot.k, port))

    async def _clients_cut(self, fault: Fault, target: str, rng: random.Random) -> None:
        port = self.cluster.redis_port
        await self._partition(fault, target, rng, lambda ns, slot: ns.cut_clients(slot.k, port))

    async def _lossy(self, fault: Fault, target: str, rng: random.Random) -> None:
        fault.params["loss_pct"] = loss = rng.randint(10, 40)
        fault.params["delay_ms"] = delay = (
            rng.randint(20, 300) if self.cluster.namespaces.netem else 0
        )
        await self._partition(fault, target, rng, lambda ns, slot: ns.lossy(slot.k, loss, delay))
