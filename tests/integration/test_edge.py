"""The edge of a node: proxy headers, slow clients and request floods.

Real daphne nodes and the deploy template's HAProxy on loopback. Clients pick their source
address inside 127.0.0.0/8 (127.0.0.2, 127.0.0.3) to stand for different hosts.
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import time

import pytest
import websockets

from localcluster.cluster import data_dir_env
from localcluster.processes import LOOPBACK, start_haproxy, start_node, wait_for

pytestmark = pytest.mark.integration

HEADER_TIMEOUT = 2.0  # seconds a client may take to send its request headers, in these nodes
NODE_ENV = {
    "WSTIME_TICK_INTERVAL": "0.25",
    # HAProxy reaches the nodes from 127.0.0.1: that is the only trusted proxy.
    "WSTIME_TRUSTED_PROXIES": "127.0.0.1",
    "WSTIME_METRICS_ALLOW": "10.0.0.0/8,127.0.0.2",
    "WSTIME_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
}


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    """Two nodes run as in production (no daphne --proxy-headers), stopped after the module."""
    started = []
    try:
        for name in ("edge-one", "edge-two"):
            data = tmp_path_factory.mktemp(name)
            started.append(start_node(name=name, env={**NODE_ENV, **data_dir_env(data)}))
        yield started
    finally:
        for node in started:
            node.stop()


def get(port: int, path: str, *, source: str = LOOPBACK, headers: dict | None = None) -> int:
    """GET ``path`` on 127.0.0.1:``port`` from the address ``source``; return the status."""
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=5, source_address=(source, 0))
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


SPOOFED = {"X-Forwarded-For": "10.1.2.3"}


def test_metrics_allowlist__spoofed_forwarded_for_through_haproxy_is_refused(nodes):
    """Through HAProxy, a client's own X-Forwarded-For never opens the allowlist."""
    haproxy = start_haproxy([node.port for node in nodes])
    try:
        lb = haproxy.port
        wait_for(lambda: get(lb, "/livez") == 200, timeout=10, what="HAProxy to serve")
        spoofed = [get(lb, "/metrics", headers=SPOOFED) for _ in range(4)]
        # An allowed address claimed by a client that is not it (127.0.0.1 is the proxy's own
        # address here: only an overwritten header keeps the claim out).
        claimed = [get(lb, "/metrics", headers={"X-Forwarded-For": "127.0.0.2"}) for _ in range(4)]
        # The address HAProxy saw, forwarded by a trusted proxy, is honoured on both nodes.
        honoured = [get(lb, "/metrics", source="127.0.0.2") for _ in range(4)]
    finally:
        haproxy.stop()
    assert spoofed == [403] * 4
    assert claimed == [403] * 4
    assert honoured == [200] * 4


def test_metrics_allowlist__spoofed_header_straight_at_a_node(nodes):
    """A header from a peer that is not a trusted proxy is ignored; a trusted proxy's is used."""
    port = nodes[0].port
    assert get(port, "/metrics", source="127.0.0.3", headers=SPOOFED) == 403
    assert get(port, "/metrics", source="127.0.0.3") == 403
    assert get(port, "/metrics", headers=SPOOFED) == 200  # from 127.0.0.1, the trusted proxy


def test_slow_headers__node_cuts_off_a_client_dribbling_its_headers(nodes):
    """One header byte a second: the node closes the socket within its header deadline."""
    node = nodes[0]
    started = time.monotonic()
    closed_after = None
    with socket.create_connection((LOOPBACK, node.port), timeout=1) as sock:
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: localhost\r\n")
        for byte in b"X-Slow: " + b"a" * 8:
            try:
                sock.sendall(bytes([byte]))
                if sock.recv(1024) == b"":
                    closed_after = time.monotonic() - started
                    break
            except TimeoutError:
                continue  # nothing from the node during that second: still open
            except OSError:  # reset by the node
                closed_after = time.monotonic() - started
                break
    assert closed_after is not None, "the node kept a dribbling client for 16 s"
    # The deadline plus a check interval and margin for a loaded machine.
    assert closed_after < HEADER_TIMEOUT + 3


async def test_slow_headers__deadline_spares_requests_and_upgraded_websockets(nodes):
    """Requests on a kept-alive connection and WebSockets outlive the header deadline."""
    node = nodes[0]
    async with websockets.connect(
        f"{node.extra['ws_url']}?id=outlives-deadline", open_timeout=5
    ) as ws:
        loop = asyncio.get_running_loop()
        until = loop.time() + HEADER_TIMEOUT + 1.5
        frames = 0
        while loop.time() < until:
            await asyncio.wait_for(ws.recv(), timeout=5)
            frames += 1
    assert frames >= 4
    connection = http.client.HTTPConnection(LOOPBACK, node.port, timeout=5)
    try:
        statuses = []
        for _ in range(3):  # one connection, requests spread over more than the deadline
            connection.request("GET", "/livez")
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
            time.sleep(HEADER_TIMEOUT / 3)
    finally:
        connection.close()
    assert statuses == [200] * 3


async def test_rate_limit__haproxy_answers_429_past_the_rate_of_one_source(nodes):
    """Past WSTIME_LB_RATE_LIMIT requests in 10 s a source gets 429; another source passes."""
    limit = 6
    haproxy = start_haproxy([node.port for node in nodes], rate_limit=limit)
    try:
        lb = haproxy.port
        await asyncio.to_thread(
            wait_for,
            lambda: get(lb, "/livez", source="127.0.0.3") == 200,
            timeout=10,
            what="HAProxy to serve",
        )
        statuses = [get(lb, "/livez") for _ in range(limit + 3)]
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(f"{haproxy.extra['ws_url']}?id=flooder", open_timeout=5)
        other_source = get(lb, "/livez", source="127.0.0.2")
    finally:
        haproxy.stop()
    assert statuses == [200] * limit + [429] * 3
    assert refused.value.response.status_code == 429
    assert other_source == 200


async def test_websocket_client_address__forwarded_by_haproxy_not_by_the_client(nodes):
    """A WebSocket's client address is the one HAProxy saw, whatever the client claims."""
    haproxy = start_haproxy([node.port for node in nodes])
    try:
        await asyncio.to_thread(
            wait_for,
            lambda: get(haproxy.port, "/livez") == 200,
            timeout=10,
            what="HAProxy to serve",
        )
        # A bad client id is refused, and the node logs who asked.
        for _ in range(2):  # leastconn: one handshake per node
            with pytest.raises(websockets.InvalidStatus):
                await websockets.connect(
                    f"{haproxy.extra['ws_url']}?id=bad%20id",
                    additional_headers=SPOOFED,
                    local_addr=("127.0.0.2", 0),
                    open_timeout=5,
                )
    finally:
        haproxy.stop()
    refusals = [
        line for node in nodes for line in node.log().splitlines() if "bad client id" in line
    ]
    assert len(refusals) >= 2
    assert all("127.0.0.2" in line and "10.1.2.3" not in line for line in refusals), refusals
