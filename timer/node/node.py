"""The node: this process's name, connections, session store and background tasks.

One :class:`Node` per process, made by :func:`get_node`. Its tasks run in the server's event
loop (daphne has no ASGI lifespan), each supervised so that a dead one is logged and restarted:

- ``ticker``: sends every connection's frames (:class:`timer.node.hub.Hub`).
- ``clock`` and ``inbox``: this node's channel on the layer (:mod:`timer.node.channel_link`).
- ``housekeeping``: checkpoints the live counts (:mod:`timer.node.housekeeping`).
- ``sampler``: measures network usage for the health check (:mod:`timer.health`).
- ``governor``: follows the policy's draining flag and sheds load (:mod:`timer.node.governor`).
- ``loop-lag``: records how late the event loop wakes a sleeper (:mod:`timer.node.loop_lag`).
- ``gc``: runs the full garbage collections, paced (:mod:`timer.node.gc_pacing`).
- ``agent``: answers HAProxy's agent check, when ``WSTIME_AGENT_PORT`` is set.
- ``cluster``: with a shared store, publishes this node's state, reads the cluster's and moves
  connections off this node when it holds clearly more than its share (:mod:`timer.node.cluster_task`).

Under daphne the tasks start as soon as the server runs (:mod:`wstime.startup`); elsewhere
(tests) on first use. Drains (:mod:`timer.node.drainer`), shedding and rebalancing close
connections through :meth:`Node.close_connections`, which records each exact count before the
close frame.
"""

from __future__ import annotations

import asyncio
import logging
import time

from channels.layers import get_channel_layer
from redis.exceptions import RedisError

from ..config.loader import Config, config
from ..core.close_codes import CLOSE_SESSION_TAKEN_OVER, CLOSE_TRY_AGAIN_LATER
from ..core.drain_plan import DrainPlan, close_reason, reconnect_hint_ms
from ..core.names import random_name
from ..core.reservations import Reservations
from ..core.shedding import Shedder
from ..health.decision import DRAINING, STALE
from ..health.monitor import Report
from ..health.runtime import get_monitor
from ..health.sampler import Sampler
from ..sessions.factory import open_store
from ..sessions.records import token_owner, token_sequence
from ..sessions.store import Opening, SessionStore
from . import supervise
from .agent import agent_reply, serve_agent
from .channel_link import ChannelLink, send_takeover
from .cluster_task import ClusterTask
from .counters import NodeCounters
from .descriptors import process_connection_limit
from .drainer import Drainer, DrainState
from .gc_pacing import FullCollectionPacer, pace_full_collections
from .governor import Governor
from .housekeeping import run_housekeeping
from .hub import Connection, Hub
from .loop_lag import LagRecord, watch

logger = logging.getLogger(__name__)


