"""``/metrics``: the node's counters in Prometheus' text format, collected when scraped.

Nothing on the hot paths touches a metric object: the ticker, the consumers and the health
monitor keep plain counters, and :class:`NodeCollector` reads them at scrape time.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Iterator
from ipaddress import ip_address

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from ..config.loader import Config
from ..core.rebalance import STATES
from ..node.cluster_task import RebalanceStats
from ..node.loop_lag import LagRecord
from ..node.node import Node, get_node


class NodeCollector(Collector):
    """Turns the node's counters into metric families on each scrape."""

    def __init__(self, node_getter=get_node) -> None:
        self._node = node_getter

    def collect(self) -> Iterator:
        node: Node = self._node()
        hub, counters = node.hub, node.counters
        labels = ["node"]
        yield _gauge(
            "wstime_open_connections",
            "Open WebSocket connections.",
            node.name,
            len(hub) if hub is not None else 0,
        )
        if hub is not None:
            stats = hub.stats
            yield _counter("wstime_frames_sent", "Tick frames sent.", node.name, stats.frames_sent)
            yield _counter(
                "wstime_frame_send_errors",
                "Tick frames that could not be sent.",
                node.name,
                stats.send_errors,
            )
            rounds = CounterMetricFamily(
                "wstime_tick_rounds",
                "Tick rounds, by what started them.",
                labels=[*labels, "paced_by"],
            )
            rounds.add_metric([node.name, "channel_layer"], stats.rounds_by_layer)
            rounds.add_metric([node.name, "local_clock"], stats.rounds_by_local_clock)
            yield rounds
            yield _counter(
                "wstime_ticker_steps_skipped",
                "Ticker steps skipped after the event loop stalled.",
                node.name,
                stats.steps_skipped,
            )
            yield _counter(
                "wstime_frames_held",
                "Due frames held back because Redis had not stored the last one.",
                node.name,
                stats.frames_held,
            )
        sessions = CounterMetricFamily(
            "wstime_sessions_opened", "Sessions opened, by kind.", labels=[*labels, "kind"]
        )
        sessions.add_metric([node.name, "new"], counters.sessions_new)
        sessions.add_metric([node.name, "resumed"], counters.sessions_resumed)
        yield sessions
        yield _counter(
            "wstime_takeovers",
            "Connections closed because a newer one took over.",
            node.name,
            counters.takeovers,
        )
        closes = CounterMetricFamily(
            "wstime_connections_closed",
            "Closed WebSocket connections, by close code.",
            labels=[*labels, "code"],
        )
        # Labels come from close_code_label(): a bounded set, "other" for client-chosen codes.
        for label, count in sorted(counters.closes_by_code.items()):
            closes.add_metric([node.name, label], count)
        yield closes
        refused = CounterMetricFamily(
            "wstime_handshakes_refused",
            "Refused WebSocket handshakes, by reason.",
            labels=[*labels, "reason"],
        )
        for reason, count in sorted(counters.refused_handshakes.items()):
            refused.add_metric([node.name, reason], count)
        yield refused
        yield _counter(
            "wstime_health_unavailable_answers",
            "Health checks answered 503.",
            node.name,
            counters.health_unavailable,
        )
        yield from self._health(node)
        yield from self._drain(node)
        yield from self._rebalance(node)
        store = node.store
        yield _counter(
            "wstime_redis_errors",
            "Failed Redis calls of the session store.",
            node.name,
            store.errors if store is not None else 0,
        )
        yield _counter(
            "wstime_session_writes_refused",
            "Closes and write-backs Redis refused: a newer connection held the "
            "session at an equal or higher count.",
            node.name,
            store.refused_writes if store is not None else 0,
        )
        yield _gauge(
            "wstime_session_closes_held",
            "Closes held back by a Redis outage, waiting to be written.",
            node.name,
            store.pending_closes if store is not None else 0,
        )
        yield _gauge(
            "wstime_redis_up",
            "1 while the shared session store answers.",
            node.name,
            1 if store is not None and store.shared and store.available else 0,
        )
        yield from self._tasks(node)
        yield _histogram(
            "wstime_event_loop_lag_seconds",
            "How late the event loop woke a task sleeping 50 ms (busy loop: late frames).",
            node.name,
            node.loop_lag,
        )
        yield _histogram(
            "wstime_checkpoint_seconds",
            "From a checkpoint's snapshot to the leases it raised (frames due meanwhile wait).",
            node.name,
            node.checkpoint_durations,
        )
        yield _counter(
            "wstime_gc_full_collections",
            "Full garbage collections the node ran (paced: WSTIME_GC_FULL_EVERY).",
            node.name,
            node.gc_pacer.collections,
        )
        yield _gauge(
            "wstime_gc_full_last_pause_seconds",
            "How long the last full garbage collection stopped the process.",
            node.name,
            node.gc_pacer.last_pause,
        )

    def _health(self, node: Node) -> Iterator:
        report = node.health_report()
        if report.usage is not None:
            yield _gauge(
                "wstime_network_usage",
                "Average network usage over the window (0-1).",
                node.name,
                report.usage,
            )
        yield _gauge(
            "wstime_health_threshold",
            "Usage at which the node reports itself full.",
            node.name,
            report.threshold,
        )
        health = GaugeMetricFamily(
            "wstime_health_ok",
            "1 while /healthcheck answers 200; reason says why not.",
            labels=["node", "reason"],
        )
        health.add_metric([node.name, report.reason], 1 if report.healthy else 0)
        yield health

    def _tasks(self, node: Node) -> Iterator:
        labels = ["node", "task"]
        restarts = CounterMetricFamily(
            "wstime_background_task_restarts",
            "Restarts of supervised background tasks.",
            labels=labels,
        )
        running = GaugeMetricFamily(
            "wstime_background_task_running",
            "1 while a supervised background task runs.",
            labels=labels,
        )
        looping = GaugeMetricFamily(
            "wstime_background_task_crash_looping",
            "1 while a supervised background task keeps dying.",
            labels=labels,
        )
        for state in node.tasks:
            restarts.add_metric([node.name, state.name], state.restarts)
            running.add_metric([node.name, state.name], 1 if state.running else 0)
            looping.add_metric([node.name, state.name], 1 if state.crash_looping else 0)
        yield from (restarts, running, looping)

    def _drain(self, node: Node) -> Iterator:
        state = node.drain_state
        yield _gauge(
            "wstime_draining", "1 while the node drains.", node.name, 1 if state is not None else 0
        )
        # Always present (0 outside a drain), so that dashboards and alerts need no absent().
        yield _gauge(
            "wstime_drain_closed",
            "Connections closed by the current drain (0: none).",
            node.name,
            state.closed if state is not None else 0,
        )
        yield _gauge(
            "wstime_drain_total",
            "Connections the current drain set out to close (0: none).",
            node.name,
            state.total if state is not None else 0,
        )

    def _rebalance(self, node: Node) -> Iterator:
        stats = node.cluster.stats if node.cluster is not None else RebalanceStats(False)
        yield _counter(
            "wstime_rebalance_moved",
            "Connections closed (1012) to move them to nodes with room.",
            node.name,
            stats.moved,
        )
        state = GaugeMetricFamily(
            "wstime_rebalance_state",
            "1 for the rebalancing state the node is in.",
            labels=["node", "state"],
        )
        for name in STATES:
            state.add_metric([node.name, name], 1 if stats.state == name else 0)
        yield state
        if stats.share is not None:
            yield _gauge(
                "wstime_rebalance_share",
                "This node's share of the cluster's connections.",
                node.name,
                stats.share,
            )
        yield _gauge(
            "wstime_cluster_connections",
            "Connections of the cluster's accepting nodes, as this node last read them.",
            node.name,
            stats.cluster_connections,
        )
        yield _gauge(
            "wstime_cluster_nodes",
            "Live nodes in the cluster's published state.",
            node.name,
            stats.nodes,
        )


