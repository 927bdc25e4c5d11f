"""Rebalancing onto new capacity, with real daphne nodes, Redis and HAProxy on loopback.

The clients behave like the page: they honour the reconnect hint of a 1012 close and come back
through HAProxy, whose ``leastconn`` (graded by the agents' weights) picks the node.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
import websockets

from localcluster.cluster import data_dir_env, manage, start_cluster
from localcluster.processes import free_port, http_get, start_haproxy, start_node, wait_for
from timer.core.close_codes import CLOSE_SERVICE_RESTART
from timer.core.drain_plan import hint_from_reason

from .ticks import Frame, TickClient

pytestmark = pytest.mark.integration

# Ticks and publishing twice a second; up to 5 % of a node's connections moved per second, each
# reconnecting within 1 s; a new node counts as room after 3 s (HAProxy: rise 2 x inter 1s).
FAST = {
    "WSTIME_TICK_INTERVAL": "0.5",
    "WSTIME_SAMPLE_INTERVAL": "0.5",
    "WSTIME_POLICY_CACHE_SECONDS": "0.5",
    "WSTIME_REBALANCE_RATE": "0.05",
    "WSTIME_RECONNECT_HINT_MAX": "1000",
    "WSTIME_DRAIN_NOTICE": "1",
    "WSTIME_DRAIN_WINDOW": "1",
}
BALANCE_WITHIN = 45.0  # seconds from the new node's start to a split within 10 % of its share


@dataclass
class MovingClient(TickClient):
    """Records each connection's frames apart, and when each reconnect was attempted."""

    segments: list[list[Frame]] = field(default_factory=list)
    reconnect_at: list[float] = field(default_factory=list)  # of each hinted close

    async def run(self, stop: asyncio.Event, *, max_delay: float = 1.0) -> None:
        while not stop.is_set():
            start = len(self.frames)
            try:
                await self.run_once(stop)
            except (
                OSError,
                websockets.InvalidHandshake,
                TimeoutError,
                websockets.ConnectionClosed,
            ):
                await asyncio.sleep(0.2)
                continue
            finally:
                self.segments.append(self.frames[start:])
            if stop.is_set():
                return
            hint = hint_from_reason(self.reasons[-1])
            if hint is not None:
                # When the node's close and hint say to come back (this loop may be late).
                self.reconnect_at.append(time.monotonic() + hint / 1000)
            await asyncio.sleep((hint if hint is not None else 200) / 1000)

    @property
    def node(self) -> str | None:
        return self.frames[-1].node if self.frames else None

    def moves(self, kind: str = "rebalancing") -> int:
        return sum(
            1
            for code, reason in zip(self.closes, self.reasons, strict=False)
            if code == CLOSE_SERVICE_RESTART and reason.startswith(kind)
        )


def health_json(node) -> dict:
    status, body = http_get(f"{node.extra['url']}/healthcheck?format=json")
    return json.loads(body) if status in (200, 503) else {}


def connections(node) -> int:
    return health_json(node).get("connections", -1)


async def open_clients(
    url: str, prefix: str, count: int, stop: asyncio.Event
) -> tuple[list[MovingClient], list[asyncio.Task]]:
    """``count`` clients in batches of 50, each holding its first frame before the next batch."""
    clients, runs = [], []
    for start in range(0, count, 50):
        batch = [MovingClient(url, f"{prefix}-{i}") for i in range(start, min(count, start + 50))]
        runs += [asyncio.create_task(c.run(stop)) for c in batch]
        clients += batch
        await asyncio.gather(*(c.wait_frames(1, timeout=20) for c in batch))
    return clients, runs


async def until(predicate, *, timeout: float, what: str) -> float:
    """Poll ``predicate`` (blocking, run in a thread) until true; return the seconds it took."""
    started = time.monotonic()
    await asyncio.to_thread(wait_for, predicate, timeout=timeout, interval=0.25, what=what)
    return time.monotonic() - started


def assert_moved_cleanly(clients: list[MovingClient], *, kind: str = "rebalancing") -> int:
    """Every reconnect resumed at last + 1, no client moved twice; return how many moved."""
    for client in clients:
        assert client.moves(kind) <= 1, (client.client_id, client.closes, client.reasons)
        segments = [s for s in client.segments if s]
        for before, after in zip(segments, segments[1:], strict=False):
            assert after[0].n == before[-1].n + 1, (client.client_id, before[-1], after[0])
    return sum(client.moves(kind) for client in clients)