class Node:
    """See the module docstring."""

    def __init__(self, cfg: Config, *, name: str | None = None) -> None:
        self.config = cfg
        self.name = name or cfg.node_name or random_name()
        self.started_at = time.time()
        # Connections past which handshakes get 503: the open-file limit less a reserve
        self.descriptor_limit = process_connection_limit()
        self.hub: Hub | None = None
        self.store: SessionStore | None = None
        self.layer = get_channel_layer()
        self.channel_name = ""
        self.tasks: list[supervise.TaskState] = []
        self._last_sequence = 0  # of the last token handed out
        self._start_lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.counters = NodeCounters()
        self.drainer = Drainer(
            DrainPlan(
                notice=cfg.drain_notice, window=cfg.drain_window, deadline=cfg.drain_deadline
            ),
            node_name=self.name,
            connections=self.connections,
            close=self.close_connections,
        )
        # Handshakes in progress by client id (see timer.core.reservations); the consumer
        # reserves before its first await, and the inbox marks one another node took over.
        self.reservations = Reservations()
        self.cluster: ClusterTask | None = None  # with a shared store only
        self.loop_lag = LagRecord()
        self.checkpoint_durations = LagRecord()
        self.gc_pacer = FullCollectionPacer(min_interval=cfg.gc_full_every)
        # How long a revoked connection waits for the takeover message of the claim that
        # revoked it (see revoked); the message normally takes milliseconds.
        self.revoked_grace = max(2 * cfg.tick_interval, 1.0)

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
        hub = self.hub = Hub(node_name=self.name, interval=cfg.tick_interval, clock=loop.time)
        # Opens wait out this grace after Redis lost its data: three checkpoints of every node,
        # time for each to write its recently closed sessions back.
        store = self.store = open_store(
            redis_url=cfg.redis_url,
            ttl=cfg.session_ttl,
            pool_size=cfg.redis_pool_size,
            recovery_grace=max(1.0, 3 * cfg.tick_interval),
        )
        hub.lease = store.shared
        self.tasks = [supervise.supervise("ticker", hub.run_ticker)]
        if self.layer is not None:
            self.channel_name = await self._new_channel()
            hub.paced_by_layer = True
            link = ChannelLink(
                self.layer,
                self.channel_name,
                hub,
                node_name=self.name,
                interval=cfg.tick_interval,
                take_over=self.take_over,
            )
            self.tasks += [
                supervise.supervise("clock", link.run_clock),
                supervise.supervise("inbox", link.run_inbox),
            ]
        self.tasks.append(
            supervise.supervise(
                "housekeeping",
                lambda: run_housekeeping(
                    hub,
                    store,
                    channel=lambda: self.channel_name,
                    interval=cfg.tick_interval,
                    revoked=self.revoked,
                    handshake_floor=self.handshake_floor,
                    durations=self.checkpoint_durations,
                ),
            )
        )
        sampler = Sampler(
            get_monitor(),
            node_name=self.name,
            interval=cfg.sample_interval,
            interfaces=cfg.net_interfaces,
            link_capacity=cfg.link_capacity,
            policy_every=cfg.policy_cache_seconds,
            connections=self.connection_count,
        )
        self.tasks.append(supervise.supervise("sampler", sampler.run))
        shedder = (
            Shedder(
                shed_level=cfg.shed_level,
                fraction_per_round=min(1.0, cfg.shed_fraction * cfg.sample_interval),
                window=cfg.net_window,
            )
            if cfg.shed_enabled
            else None
        )
        governor = Governor(
            node_name=self.name,
            monitor=get_monitor,
            drainer=self.drainer,
            shedder=shedder,
            every=cfg.sample_interval,
            counters=self.counters,
            connections=self.connections,
            close=self.close_connections,
        )
        self.tasks.append(supervise.supervise("governor", governor.run))
        self.tasks.append(supervise.supervise("loop-lag", lambda: watch(self.loop_lag)))
        if cfg.gc_full_every > 0:
            self.tasks.append(
                supervise.supervise(
                    "gc",
                    lambda: pace_full_collections(
                        self.gc_pacer,
                        node_name=self.name,
                        connections=self.connection_count,
                        closes=lambda: sum(self.counters.closes_by_code.values()),
                    ),
                )
            )
        if cfg.redis_url:
            self.cluster = ClusterTask(self)
            self.tasks.append(supervise.supervise("cluster", self.cluster.run))
        if cfg.agent_port is not None:
            self.tasks.append(
                supervise.supervise(
                    "agent", lambda: serve_agent(cfg.agent_bind, cfg.agent_port, self.agent_reply)
                )
            )
        self._loop = loop
        logger.info(
            "node %s started: interval %ss, %s sessions, channel %s",
            self.name,
            cfg.tick_interval,
            "Redis" if store.shared else "in-memory",
            self.channel_name or "-",
        )

    async def _new_channel(self) -> str:
        try:
            name: str = await self.layer.new_channel(prefix="wstime.node.")
            return name
        except (RedisError, OSError) as exc:  # the layer is optional for ticking
            logger.warning(
                "node=%s channel layer unreachable at start (%s); ticking on the node's own clock",
                self.name,
                type(exc).__name__,
            )
            # A deterministic name still lets the inbox subscribe once the layer is back.
            return f"wstime.node.{self.name}!{int(self.started_at * 1000)}"

    async def stop(self) -> None:
        """Cancel and await every background task and the drain, and close the store."""
        await self.drainer.stop()
        await supervise.stop(self.tasks)
        self.tasks = []
        if self.store is not None:
            await self.store.aclose()
        self._loop = None

    # --- connections

    def connections(self) -> list[Connection]:
        """The connections attached to this node now."""
        return list(self.hub.by_client.values()) if self.hub is not None else []

    def connection_count(self) -> int:
        return len(self.hub) if self.hub is not None else 0

    def new_token(self) -> str:
        self._last_sequence += 1
        return f"{self.channel_name or self.name}#{self._last_sequence}"

    def handshake_floor(self) -> int:
        """The lowest token sequence a handshake still in progress may hold, else the next one.

        Another node's claim may revoke such a connection before it is attached; the
        checkpoint keeps that mark until the connection is listed (and so revoked).
        """
        pending = [int(token_sequence(token)) for token in self.reservations.tokens()]
        return min(pending, default=self._last_sequence + 1)

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
        if opening.previous is None:
            self.counters.sessions_new += 1
        else:
            self.counters.sessions_resumed += 1
        # The claim revoked them: their nodes' next checkpoints stop their leases, and this
        # message closes them with 4001 (the same node's older connection was closed above).
        for revoked in opening.revoked:
            owner_channel = token_owner(revoked)
            if not owner_channel or owner_channel == self.channel_name:
                continue
            try:
                await send_takeover(self.layer, owner_channel, client_id, revoked)
            except Exception:  # noqa: BLE001 - its node closes it with 1013 without a message
                logger.warning(
                    "node=%s client=%s could not reach %s to take the session over",
                    self.name,
                    client_id,
                    owner_channel,
                )
        return opening

    async def take_over(self, client_id: str, token: str) -> None:
        """Another node's connection claimed ``client_id``: end ours, ``token``, if we hold it."""
        assert self.hub is not None
        connection = self.hub.get(client_id)
        if connection is not None and connection.token == token:
            await self.take_over_local(connection)
        elif self.reservations.take_over(client_id, token):
            # The older connection is still in its handshake: it gives up (4001) instead of
            # attaching once the handshake ends.
            logger.info(
                "node=%s client=%s event=takeover-pending: a newer connection holds the session",
                self.name,
                client_id,
            )

    async def revoked(self, revoked: tuple[tuple[str, str], ...]) -> None:
        """A checkpoint found these connections (client id, token) revoked by a newer claim.

        They get no lease any more, so they send nothing. The newer claim's node normally
        sends a takeover message within milliseconds, which closes them with 4001. A claim
        whose handshake never finished sends none: its reply was lost to a stalled Redis or a
        cut link, and the claim ran late. Such a connection is closed with 1013 after
        :attr:`revoked_grace`, so that its client reconnects instead of being told that
        another tab holds its session.
        """
        assert self.hub is not None
        now = time.monotonic()
        due = []
        for client_id, token in revoked:
            connection = self.hub.get(client_id)
            if connection is None or connection.token != token:
                continue
            if connection.revoked_at is None:
                connection.revoked_at = now
                logger.info(
                    "node=%s client=%s event=revoked: a newer claim holds the session; "
                    "waiting for its takeover",
                    self.name,
                    client_id,
                )
            elif now - connection.revoked_at >= self.revoked_grace:
                due.append(connection)
        if due:
            logger.warning(
                "node=%s event=revoked-unclaimed count=%d: no takeover came for connections "
                "a newer claim revoked; closing them with %d so that their clients reconnect",
                self.name,
                len(due),
                CLOSE_TRY_AGAIN_LATER,
            )
            await self.close_connections(due, CLOSE_TRY_AGAIN_LATER, "session claimed elsewhere")

    async def take_over_local(self, connection: Connection) -> None:
        assert self.hub is not None and self.store is not None
        if not self.hub.detach(connection):
            return
        self.counters.takeovers += 1
        connection.closing = True
        logger.info(
            "node=%s client=%s event=takeover: a newer connection holds the session",
            self.name,
            connection.client_id,
        )
        await self.store.close(connection.client_id, connection.token, connection.last_n)
        await connection.close(CLOSE_SESSION_TAKEN_OVER, "session taken over")

    async def close_connections(self, connections: list[Connection], code: int, kind: str) -> int:
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
                logger.exception("node=%s client=%s close failed", self.name, connection.client_id)
        return len(leaving)

    # --- drain

    @property
    def drain_state(self) -> DrainState | None:
        return self.drainer.state

    @property
    def draining(self) -> bool:
        return self.drainer.draining

    def start_drain(self, source: str) -> DrainState:
        """Begin a drain: see :meth:`timer.node.drainer.Drainer.start`."""
        return self.drainer.start(source)

    def cancel_drain(self) -> bool:
        """Undo a policy drain: see :meth:`timer.node.drainer.Drainer.cancel`."""
        return self.drainer.cancel()

    # --- health

    def health_report(self) -> Report:
        """This node's health now: what /healthcheck, the agent, /metrics and the cluster see."""
        monitor = get_monitor()
        return monitor.report(monitor.clock(), self.connection_count(), draining=self.draining)

    def agent_reply(self) -> str:
        """The HAProxy agent-check line for this node right now."""
        report = self.health_report()
        return agent_reply(report, draining=report.status == DRAINING, stale=report.status == STALE)


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
