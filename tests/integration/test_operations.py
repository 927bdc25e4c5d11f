"""Operating a cluster: policy drain, forced unhealthy nodes, agent weights, shedding, metrics.

Real daphne nodes, Redis and HAProxy on loopback.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from localcluster.cluster import data_dir_env, manage, start_cluster
from localcluster.processes import http_get, start_node, wait_for
from localcluster.traffic import LoopbackFlood, loopback_bits_per_second
from timer.core.close_codes import CLOSE_SERVICE_RESTART, CLOSE_TRY_AGAIN_LATER

from .ticks import TickClient

pytestmark = pytest.mark.integration

INTERVAL = 0.25
FAST_POLICY = {
    "WSTIME_TICK_INTERVAL": str(INTERVAL),
    "WSTIME_POLICY_CACHE_SECONDS": "0.5",
    "WSTIME_SAMPLE_INTERVAL": "0.2",
    "WSTIME_NET_WINDOW": "1",
}


def health(node) -> tuple[int, str]:
    return http_get(f"{node.extra['url']}/healthcheck")


async def first_frame_node(url: str, client_id: str) -> str:
    async with websockets.connect(f"{url}?id={client_id}", open_timeout=5) as ws:
        return (await asyncio.wait_for(ws.recv(), timeout=5)).split(":")[0]


async def hold(client: TickClient) -> tuple[asyncio.Event, asyncio.Task]:
    stop = asyncio.Event()
    return stop, asyncio.create_task(client.run_once(stop))


async def test_policy_drain__manage_py_drain_and_undo(tmp_path):
    """manage.py drain: 503 draining, 1012 closes after the notice; --undo takes it back."""
    cluster = start_cluster(
        names=("busy-node", "spare-node"),
        with_haproxy=False,
        env={
            **FAST_POLICY,
            "WSTIME_DRAIN_NOTICE": "1",
            "WSTIME_DRAIN_WINDOW": "0.5",
            **data_dir_env(tmp_path),
        },
    )
    busy = cluster.nodes[0]
    try:
        client = TickClient(busy.extra["ws_url"], "policy-drained")
        stop, run = await hold(client)
        await client.wait_frames(2)
        await asyncio.to_thread(manage, cluster.env, "drain", "--node", "busy-node")
        await asyncio.to_thread(
            wait_for, lambda: health(busy) == (503, "draining"), timeout=5, what="503 draining"
        )
        assert await asyncio.wait_for(run, timeout=10) == CLOSE_SERVICE_RESTART
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(f"{busy.extra['ws_url']}?id=newcomer")
        assert refused.value.response.status_code == 503
        assert health(cluster.nodes[1]) == (200, "ok")  # only that node
        await asyncio.to_thread(manage, cluster.env, "drain", "--node", "busy-node", "--undo")
        await asyncio.to_thread(
            wait_for, lambda: health(busy) == (200, "ok"), timeout=5, what="200 after undo"
        )
        assert await first_frame_node(busy.extra["ws_url"], "welcome-back") == "busy-node"
        stop.set()
    finally:
        cluster.stop()


async def test_policy__unhealthy_node_gets_no_new_connections_but_keeps_its_own(tmp_path):
    """A node made full by its policy leaves HAProxy's rotation; its clients keep ticking."""
    cluster = start_cluster(
        names=("full-node", "roomy-node"),
        env={**FAST_POLICY, "WSTIME_NET_INTERFACES": "lo", **data_dir_env(tmp_path)},
    )
    full, roomy = cluster.nodes
    try:
        resident = TickClient(full.extra["ws_url"], "resident")
        stop, run = await hold(resident)
        await resident.wait_frames(2)
        # A capacity of 1 kbit/s on lo: the node's own ticks fill it.
        await asyncio.to_thread(
            manage,
            cluster.env,
            "shell",
            "-c",
            "from timer.models import HealthPolicy; HealthPolicy.objects."
            "create(node='full-node', threshold=0.5, recovery_margin=0.05, "
            "window=1, capacity=1000)",
        )
        await asyncio.to_thread(
            wait_for, lambda: health(full)[0] == 503, timeout=10, what="the node to report full"
        )
        await asyncio.sleep(2.5)  # HAProxy: inter 1s x fall 2
        landed = [
            await first_frame_node(cluster.haproxy.extra["ws_url"], f"new-{i}") for i in range(8)
        ]
        seen_before = len(resident.frames)
        await resident.wait_frames(seen_before + 4)
        stop.set()
        await run
    finally:
        cluster.stop()
    assert landed == ["roomy-node"] * 8
    assert resident.closes == [1000] and {f.node for f in resident.frames} == {"full-node"}
    counts = resident.counts()
    assert all(b - a == 1 for a, b in zip(counts, counts[1:], strict=False))