def busiest_slot(clients: list[MovingClient], slot: float = 0.1) -> int:
    moments = [t for c in clients for t in c.reconnect_at]
    return max(Counter(int(t / slot) for t in moments).values()) if moments else 0


async def stop_all(stop: asyncio.Event, runs: list[asyncio.Task]) -> None:
    stop.set()
    await asyncio.wait_for(asyncio.gather(*runs, return_exceptions=True), timeout=30)


async def test_rebalance__a_new_node_takes_half_of_600_clients(tmp_path):
    """600 clients on A; B starts: even within 10 %, each moved once and exactly, no herd."""
    cluster = start_cluster(
        names=("node-a",), with_haproxy=False, env={**FAST, **data_dir_env(tmp_path)}
    )
    a = cluster.nodes[0]
    b_port, b_agent = free_port(), free_port()
    stop = asyncio.Event()
    runs: list[asyncio.Task] = []
    try:
        cluster.haproxy = start_haproxy(
            [a.port, b_port], agent_ports=[a.extra["agent_port"], b_agent]
        )
        clients, runs = await open_clients(cluster.haproxy.extra["ws_url"], "six", 600, stop)
        assert {c.node for c in clients} == {"node-a"}
        b = start_node(
            name="node-b", port=b_port, env={**cluster.env, "WSTIME_AGENT_PORT": str(b_agent)}
        )
        b.extra["name"] = "node-b"
        cluster.nodes.append(b)
        await until(
            lambda: abs(connections(a) - 300) <= 30 and connections(b) >= 270,
            timeout=BALANCE_WITHIN,
            what="an even split",
        )
        await until(
            lambda: health_json(a)["rebalance"]["state"] == "balanced",
            timeout=10,
            what="node A to stop moving",
        )
        moved_when_balanced = health_json(a)["rebalance"]["moved"]
        await asyncio.sleep(3)  # settled: stays within the tolerance, moves nothing more
        a_json, b_json = health_json(a), health_json(b)
        metrics = http_get(f"{a.extra['url']}/metrics")[1]
        await stop_all(stop, runs)
    finally:
        stop.set()
        cluster.stop()
    assert 270 <= a_json["connections"] <= 330 and 270 <= b_json["connections"] <= 330
    assert a_json["rebalance"]["state"] == "balanced" and a_json["rebalance"]["nodes"] == 2
    assert a_json["rebalance"]["moved"] == moved_when_balanced, "it stopped, then moved again"
    moved = assert_moved_cleanly(clients)
    assert moved == a_json["rebalance"]["moved"] >= 270
    # Each moved client that had a frame again before the end had it from node B.
    assert all(
        c.node == "node-b" for c in clients if c.moves() and len([s for s in c.segments if s]) > 1
    )
    assert b_json["rebalance"]["moved"] == 0
    assert f'wstime_rebalance_moved_total{{node="node-a"}} {float(moved)}' in metrics
    # At most 5 % of 600 = 30 closes per second (45 in the worst second: a full bucket plus a
    # refill), each reconnecting after a random hint of up to 1 s: at most 4.5 per 100 ms slot
    # on average; chance alone puts 20 in some slot of a run less than once in 10,000 runs. A
    # herd (the 300 moves at once, or without hints) puts 30 or more in one slot.
    assert busiest_slot(clients) <= 20


