"""The ``cluster`` background task: publish this node's state, read the cluster's, rebalance.

Once per sample interval, with a shared store: one script call publishes this node's
:class:`~timer.node.cluster_state.NodeState` (what the operators' cluster page reads), one reads
every live node's, and :class:`~timer.core.rebalance.Rebalancer` decides whether this node holds
clearly more than its share; if so it closes a few connections through
:meth:`Node.close_connections` (1012 with a reconnect hint, each exact count recorded first),
so that the load balancer's ``leastconn`` sends them to the emptier nodes.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from ..config.version import version
from ..core.close_codes import CLOSE_SERVICE_RESTART
from ..core.rebalance import OFF, UNKNOWN, Decision, NodeLoad, Rebalancer
from ..health.decision import DRAINING
from ..sessions.store import store_state
from .cluster_state import ClusterState, NodeState, ttl_for

if TYPE_CHECKING:
    from .node import Node

logger = logging.getLogger(__name__)

STALE_INTERVALS = 3  # a record older than this many intervals is no room for anyone
WEIGHT = re.compile(r"\bup (\d+)%")  # the agent reply's weight


@dataclass
class RebalanceStats:
    """What rebalancing did, for the health JSON and /metrics."""

    enabled: bool
    state: str = OFF
    share: float | None = None
    cluster_connections: int = 0
    nodes: int = 0  # live nodes in the cluster's published state, this one included
    moved: int = 0  # connections closed to move them, since start (never reset)
    read_errors: int = 0  # failed publishes or reads of the cluster's state

    def as_json(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "state": self.state,
            "share": None if self.share is None else round(self.share, 1),
            "cluster_connections": self.cluster_connections,
            "nodes": self.nodes,
            "moved": self.moved,
        }


def node_state(node: Node, *, rebalance: RebalanceStats | None = None) -> NodeState:
    """This node's state right now, from the same report as ``/healthcheck`` and the agent."""
    report = node.health_report()
    connections = report.connections
    reply = node.agent_reply()
    return NodeState(
        name=node.name,
        version=version(),
        status=report.status,
        reason=report.reason,
        connections=connections,
        max_connections=report.max_connections,
        usage=report.usage,
        threshold=report.threshold,
        recovery_level=report.recovery_level,
        capacity_bits_per_second=report.capacity_bits_per_second,
        # The report drains as soon as the policy does, before the governor starts the drain.
        sampler_age=report.sampler_age,
        draining=report.status == DRAINING,
        accepting=report.healthy,
        spare_percent=int(match[1]) if (match := WEIGHT.search(reply)) else 0,
        redis=store_state(node.store),
        started_at=node.started_at,
        rebalance_state=rebalance.state if rebalance else "",
        rebalance_share=rebalance.share if rebalance else None,
        rebalance_moved=rebalance.moved if rebalance else 0,
    )


def node_load(state: NodeState, *, stale_after: float) -> NodeLoad:
    """What rebalancing needs of a published state; a stale record accepts nothing."""
    usable = None
    if state.capacity_bits_per_second and state.threshold:
        usable = state.capacity_bits_per_second * state.threshold
    return NodeLoad(
        name=state.name,
        connections=state.connections,
        accepting=state.accepting and state.age <= stale_after,
        max_connections=state.max_connections,
        usable_bits_per_second=usable,
    )


class ClusterTask:
    """One per node, started with the node's other tasks when Redis is configured."""

    def __init__(self, node: Node) -> None:
        cfg = node.config
        self.node = node
        self.interval = cfg.sample_interval
        self.stats = RebalanceStats(enabled=cfg.rebalance_enabled)
        self.rebalancer = Rebalancer(
            tolerance=cfg.rebalance_tolerance,
            rate=cfg.rebalance_rate,
            settle=cfg.rebalance_settle,
            memory=cfg.rebalance_memory,
            # A moved client reconnects within its hint, then shows in its new node's next publish.
            flight=cfg.reconnect_hint_max / 1000 + 2 * self.interval,
        )

    async def run(self) -> None:
        """Every interval, on deadlines: publish, read, rebalance. Errors of Redis skip a round."""
        cluster = ClusterState.from_url(self.node.config.redis_url, ttl=ttl_for(self.interval))
        loop = asyncio.get_running_loop()
        failing = False
        try:
            next_at = loop.time()
            while True:
                next_at = max(next_at + self.interval, loop.time())
                await asyncio.sleep(next_at - loop.time())
                try:
                    await cluster.publish(node_state(self.node, rebalance=self.stats))
                    peers = await cluster.read()
                except (RedisError, OSError) as exc:
                    self.stats.read_errors += 1
                    self.stats.state = UNKNOWN if self.stats.enabled else OFF
                    if not failing:
                        logger.warning(
                            "node=%s cluster state unreachable (%s); not rebalancing",
                            self.node.name,
                            type(exc).__name__,
                        )
                    failing = True
                    continue
                if failing:
                    logger.info("node=%s cluster state readable again", self.node.name)
                failing = False
                await self.step(loop.time(), peers)
        finally:
            await cluster.aclose()

    async def step(self, now: float, states: list[NodeState]) -> Decision:
        """Decide on the published ``states`` and close the connections to move."""
        node, stats = self.node, self.stats
        stats.nodes = len(states)
        hub = node.hub
        assert hub is not None
        stale_after = STALE_INTERVALS * self.interval
        me = node_load(node_state(node), stale_after=stale_after)
        decision = self.rebalancer.decide(
            now, me, [node_load(s, stale_after=stale_after) for s in states], draining=node.draining
        )
        stats.share, stats.cluster_connections = decision.share, decision.cluster_connections
        stats.state = decision.state if stats.enabled else OFF
        if not stats.enabled or decision.move <= 0:
            return decision
        candidates = [
            c
            for c in hub.by_client.values()
            if not c.closing and self.rebalancer.may_move(now, c.client_id)
        ]
        victims = random.sample(candidates, min(decision.move, len(candidates)))
        self.rebalancer.moved(now, [c.client_id for c in victims])
        closed = await node.close_connections(victims, CLOSE_SERVICE_RESTART, "rebalancing")
        stats.moved += closed
        logger.info(
            "node=%s event=rebalance moved=%d connections=%d share=%.1f room=%d cluster=%d",
            node.name,
            closed,
            len(hub),
            decision.share or 0,
            decision.room,
            decision.cluster_connections,
        )
        return decision
