"""Two real daphne nodes sharing a real Redis behind a real HAProxy, all on loopback."""

from __future__ import annotations

import asyncio

import pytest
import redis
import websockets

from localcluster.cluster import data_dir_env, start_cluster
from localcluster.processes import http_get, restart_redis, wait_for
from timer.core.close_codes import CLOSE_SESSION_TAKEN_OVER

from .ticks import TickClient, frames_from

pytestmark = pytest.mark.integration

INTERVAL = 0.25  # seconds between frames in these tests


@pytest.fixture
def cluster(tmp_path):
    running = start_cluster(
        names=("alpha-node", "beta-node"),
        env={"WSTIME_TICK_INTERVAL": str(INTERVAL), **data_dir_env(tmp_path)},
    )
    yield running
    running.stop()


async def wait_for_recorded_close(node, client_id: str) -> None:
    """Wait until ``node`` logged the disconnect of ``client_id``: its exact count is stored.

    A client that reconnects sooner (faster than any page reload) may race that write; the
    other node then resumes from the live checkpoint, at + 1 or + 2.
    """
    await asyncio.to_thread(
        wait_for,
        lambda: f"client={client_id} event=disconnect" in node.log(),
        timeout=5,
        what=f"{node.name} to record {client_id}'s close",
    )


def assert_continuous(counts: list[int], *, resumes: int = 0) -> None:
    """Counts go up by one, except at most ``resumes`` steps of two; never back, never equal."""
    steps = [b - a for a, b in zip(counts, counts[1:], strict=False)]
    assert all(step in (1, 2) for step in steps), f"count broke: {counts}"
    assert sum(step == 2 for step in steps) <= resumes, f"too many skips: {counts}"


async def test_cluster__failover_through_haproxy_keeps_counting(cluster):
    """kill -9 of the serving node: the client lands on the other one and the count goes on."""
    client = TickClient(cluster.haproxy.extra["ws_url"], "failover-1")
    stop = asyncio.Event()
    runner = asyncio.create_task(client.run(stop))
    try:
        await client.wait_frames(4)
        serving = client.frames[-1].node
        cluster.node_named(serving).kill()
        seen = len(client.frames)
        await client.wait_frames(seen + 4, timeout=15)
    finally:
        stop.set()
        await runner
    after = [f for f in client.frames if f.node != serving]
    assert after, "no frame came from the surviving node"
    assert_continuous(client.counts(), resumes=1)
    assert client.connects == 2


async def test_cluster__takeover_across_nodes_closes_the_older_connection(cluster):
    """A second connection with the same id on the other node takes over; the first gets 4001."""
    alpha, beta = cluster.nodes
    older = TickClient(alpha.extra["ws_url"], "taken")
    older_run = asyncio.create_task(older.run_once())
    await older.wait_frames(3)
    newer = TickClient(beta.extra["ws_url"], "taken")
    stop = asyncio.Event()
    newer_run = asyncio.create_task(newer.run_once(stop))
    try:
        assert await asyncio.wait_for(older_run, timeout=5) == CLOSE_SESSION_TAKEN_OVER
        await newer.wait_frames(3)
    finally:
        stop.set()
        await newer_run
    assert_continuous(older.counts() + newer.counts(), resumes=1)
    assert {f.node for f in newer.frames} == {"beta-node"}


async def test_cluster__reload_resumes_exactly_on_another_node(cluster):
    """A clean disconnect records the exact count: the next connection goes on at last + 1."""
    alpha, beta = cluster.nodes
    first = await frames_from(alpha.extra["ws_url"], "reload", 3)
    await wait_for_recorded_close(alpha, "reload")
    second = await frames_from(beta.extra["ws_url"], "reload", 2)
    assert second.frames[0].n == first.frames[-1].n + 1