async def test_rebalance__unequal_capacities_end_proportional(tmp_path):
    """A of capacity 600 and B of 200: 240 clients end about 180 / 60."""
    cluster = start_cluster(
        names=("node-big",),
        with_haproxy=False,
        env={**FAST, **data_dir_env(tmp_path)},
        per_node_env=[{"WSTIME_MAX_CONNECTIONS": "600"}],
    )
    big = cluster.nodes[0]
    small_port, small_agent = free_port(), free_port()
    stop = asyncio.Event()
    runs: list[asyncio.Task] = []
    try:
        cluster.haproxy = start_haproxy(
            [big.port, small_port], agent_ports=[big.extra["agent_port"], small_agent]
        )
        clients, runs = await open_clients(cluster.haproxy.extra["ws_url"], "cap", 240, stop)
        small = start_node(
            name="node-small",
            port=small_port,
            env={
                **cluster.env,
                "WSTIME_AGENT_PORT": str(small_agent),
                "WSTIME_MAX_CONNECTIONS": "200",
            },
        )
        cluster.nodes.append(small)
        # Proportional within the tolerance: the big node stops at its share + 5 % (189).
        await until(
            lambda: (
                connections(big) <= 189
                and connections(small) >= 51
                and health_json(big)["rebalance"]["state"] == "balanced"
            ),
            timeout=BALANCE_WITHIN,
            what="a 3:1 split",
        )
        # A share is figured from the largest cluster total published in the last 2 x flight
        # seconds (4 s here), and a client moving just then is counted on both nodes for a
        # moment: wait for the moves to age out of it.
        await until(
            lambda: (
                abs(health_json(small)["rebalance"]["share"] - 60) <= 1
                and abs(health_json(big)["rebalance"]["share"] - 180) <= 2
            ),
            timeout=10,
            what="both shares to settle",
        )
        big_json, small_json = health_json(big), health_json(small)
        await stop_all(stop, runs)
    finally:
        stop.set()
        cluster.stop()
    assert 180 <= big_json["connections"] <= 189, big_json  # never below its share of 180
    assert big_json["rebalance"]["share"] == pytest.approx(180, abs=2)
    assert small_json["rebalance"]["share"] == pytest.approx(60, abs=1)
    assert assert_moved_cleanly(clients) == big_json["rebalance"]["moved"]


async def test_rebalance__a_node_back_from_drain_is_refilled(tmp_path):
    """B drained: its clients go to A; drain undone: A moves half back, each once and exactly."""
    cluster = start_cluster(
        names=("node-stays", "node-returns"), env={**FAST, **data_dir_env(tmp_path)}
    )
    stays, returns = cluster.nodes
    stop = asyncio.Event()
    runs: list[asyncio.Task] = []
    try:
        clients, runs = await open_clients(cluster.haproxy.extra["ws_url"], "back", 200, stop)
        await asyncio.to_thread(manage, cluster.env, "drain", "--node", "node-returns")
        await until(lambda: connections(stays) == 200, timeout=20, what="the drain")
        assert health_json(stays)["rebalance"]["moved"] == 0  # no room while B drains
        await asyncio.to_thread(manage, cluster.env, "drain", "--node", "node-returns", "--undo")
        await until(
            lambda: (
                abs(connections(stays) - 100) <= 10
                and connections(returns) >= 90
                and health_json(stays)["rebalance"]["state"] == "balanced"
            ),
            timeout=BALANCE_WITHIN,
            what="the refill",
        )
        await stop_all(stop, runs)
        stays_json = health_json(stays)  # read once no client can be moved any more
    finally:
        stop.set()
        cluster.stop()
    assert assert_moved_cleanly(clients) == stays_json["rebalance"]["moved"] >= 90
    assert assert_moved_cleanly(clients, kind="node restarting") >= 1


async def test_rebalance__no_room_elsewhere_moves_nothing(tmp_path):
    """B is full (its WSTIME_MAX_CONNECTIONS reached): A keeps all of its clients."""
    cluster = start_cluster(
        names=("node-crowded", "node-full"),
        env={**FAST, **data_dir_env(tmp_path)},
        per_node_env=[{}, {"WSTIME_MAX_CONNECTIONS": "1"}],
    )
    crowded, full = cluster.nodes
    stop = asyncio.Event()
    runs: list[asyncio.Task] = []
    try:
        occupant = MovingClient(full.extra["ws_url"], "occupant")
        runs.append(asyncio.create_task(occupant.run(stop)))
        await occupant.wait_frames(1)
        clients, more = await open_clients(crowded.extra["ws_url"], "crowd", 60, stop)
        runs += more
        await until(
            lambda: health_json(full).get("status") == "overloaded",
            timeout=10,
            what="node-full to report full",
        )
        await asyncio.sleep(6)  # settle (3 s) and several rounds
        crowded_json = health_json(crowded)
        await stop_all(stop, runs)
    finally:
        stop.set()
        cluster.stop()
    assert crowded_json["connections"] == 60 and crowded_json["rebalance"]["moved"] == 0
    assert crowded_json["rebalance"]["state"] == "no-room"
    assert all(c.closes == [1000] for c in clients)
