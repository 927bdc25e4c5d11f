"""``/healthcheck`` and ``/livez`` through Django's async test client, on a started node."""

import asyncio
import json
from dataclasses import replace

import pytest
from django.test import AsyncClient

from timer.health import policy_store
from timer.health.capacity import FROM_SETTING, Capacity
from timer.health.rates import Counters, CounterSample
from timer.node.hub import Connection
from timer.node.supervise import stop, supervise
from timer.sessions.redis_store import RedisSessionStore

LINK = Capacity(80_000, FROM_SETTING)  # 10_000 bytes/s fills it


def feed(monitor, clock, seconds: int, bytes_per_second: int) -> None:
    """Observe a baseline, then ``seconds`` one-second samples of steady received traffic."""
    received = 0
    monitor.observe(CounterSample(clock.now, {"eth0": Counters(received, 0)}), LINK, 0)
    for _ in range(seconds):
        clock.now += 1
        received += bytes_per_second
        monitor.observe(CounterSample(clock.now, {"eth0": Counters(received, 0)}), LINK, 0)


async def _discard(_: object) -> None:
    """Stand-in socket for connections that are attached but never tick within a test."""


@pytest.fixture
def client() -> AsyncClient:
    return AsyncClient()


async def test_healthcheck__ok_as_text(client, monitor, clock):
    """Room on the node: 200 'ok' as plain text, never cached."""
    feed(monitor, clock, 3, 1_000)
    response = await client.get("/healthcheck")
    assert (response.status_code, response.content) == (200, b"ok")
    assert response["Content-Type"].startswith("text/plain")
    assert "no-store" in response["Cache-Control"]


async def test_healthcheck__overloaded_is_503(client, monitor, clock):
    """Usage at or above the threshold: 503 'server is overloaded'."""
    feed(monitor, clock, 3, 6_000)
    response = await client.get("/healthcheck")
    assert (response.status_code, response.content) == (503, b"server is overloaded")
    assert "no-store" in response["Cache-Control"]


async def test_healthcheck__draining_is_503(client, monitor, clock):
    """A draining policy: 503 'draining' even with no load."""
    feed(monitor, clock, 3, 0)
    monitor.policy = replace(monitor.policy, draining=True)
    response = await client.get("/healthcheck")
    assert (response.status_code, response.content) == (503, b"draining")


async def test_healthcheck__node_drain_is_503(client, monitor, clock, node):
    """A node draining on its own (SIGTERM, manage.py drain) answers 'draining' at once."""
    feed(monitor, clock, 3, 0)
    node.start_drain("policy")
    try:
        response = await client.get("/healthcheck")
    finally:
        node.cancel_drain()
    assert (response.status_code, response.content) == (503, b"draining")
    assert (await client.get("/healthcheck")).status_code == 200


async def test_healthcheck__stale_sampler_is_503(client, monitor, clock):
    """No sample for longer than the stale age: 503 with that reason."""
    feed(monitor, clock, 3, 0)
    clock.now += monitor.stale_after + 0.5
    response = await client.get("/healthcheck")
    assert (response.status_code, response.content) == (503, b"sampler is stale")


async def test_healthcheck__head_has_status_and_headers_only(client, monitor, clock):
    """HEAD answers like GET without a body."""
    feed(monitor, clock, 3, 6_000)
    response = await client.head("/healthcheck")
    assert (response.status_code, response.content) == (503, b"")
    assert "no-store" in response["Cache-Control"]


async def test_healthcheck__post_is_refused(client, monitor):
    """Only GET and HEAD are allowed."""
    assert (await client.post("/healthcheck")).status_code == 405


@pytest.mark.parametrize(
    "query, headers",
    [
        ("?format=json", {}),
        ("", {"Accept": "application/json"}),
    ],
)
async def test_healthcheck__json_detail(client, monitor, clock, node, query, headers):
    """JSON by query or Accept header: every documented field, no exception text."""
    feed(monitor, clock, 3, 6_000)
    response = await client.get(f"/healthcheck{query}", headers=headers)
    body = json.loads(response.content)
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert body["node"] == node.name
    assert body["version"]
    assert (body["status"], body["reason"]) == ("overloaded", "server is overloaded")
    assert body["usage"] == pytest.approx(0.6)
    assert (body["threshold"], body["recovery_level"], body["window_seconds"]) == (0.6, 0.55, 10.0)
    assert (body["capacity_bits_per_second"], body["capacity_source"]) == (80_000, FROM_SETTING)
    assert (body["connections"], body["max_connections"], body["full_by"]) == (0, None, ["network"])
    assert body["sampler_age_seconds"] == 0.0
    assert body["policy_source"] == "settings"
    assert body["shared"]["redis"] == "not configured"