async def test_cluster__redis_outage_pauses_ticks_and_refuses_handshakes(cluster):
    """Redis stopped mid-stream: the client pauses after at most one frame, new handshakes get
    503 + Retry-After, /healthcheck stays 200; after the restart the count goes on, +1."""
    alpha, beta = cluster.nodes
    client = TickClient(alpha.extra["ws_url"], "outage")
    stop = asyncio.Event()
    run = asyncio.create_task(client.run_once(stop))
    try:
        await client.wait_frames(3)
        cluster.redis.stop()
        outage_start = len(client.frames)
        await asyncio.sleep(8 * INTERVAL)  # two seconds without Redis
        assert len(client.frames) - outage_start <= 1, client.counts()
        status, body = await asyncio.to_thread(http_get, f"{alpha.extra['url']}/healthcheck")
        assert status == 200, body
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(f"{beta.extra['ws_url']}?id=newcomer", open_timeout=5):
                pass
        assert refused.value.response.status_code == 503
        assert refused.value.response.headers["Retry-After"]
        cluster.redis = restart_redis(cluster.redis)
        # Ticking resumes once the node's checkpoint reaches Redis again.
        await client.wait_frames(len(client.frames) + 3, timeout=15)
    finally:
        stop.set()
        await run
    assert client.closes == [1000], "the client was disconnected by the outage"
    assert_continuous(client.counts())
    # The other node resumes from what the first wrote back.
    await wait_for_recorded_close(alpha, "outage")
    follower = TickClient(beta.extra["ws_url"], "outage")
    stop = asyncio.Event()
    run = asyncio.create_task(follower.run(stop))
    try:
        await follower.wait_frames(1, timeout=15)
    finally:
        stop.set()
        await run
    assert follower.frames[0].n == client.frames[-1].n + 1
    # An outage is an expected condition: logged as lines, never as a traceback.
    for node in cluster.nodes:
        assert "Traceback" not in node.log(), node.log()[-3000:]


@pytest.fixture
def short_ttl_cluster(tmp_path):
    running = start_cluster(
        names=("gamma-node", "delta-node"),
        with_haproxy=False,
        env={
            "WSTIME_TICK_INTERVAL": str(INTERVAL),
            "WSTIME_SESSION_TTL": "2",
            **data_dir_env(tmp_path),
        },
    )
    yield running
    running.stop()


async def test_cluster__sessions_expire(short_ttl_cluster):
    """An abandoned session is forgotten after WSTIME_SESSION_TTL; Redis keeps no key for it."""
    running = short_ttl_cluster
    await frames_from(running.nodes[0].extra["ws_url"], "forget-me", 3)
    r = redis.Redis(port=running.redis.port)
    assert r.keys("wstime:sessions:*")
    # TTL 2 s in buckets of 1 s: gone within TTL + two buckets.
    await asyncio.to_thread(
        wait_for, lambda: not r.keys("wstime:sessions:*"), timeout=6, what="session keys to expire"
    )
    again = await frames_from(running.nodes[1].extra["ws_url"], "forget-me", 1)
    assert again.frames[0].n == 0


async def test_cluster__connection_held_past_the_ttl_survives_its_node(short_ttl_cluster):
    """The TTL counts time without a connection: a long connection's session outlives its claim."""
    gamma, delta = short_ttl_cluster.nodes
    client = TickClient(gamma.extra["ws_url"], "long-lived")
    run = asyncio.create_task(client.run_once())
    await client.wait_frames(int(3 * 2 / INTERVAL))  # three TTLs: its claim's bucket is gone
    gamma.kill()
    await asyncio.wait_for(run, timeout=5)
    follower = await frames_from(delta.extra["ws_url"], "long-lived", 2)
    assert_continuous(client.counts() + follower.counts(), resumes=1)


@pytest.fixture
def slow_cluster(tmp_path):
    running = start_cluster(
        names=("alpha-node", "beta-node"),
        env={"WSTIME_TICK_INTERVAL": "2", **data_dir_env(tmp_path)},
    )
    yield running
    running.stop()


async def test_cluster__a_resumed_session_goes_on_at_once(slow_cluster):
    """With 2 s between frames, a new session's first frame comes 2 s after it opens; the same
    session reopened on the other node gets its next count within a fraction of that."""
    alpha, beta = slow_cluster.nodes
    async with websockets.connect(f"{alpha.extra['ws_url']}?id=prompt") as ws:
        opened = asyncio.get_running_loop().time()
        first = await asyncio.wait_for(ws.recv(), 5)
        first_after = asyncio.get_running_loop().time() - opened
    await wait_for_recorded_close(alpha, "prompt")
    async with websockets.connect(f"{beta.extra['ws_url']}?id=prompt") as ws:
        opened = asyncio.get_running_loop().time()
        resumed = await asyncio.wait_for(ws.recv(), 5)
        resumed_after = asyncio.get_running_loop().time() - opened
    assert first.endswith("connected for 0 seconds") and first_after >= 1.9
    assert resumed == "beta-node: you have been connected for 1 seconds"
    assert resumed_after < 1.0, f"resumed after {resumed_after:.2f} s"
