"""Leaving and filling up politely, against real daphne, Redis and HAProxy processes."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest
import websockets

from localcluster.cluster import data_dir_env, start_cluster
from localcluster.processes import http_get, start_node
from timer.core.close_codes import CLOSE_MESSAGE_TOO_BIG, CLOSE_SERVICE_RESTART
from timer.core.drain_plan import hint_from_reason

from .ticks import TickClient

pytestmark = pytest.mark.integration

INTERVAL = 0.25


class PoliteClient(TickClient):
    """Reconnects after the hint of a 1012/1013 close, like the page."""

    async def run(self, stop: asyncio.Event, *, max_delay: float = 1.0) -> None:
        while not stop.is_set():
            try:
                await self.run_once(stop)
            except (OSError, websockets.InvalidHandshake, TimeoutError):
                await asyncio.sleep(0.1)
                continue
            hint = hint_from_reason(self.reasons[-1])
            await asyncio.sleep((hint if hint is not None else 100) / 1000)


async def test_drain__sigterm_closes_with_1012_and_clients_move_on(tmp_path):
    """SIGTERM: 503 draining at once, then 1012 closes; every client resumes on the other node."""
    cluster = start_cluster(
        names=("leaving-node", "staying-node"),
        env={
            "WSTIME_TICK_INTERVAL": str(INTERVAL),
            "WSTIME_DRAIN_NOTICE": "2.5",
            "WSTIME_DRAIN_WINDOW": "1.5",
            "WSTIME_DRAIN_DEADLINE": "8",
            "WSTIME_RECONNECT_HINT_MAX": "500",
            **data_dir_env(tmp_path),
        },
    )
    leaving, staying = cluster.nodes
    stop = asyncio.Event()
    clients = [PoliteClient(leaving.extra["ws_url"], f"drain-{i}") for i in range(30)]
    runs = [asyncio.create_task(c.run(stop)) for c in clients]
    try:
        await asyncio.gather(*(c.wait_frames(2) for c in clients))
        # Later reconnects go through the load balancer, like the page's.
        for client in clients:
            client.url = cluster.haproxy.extra["ws_url"]
        started = time.monotonic()
        leaving.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        status, body = await asyncio.to_thread(http_get, f"{leaving.extra['url']}/healthcheck")
        assert (status, body.strip()) == (503, "draining")
        await asyncio.to_thread(leaving.process.wait, 15)
        exited_after = time.monotonic() - started
        await asyncio.gather(*(c.wait_frames(len(c.frames) + 2, timeout=15) for c in clients))
    finally:
        stop.set()
        await asyncio.gather(*runs)
        cluster.stop()
    assert exited_after < 8, f"exited after {exited_after:.1f}s, past the deadline"
    assert leaving.process.returncode == 0
    for client in clients:
        assert client.closes[0] == CLOSE_SERVICE_RESTART, client.closes
        assert hint_from_reason(client.reasons[0]) is not None
        nodes = [f.node for f in client.frames]
        assert nodes[-1] == "staying-node"
        counts = client.counts()
        moved = nodes.index("staying-node")
        assert counts[moved] == counts[moved - 1] + 1, "drained sessions resume exactly"
        assert all(b - a == 1 for a, b in zip(counts, counts[1:], strict=False)), counts


async def test_overload__handshake_past_the_cap_gets_503_with_retry_after(tmp_path):
    """WSTIME_CONNECTION_CAP: the next handshake is refused with 503 and Retry-After."""
    node = start_node(
        name="capped-node",
        env={
            "WSTIME_TICK_INTERVAL": str(INTERVAL),
            "WSTIME_CONNECTION_CAP": "3",
            "WSTIME_MAX_CONNECTIONS": "2",
            "WSTIME_RETRY_AFTER": "7",
            **data_dir_env(tmp_path),
        },
    )
    try:
        held = [await websockets.connect(f"{node.extra['ws_url']}?id=held-{i}") for i in range(3)]
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(f"{node.extra['ws_url']}?id=one-too-many")
        assert refused.value.response.status_code == 503
        assert refused.value.response.headers["Retry-After"] == "7"
        # The health check said full before the cap: the buffer.
        status, body = await asyncio.to_thread(http_get, f"{node.extra['url']}/healthcheck")
        assert (status, body.strip()) == (503, "server is overloaded")
        for ws in held:
            assert (await ws.recv()).startswith("capped-node: ")
            await ws.close()
    finally:
        node.stop()


async def test_overload__handshakes_past_the_open_file_limit_get_503(tmp_path):
    """A node whose open-file limit is 600 holds 600 - 512 = 88 connections; the next
    handshake gets 503, and the node keeps answering its health check instead of running
    out of descriptors."""
    node = start_node(
        name="few-files",
        env={"WSTIME_TICK_INTERVAL": str(INTERVAL), **data_dir_env(tmp_path)},
        wrapper=("prlimit", "--nofile=600:600", "--"),
    )
    held = []
    try:
        held = [await websockets.connect(f"{node.extra['ws_url']}?id=fd-{i}") for i in range(88)]
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(f"{node.extra['ws_url']}?id=one-too-many")
        assert refused.value.response.status_code == 503
        assert "refused: node out of file descriptors (HTTP 503)" in node.log()
        status, _ = await asyncio.to_thread(http_get, f"{node.extra['url']}/healthcheck")
        assert status == 200
        await held.pop().close()
        await asyncio.sleep(INTERVAL)  # the close detaches it
        async with websockets.connect(f"{node.extra['ws_url']}?id=room-again") as ws:
            assert (await ws.recv()).startswith("few-files: ")
        assert "open-file limit 600: handshakes get 503 past 88 connections" in node.log()
    finally:
        for ws in held:
            await ws.close()
        node.stop()


async def test_overload__oversized_frame_closes_with_1009_under_daphne(tmp_path):
    """A real daphne node sends the 1009 close frame (autobahn alone would refuse the code)."""
    node = start_node(
        name="strict-node", env={"WSTIME_MAX_CLIENT_FRAME": "64", **data_dir_env(tmp_path)}
    )
    try:
        async with websockets.connect(f"{node.extra['ws_url']}?id=big") as ws:
            await ws.send("x" * 65)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), timeout=5)
        assert closed.value.rcvd.code == CLOSE_MESSAGE_TOO_BIG
    finally:
        node.stop()


async def test_drain__hundreds_of_clients_reconnect_spread_out(tmp_path):
    """300 clients of a draining node: closes are paced and hinted, reconnects spread, no herd."""
    node = start_node(
        name="herd-node",
        env={
            "WSTIME_TICK_INTERVAL": "1",
            "WSTIME_DRAIN_NOTICE": "0.5",
            "WSTIME_DRAIN_WINDOW": "3",
            "WSTIME_DRAIN_DEADLINE": "8",
            "WSTIME_RECONNECT_HINT_MAX": "2000",
            **data_dir_env(tmp_path),
        },
    )
    closes: list[tuple[float, int, int]] = []  # (close time, code, hint)

    async def client(i: int) -> None:
        async with websockets.connect(f"{node.extra['ws_url']}?id=herd-{i}") as ws:
            try:
                while True:
                    await ws.recv()
            except websockets.ConnectionClosed as closed:
                closes.append(
                    (time.monotonic(), closed.rcvd.code, hint_from_reason(closed.rcvd.reason))
                )

    try:
        tasks = []
        for i in range(300):
            tasks.append(asyncio.create_task(client(i)))
            if i % 50 == 49:
                await asyncio.sleep(0.2)
        await asyncio.sleep(1.5)
        node.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=15)
    finally:
        node.stop()
    assert len(closes) == 300 and {code for _, code, _ in closes} == {CLOSE_SERVICE_RESTART}
    start = min(t for t, _, _ in closes)
    closed_at = sorted(t - start for t, _, _ in closes)
    assert closed_at[-1] >= 2.0, "closes were not spread over the drain window"
    reconnect_at = sorted(t - start + hint / 1000 for t, _, hint in closes)
    assert reconnect_at[-1] - reconnect_at[0] >= 3.0, "reconnects within less than the window"
    # Closes spread over the 3 s window, each delayed by a hint of 0-2 s: at the busiest, 300 / 3 s
    # = 10 reconnects per 100 ms slot on average. A herd puts far more in one slot; chance alone
    # puts more than 2.5x that in some slot about once in 4,000 runs.
    buckets: dict[int, int] = {}
    for moment in reconnect_at:
        buckets[int(moment * 10)] = buckets.get(int(moment * 10), 0) + 1
    assert max(buckets.values()) <= 2.5 * 300 / (3 * 10), buckets