async def test_healthcheck__browser_accept_gets_text(client, monitor, clock):
    """A browser's Accept (html, then */*) gets the plain text."""
    feed(monitor, clock, 3, 0)
    response = await client.get(
        "/healthcheck", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    )
    assert response.content == b"ok"


async def test_healthcheck__redis_down_is_shown_but_not_503(client, monitor, clock, node):
    """A shared Redis that is down appears in the JSON; the node stays in rotation."""
    feed(monitor, clock, 3, 0)
    own_store = node.store
    unreachable = RedisSessionStore.from_url("redis://127.0.0.1:9/0", ttl=60, pool_size=2)
    assert not await unreachable.ping()  # marks Redis down
    node.store = unreachable
    try:
        response = await client.get("/healthcheck?format=json")
    finally:
        node.store = own_store
        await unreachable.aclose()
    assert response.status_code == 200
    assert json.loads(response.content)["shared"]["redis"] == "down"


async def test_healthcheck__counts_open_connections(client, monitor, clock, node):
    """The connection limit is a second signal; the JSON shows the hub's count."""
    feed(monitor, clock, 3, 0)
    monitor.policy = replace(monitor.policy, max_connections=2)
    connections = [
        Connection(client_id=name, token=name, last_n=0, send_text=_discard, close=_discard)
        for name in ("a", "b")
    ]
    for connection in connections:
        node.hub.attach(connection)
    try:
        response = await client.get("/healthcheck?format=json")
    finally:
        for connection in connections:
            node.hub.detach(connection)
    body = json.loads(response.content)
    assert (response.status_code, body["connections"], body["full_by"]) == (503, 2, ["connections"])


async def test_livez__answers_without_the_sampler(client, monitor, clock):
    """Liveness is 200 even when the health check fails."""
    clock.now += 3600
    response = await client.get("/livez")
    assert (response.status_code, response.content) == (200, b"alive")
    assert "no-store" in response["Cache-Control"]


async def _crash() -> None:
    raise RuntimeError("detail that must not reach the JSON")


async def test_healthcheck__json_shows_background_tasks_and_crash_loops(
    client, monitor, clock, node
):
    """Each supervised task's state is in the JSON; a crash-looping one does not cause a 503."""
    feed(monitor, clock, 3, 0)
    flaky = supervise("flaky", _crash, first_delay=0.001, max_delay=0.004)
    node.tasks.append(flaky)
    try:
        async with asyncio.timeout(5):
            while flaky.restarts < 4:
                await asyncio.sleep(0.001)
        response = await client.get("/healthcheck?format=json")
    finally:
        node.tasks.remove(flaky)
        await stop([flaky])
    body = json.loads(response.content)
    tasks = {task["name"]: task for task in body["tasks"]}
    assert response.status_code == 200
    assert tasks["flaky"]["crash_looping"] is True
    assert tasks["flaky"]["restarts"] >= 4
    assert tasks["flaky"]["last_error"] == "RuntimeError"
    assert tasks["ticker"] == {
        "name": "ticker",
        "running": True,
        "restarts": 0,
        "last_error": None,
        "crash_looping": False,
    }
    assert b"must not reach" not in response.content


async def test_healthcheck__policy_load_error_shown_and_still_200(
    client, monitor, clock, monkeypatch
):
    """A policy read that raises (not a database error) shows in the JSON; the node stays 200."""

    def broken(node_name, settings):
        raise ValueError("unreadable row")

    monkeypatch.setattr(policy_store, "load_policy", broken)
    monkeypatch.setattr(policy_store, "_policy_error", None)  # put back after the test
    feed(monitor, clock, 3, 0)
    refresher = asyncio.create_task(policy_store.refresh_forever(monitor, "web-1", 0.01))
    try:
        await asyncio.sleep(0.05)
        response = await client.get("/healthcheck?format=json")
    finally:
        refresher.cancel()
        await asyncio.gather(refresher, return_exceptions=True)
    assert response.status_code == 200
    assert json.loads(response.content)["policy_error"] == "ValueError"