async def test_agent_check__less_room_gets_proportionally_fewer_connections(tmp_path):
    """HAProxy weights nodes by the agent's spare capacity: the tighter node gets fewer."""
    cluster = start_cluster(
        names=("tight-node", "wide-node"),
        env={"WSTIME_TICK_INTERVAL": str(INTERVAL), **data_dir_env(tmp_path)},
        per_node_env=[{"WSTIME_MAX_CONNECTIONS": "12"}, {"WSTIME_MAX_CONNECTIONS": "400"}],
    )
    sockets = []
    try:
        reply = await asyncio.to_thread(_agent_line, cluster.nodes[0].extra["agent_port"])
        assert reply == "ready up 100%"
        landed = []
        for i in range(24):
            # max_queue=None: the held sockets' unread frames must not stall their closing.
            ws = await websockets.connect(
                f"{cluster.haproxy.extra['ws_url']}?id=w{i}", max_queue=None
            )
            sockets.append(ws)
            landed.append((await asyncio.wait_for(ws.recv(), timeout=5)).split(":")[0])
            await asyncio.sleep(0.25)  # lets the agent (every 1 s) follow the filling node
        tight_reply = await asyncio.to_thread(_agent_line, cluster.nodes[0].extra["agent_port"])
    finally:
        for ws in sockets:
            await ws.close()
        cluster.stop()
    tight, wide = landed.count("tight-node"), landed.count("wide-node")
    # Equal weights would split 12/12; weights from spare room settle near 7/17.
    assert tight < 0.7 * wide, landed
    assert tight_reply.startswith("ready up ") and int(tight_reply[9:-1]) < 60


def _agent_line(port: int) -> str:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        return sock.recv(100).decode().strip()


async def test_shedding__overloaded_node_closes_a_bounded_share_with_1013(tmp_path):
    """Usage above the shed level: some connections get 1013 with a hint, never all of them."""
    capacity = max(8_000_000, int(10 * loopback_bits_per_second()))
    node = start_node(
        name="hot-node",
        env={
            **FAST_POLICY,
            "WSTIME_NET_INTERFACES": "lo",
            "WSTIME_LINK_CAPACITY": str(capacity),
            "WSTIME_HEALTH_THRESHOLD": "0.3",
            "WSTIME_SHED_LEVEL": "0.5",
            "WSTIME_NET_WINDOW": "2",
            "WSTIME_SHED_FRACTION": "1",
            **data_dir_env(tmp_path),
        },
    )
    clients = [TickClient(node.extra["ws_url"], f"hot-{i}") for i in range(20)]
    try:
        runs = [asyncio.create_task(c.run_once(asyncio.Event())) for c in clients]
        await asyncio.gather(*(c.wait_frames(1) for c in clients))
        rate = 3 * capacity // 8
        # Until the first shed close: one episode. (Overload that outlasts a whole window after
        # the budget is spent would start another, by design.)
        with LoopbackFlood(rate, budget=rate * 8):
            await asyncio.wait(runs, return_when=asyncio.FIRST_COMPLETED, timeout=8)
        await asyncio.sleep(3)
        shed = [r.result() for r in runs if r.done()]
        metrics = http_get(f"{node.extra['url']}/metrics")[1]
        shed_log = [line for line in node.log().splitlines() if "event=shed" in line]
    finally:
        node.stop()
        for r in runs:
            r.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
    assert shed and set(shed) == {CLOSE_TRY_AGAIN_LATER}
    # Budget: 20 * (1 - 0.3 / usage) with usage at most 1: at most 14 of 20.
    assert 1 <= len(shed) <= 14, "\n".join(shed_log)
    assert 'wstime_connections_closed_total{code="1013"' in metrics.replace('node="hot-node",', "")


def test_metrics__scraped_and_parsed(tmp_path):
    """/metrics speaks Prometheus text; a scraper outside the allowlist needs the token."""
    node = start_node(
        name="scraped-node",
        env={
            "WSTIME_TICK_INTERVAL": str(INTERVAL),
            "WSTIME_METRICS_ALLOW": "10.0.0.0/8",
            "WSTIME_METRICS_TOKEN": "scrape-me",
            **data_dir_env(tmp_path),
        },
    )
    try:

        async def one_session() -> None:
            async with websockets.connect(f"{node.extra['ws_url']}?id=metered") as ws:
                for _ in range(3):
                    await ws.recv()

        asyncio.run(one_session())
        assert http_get(f"{node.extra['url']}/metrics")[0] == 403
        request = urllib.request.Request(
            f"{node.extra['url']}/metrics", headers={"Authorization": "Bearer scrape-me"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            text = response.read().decode()
        health_json = json.loads(http_get(f"{node.extra['url']}/healthcheck?format=json")[1])
    finally:
        node.stop()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    node_label = (("node", "scraped-node"),)
    assert samples[("wstime_frames_sent_total", node_label)] >= 3
    assert samples[("wstime_sessions_opened_total", (("kind", "new"),) + node_label)] == 1
    assert samples[("wstime_open_connections", node_label)] == 0
    assert samples[("wstime_connections_closed_total", (("code", "1000"),) + node_label)] == 1
    assert samples[("wstime_health_ok", node_label + (("reason", "ok"),))] == 1
    assert ("process_resident_memory_bytes", ()) in samples
    assert health_json["status"] == "ok"