def _gauge(name: str, documentation: str, node_name: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["node"])
    family.add_metric([node_name], value)
    return family


def _counter(name: str, documentation: str, node_name: str, value: float) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=["node"])
    family.add_metric([node_name], value)
    return family


def _histogram(
    name: str, documentation: str, node_name: str, record: LagRecord
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=["node"])
    family.add_metric(
        [node_name],
        [
            (("+Inf" if math.isinf(bound) else f"{bound:g}"), seen)
            for bound, seen in record.cumulative()
        ],
        record.total,
    )
    return family


def build_registry() -> CollectorRegistry:
    """A registry of the node's collector plus the process and platform ones."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector())
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


def scrape_allowed(cfg: Config, remote_addr: str, authorization: str) -> bool:
    """Whether a scrape from ``remote_addr`` with this Authorization header may read /metrics."""
    # compare_digest: the time taken does not tell a guesser how much of the token was right.
    expected = f"Bearer {cfg.metrics_token}".encode("utf-8", "surrogateescape")
    given = authorization.encode("utf-8", "surrogateescape")
    if cfg.metrics_token and hmac.compare_digest(given, expected):
        return True
    try:
        address = ip_address(remote_addr)
    except ValueError:
        return False
    return any(address in network for network in cfg.metrics_allow)
