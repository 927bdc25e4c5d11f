"""The node: this process's name, connections, session store and background tasks.

One :class:`Node` per process, made by :func:`get_node`. Its tasks run in the server's event
loop (daphne has no ASGI lifespan), each supervised so that a dead one is logged and restarted:

- ``ticker``: sends every connection's frames (:class:`timer.hub.Hub`).
- ``clock``: sends one ``clock.tick`` per interval through the channel layer to this node's own
  channel; the ticker starts each round when it arrives, or on its own clock if it does not.
- ``inbox``: receives this node's channel messages: clock ticks and session takeovers.
- ``housekeeping``: once per interval, with a shared store, replaces this node's live counts in
  one Redis transaction and writes back what an outage held up.
- ``sampler``: measures network usage for the health check (:mod:`timer.health`).
- ``governor``: follows the health policy's draining flag and sheds load when overloaded.
- ``loop-lag``: records how late the event loop wakes a sleeper (:mod:`timer.loop_lag`).
- ``agent``: answers HAProxy's agent check, when ``WSTIME_AGENT_PORT`` is set.
- ``cluster``: with a shared store, publishes this node's state, reads the cluster's and moves
  connections off this node when it holds clearly more than its share (:mod:`timer.cluster_task`).

Under daphne the tasks start as soon as the server runs (:mod:`timer.startup`); elsewhere
(tests) on first use. Drains (SIGTERM or policy) and shedding close connections through
:meth:`Node.close_connections`, which records each exact count before the close frame.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

from channels.layers import get_channel_layer
from redis.exceptions import RedisError

from . import supervise
from .agent import agent_reply, serve_agent
from .close_codes import (
    CLOSE_SERVICE_RESTART,
    CLOSE_SESSION_TAKEN_OVER,
    CLOSE_TRY_AGAIN_LATER,
    close_code_label,
)
from .cluster_task import ClusterTask
from .conf import Config, config
from .drain import DrainPlan, close_reason, reconnect_hint_ms
from .health.decision import DRAINING, STALE
from .health.runtime import get_monitor
from .health.sampler import Sampler
from .hub import Connection, Hub
from .loop_lag import LagRecord, watch
from .names import random_name
from .reservations import Reservations
from .sessions.memory import MemorySessionStore
from .sessions.records import LIVE
from .sessions.redis_store import RedisSessionStore
from .sessions.store import Opening, SessionStore
from .shedding import Shedder

logger = logging.getLogger(__name__)

SWEEP_EVERY = 30.0  # seconds between two sweeps of expired sessions from this process's memory


@dataclass
class NodeCounters:
    """Totals since start, read by the health JSON and /metrics (never reset)."""

    sessions_new: int = 0
    sessions_resumed: int = 0
    sessions_unstored: int = 0  # opened from memory while the shared store was unreachable
    takeovers: int = 0
    shed: int = 0  # connections closed with 1013 to shed load
    health_unavailable: int = 0  # /healthcheck answers with 503
    refused_handshakes: dict[str, int] = field(default_factory=dict)  # by reason
    # By close_code_label(): a bounded set of labels, whatever codes clients choose.
    closes_by_code: dict[str, int] = field(default_factory=dict)

    def refused(self, reason: str) -> None:
        self.refused_handshakes[reason] = self.refused_handshakes.get(reason, 0) + 1

    def closed(self, code: int | None) -> None:
        label = close_code_label(code)
        self.closes_by_code[label] = self.closes_by_code.get(label, 0) + 1


@dataclass
class DrainState:
    """A drain in progress: where it came from and how far it got."""

    source: str  # "signal" (SIGTERM, final) or "policy" (admin / manage.py drain, reversible)
    started_at: float  # event loop time
    total: int = 0  # connections it set out to close
    closed: int = 0
    task: asyncio.Task | None = field(default=None, repr=False)

    @property
    def final(self) -> bool:
        return self.source == "signal"


class Node:
    """See the module docstring."""

    def __init__(self, cfg: Config, *, name: str | None = None) -> None:
        self.config = cfg
        self.name = name or cfg.node_name or random_name()
        self.started_at = time.time()
        self.hub: Hub | None = None
        self.store: SessionStore | None = None
        self.layer = get_channel_layer()
        self.channel_name = ""
        self.tasks: list[supervise.TaskState] = []
        self._tokens = itertools.count(1)
        self._start_lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.counters = NodeCounters()
        self.drain_state: DrainState | None = None
        # Handshakes in progress by client id (see timer.reservations); the consumer reserves
        # before its first await, and the inbox marks one that another node took over.
        self.reservations = Reservations()
        self.cluster: ClusterTask | None = None  # with a shared store only
        self.loop_lag = LagRecord()

    # --- life cycle

    async def ensure_started(self) -> None:
        """Start the background tasks once, in the running event loop."""
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        if self._start_lock is None or self._loop is not None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._loop is loop:
                return
            await self._start(loop)

    async def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        cfg = self.config
        self.hub = Hub(node_name=self.name, interval=cfg.tick_interval, clock=loop.time)
        if cfg.redis_url:
            # Opens wait out this grace after Redis lost its data: three checkpoints of every
            # node, time for each to write its recently closed sessions back.
            self.store = RedisSessionStore.from_url(
                cfg.redis_url, ttl=cfg.session_ttl, pool_size=cfg.redis_pool_size,
                recovery_grace=max(1.0, 3 * cfg.tick_interval),
            )
        else:
            self.store = MemorySessionStore(ttl=cfg.session_ttl)
        self.hub.lease = self.store.shared
        self.tasks = [supervise.supervise("ticker", self.hub.run_ticker)]
        if self.layer is not None:
            self.channel_name = await self._new_channel()
            self.hub.paced_by_layer = True
            self.tasks += [
                supervise.supervise("clock", self._run_clock),
                supervise.supervise("inbox", self._run_inbox),
            ]
        self.tasks.append(supervise.supervise("housekeeping", self._run_housekeeping))
        self.tasks.append(supervise.supervise("sampler", Sampler.for_node(self).run))
        self.tasks.append(supervise.supervise("governor", self._run_governor))
        self.tasks.append(supervise.supervise("loop-lag", lambda: watch(self.loop_lag)))
        if cfg.redis_url:
            self.cluster = ClusterTask(self)
            self.tasks.append(supervise.supervise("cluster", self.cluster.run))
        if cfg.agent_port is not None:
            self.tasks.append(supervise.supervise("agent", lambda: serve_agent(
                cfg.agent_bind, cfg.agent_port, self.agent_reply)))
        self._loop = loop
        logger.info("node %s started: interval %ss, %s sessions, channel %s", self.name,
                    cfg.tick_interval, "Redis" if self.store.shared else "in-memory",
                    self.channel_name or "-")

    async def _new_channel(self) -> str:
        try:
            return await self.layer.new_channel(prefix="wstime.node.")
        except (RedisError, OSError) as exc:  # the layer is optional for ticking; see _run_inbox
            logger.warning("node=%s channel layer unreachable at start (%s); ticking on the "
                           "node's own clock", self.name, type(exc).__name__)
            # A deterministic name still lets the inbox subscribe once the layer is back.
            return f"wstime.node.{self.name}!{int(self.started_at * 1000)}"

    async def stop(self) -> None:
        """Cancel and await every background task and close the store."""
        if self.drain_state is not None and self.drain_state.task is not None:
            self.drain_state.task.cancel()
            await asyncio.gather(self.drain_state.task, return_exceptions=True)
        await supervise.stop(self.tasks)
        self.tasks = []
        if self.store is not None:
            await self.store.aclose()
        self._loop = None

    # --- connections

    def new_token(self) -> str:
        return f"{self.channel_name or self.name}#{next(self._tokens)}"

    async def open_session(self, client_id: str, token: str, *, last_seen: int = -1) -> Opening:
        """Claim ``client_id`` for a new connection, taking it over from an older one.

        ``last_seen`` is the last count the client says it was shown: the session resumes at
        least one past it.

        The caller holds the id's reservation (:attr:`reservations`), so no other handshake
        with this id runs here between the look-up of the older connection and the new claim.
        """
        assert self.hub is not None and self.store is not None
        local = self.hub.get(client_id)
        if local is not None:
            # Same node: close the older connection first so its exact count is recorded.
            await self.take_over_local(local)
        opening = await self.store.open(client_id, token, last_seen=last_seen)
        previous = opening.previous
        if previous is None:
            self.counters.sessions_new += 1
        else:
            self.counters.sessions_resumed += 1
        if not opening.stored:
            self.counters.sessions_unstored += 1
        if (previous is not None and previous.state == LIVE and previous.token != token
                and previous.owner_channel and previous.owner_channel != self.channel_name):
            await self._send_takeover(previous.owner_channel, client_id, previous.token)
        return opening

    async def take_over_local(self, connection: Connection) -> None:
        assert self.hub is not None and self.store is not None
        if not self.hub.detach(connection):
            return
        self.counters.takeovers += 1
        connection.closing = True
        logger.info("node=%s client=%s event=takeover: a newer connection holds the session",
                    self.name, connection.client_id)
        await self.store.close(connection.client_id, connection.token, connection.last_n)
        await connection.close(CLOSE_SESSION_TAKEN_OVER, "session taken over")

    async def _send_takeover(self, channel: str, client_id: str, token: str) -> None:
        try:
            await self.layer.send(channel, {"type": "session.takeover", "client_id": client_id,
                                            "token": token})
        except Exception:  # noqa: BLE001 - the old connection then ends on its own
            logger.warning("node=%s client=%s could not reach %s to take the session over",
                           self.name, client_id, channel)

    # --- drain

    @property
    def draining(self) -> bool:
        return self.drain_state is not None

    def start_drain(self, source: str) -> DrainState:
        """Begin a drain (idempotent); a signal drain replaces a policy drain, never the reverse."""
        state = self.drain_state
        if state is not None and (state.final or source != "signal"):
            return state
        if state is not None and state.task is not None:
            state.task.cancel()
        loop = asyncio.get_running_loop()
        state = DrainState(source=source, started_at=loop.time())
        self.drain_state = state
        state.task = loop.create_task(self._drain(state), name=f"wstime:drain:{source}")
        logger.warning("node=%s event=drain-start source=%s notice=%ss window=%ss", self.name,
                       source, self.config.drain_notice, self.config.drain_window)
        return state

    def cancel_drain(self) -> bool:
        """Stop a policy drain (admin undid it); a signal drain cannot be undone."""
        state = self.drain_state
        if state is None or state.final:
            return False
        if state.task is not None:
            state.task.cancel()
        self.drain_state = None
        logger.warning("node=%s event=drain-cancelled closed=%d", self.name, state.closed)
        return True

    async def _drain(self, state: DrainState) -> None:
        """Keep serving for the notice period, then close every connection in paced batches."""
        cfg = self.config
        plan = DrainPlan(notice=cfg.drain_notice, window=cfg.drain_window,
                         deadline=cfg.drain_deadline)
        await asyncio.sleep(plan.notice)
        assert self.hub is not None
        connections = list(self.hub.by_client.values())
        state.total = len(connections)
        for size in plan.batches(len(connections)):
            batch, connections = connections[:size], connections[size:]
            await self.close_connections(batch, CLOSE_SERVICE_RESTART, "node restarting")
            state.closed += len(batch)
            await asyncio.sleep(plan.batch_every)
        logger.warning("node=%s event=drain-done source=%s closed=%d", self.name, state.source,
                       state.closed)

    async def close_connections(self, connections: list[Connection], code: int,
                                kind: str) -> int:
        """Record the exact counts, then close each still-attached connection with ``code``.

        Each close carries a random reconnect hint so that the reconnects spread out.
        """
        assert self.hub is not None and self.store is not None
        leaving = [c for c in connections if self.hub.detach(c)]
        for connection in leaving:
            connection.closing = True
        await self.store.close_many([(c.client_id, c.token, c.last_n) for c in leaving])
        for connection in leaving:
            hint = reconnect_hint_ms(self.config.reconnect_hint_max)
            try:
                await connection.close(code, close_reason(kind, hint))
            except Exception:
                logger.exception("node=%s client=%s close failed", self.name,
                                 connection.client_id)
        return len(leaving)

    # --- background tasks

    async def _run_clock(self) -> None:
        assert self.hub is not None
        loop = asyncio.get_running_loop()
        wheel = self.hub.wheel
        round_number = self.hub.round_of(wheel.step_at(loop.time()))
        failing = False
        while True:
            delay = wheel.time_of(round_number * wheel.slots) - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                await self.layer.send(self.channel_name, {"type": "clock.tick",
                                                          "round": round_number})
                if failing:
                    logger.warning("node=%s clock ticks flow through the channel layer again",
                                   self.name)
                failing = False
            except Exception as exc:  # noqa: BLE001 - the ticker's own clock covers the gap
                if not failing:
                    logger.error("node=%s channel layer send failed (%s); ticking on the local "
                                 "clock", self.name, type(exc).__name__)
                failing = True
            round_number = max(round_number + 1,
                               self.hub.round_of(wheel.step_at(loop.time())))

    async def _run_inbox(self) -> None:
        assert self.hub is not None
        unreachable = False
        while True:
            try:
                message = await self.layer.receive(self.channel_name)
            except (RedisError, OSError) as exc:
                # Redis is down: the ticker's local clock covers the ticks, and the session
                # store reports the outage. Wait and subscribe again; no traceback per try.
                if not unreachable:
                    logger.warning("node=%s channel layer unreachable (%s); inbox retries every "
                                   "%ss", self.name, type(exc).__name__, self.config.tick_interval)
                unreachable = True
                await asyncio.sleep(self.config.tick_interval)
                continue
            if unreachable:
                logger.warning("node=%s channel layer reachable again", self.name)
                unreachable = False
            kind = message.get("type")
            if kind == "clock.tick":
                self.hub.release_round(int(message["round"]))
            elif kind == "session.takeover":
                client_id, token = str(message.get("client_id")), message.get("token")
                connection = self.hub.get(client_id)
                if connection is not None and connection.token == token:
                    await self.take_over_local(connection)
                elif self.reservations.take_over(client_id, token):
                    # The older connection is still in its handshake: it gives up (4001)
                    # instead of attaching once the handshake ends.
                    logger.info("node=%s client=%s event=takeover-pending: a newer connection "
                                "holds the session", self.name, client_id)
            else:
                logger.warning("node=%s ignoring unknown message type %r", self.name, kind)

    async def _run_governor(self) -> None:
        """Once per sample interval: follow the policy's draining flag, and shed load."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        shedder = Shedder(shed_level=cfg.shed_level,
                          fraction_per_round=min(1.0, cfg.shed_fraction * cfg.sample_interval),
                          window=cfg.net_window)
        while True:
            await asyncio.sleep(cfg.sample_interval)
            monitor = get_monitor()
            policy = monitor.policy
            if policy.draining and self.drain_state is None:
                self.start_drain("policy")
            elif not policy.draining and self.drain_state is not None:
                self.cancel_drain()
            if cfg.shed_enabled and not self.draining:
                assert self.hub is not None
                count = shedder.decide(now=loop.time(), connections=len(self.hub),
                                       usage=monitor.usage, threshold=policy.threshold)
                if count:
                    await self._shed(count, monitor.usage)

    async def _shed(self, count: int, usage: float) -> None:
        """Close ``count`` random connections with 1013 and a reconnect hint."""
        assert self.hub is not None
        cfg = self.config
        victims = random.sample(list(self.hub.by_client.values()), count)
        closed = await self.close_connections(victims, CLOSE_TRY_AGAIN_LATER, "node overloaded")
        self.counters.shed += closed
        logger.warning("node=%s event=shed closed=%d usage=%.3f shed_level=%s", self.name,
                       closed, usage, cfg.shed_level)

    def agent_reply(self) -> str:
        """The HAProxy agent-check line for this node right now."""
        monitor = get_monitor()
        report = monitor.report(monitor.clock(), len(self.hub) if self.hub is not None else 0,
                                draining=self.draining)
        return agent_reply(report, draining=report.status == DRAINING,
                           stale=report.status == STALE)

    async def _run_housekeeping(self) -> None:
        """Once per interval: checkpoint the counts (shared store), write back after outages.

        A checkpoint that Redis stored raises every connection's lease to the counts it wrote
        (see :mod:`timer.hub`); one that failed raises nothing, so connections pause at most one
        frame past what Redis holds until a later one succeeds.
        """
        assert self.hub is not None and self.store is not None
        store: Any = self.store
        hub = self.hub
        interval = self.config.tick_interval
        loop = asyncio.get_running_loop()
        swept_at = next_at = loop.time()
        while True:
            # Deadlines, not sleep(interval): the checkpoint keeps its phase against the frames.
            next_at = max(next_at + interval, loop.time())
            await asyncio.sleep(next_at - loop.time())
            if store.shared:
                if store.pending_closes:
                    await store.flush_pending()
                snapshot = hub.snapshot()
                stored = await store.checkpoint(
                    self.channel_name, [(c.client_id, c.token, n) for c, n in snapshot])
                if stored:
                    await hub.confirm(snapshot)
            if loop.time() - swept_at >= SWEEP_EVERY:
                store.expire()
                swept_at = loop.time()


_node: Node | None = None


def get_node() -> Node:
    """Return this process's node, creating it (and logging its name) on first call."""
    global _node
    if _node is None:
        _node = Node(config())
        logger.info("This server is named: %s", _node.name)
    return _node


def reset_node() -> None:
    """Forget the process's node (tests start each one afresh)."""
    global _node
    _node = None
