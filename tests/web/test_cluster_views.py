"""The admin's cluster page: staff only, rows from Redis or the local node, drain buttons."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import AsyncClient, Client

from localcluster.processes import start_redis
from timer.models import HealthPolicy
from timer.node.cluster_state import ClusterState, NodeState, ttl_for
from timer.node.node import get_node, reset_node

PAGE = "/admin/cluster/"
STATE = "/admin/cluster/state.json"
DRAIN = "/admin/cluster/drain/"
INTERVAL = 0.1  # publish interval in these tests: stale after 0.3 s


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def staff(transactional_db):
    return get_user_model().objects.create_user("operator", password="pw", is_staff=True)


@pytest.fixture
async def staff_client(staff) -> AsyncClient:
    client = AsyncClient()
    await client.aforce_login(staff)
    return client


@pytest.fixture
async def local_node(settings, transactional_db):
    """This process's node, started, without Redis."""
    settings.WSTIME_TICK_INTERVAL = 0.05
    reset_node()
    node = get_node()
    await node.ensure_started()
    yield node
    await node.stop()
    reset_node()


@pytest.fixture
def redis_url(settings):
    server = start_redis()
    settings.WSTIME_REDIS_URL = server.extra["url"]
    settings.WSTIME_SAMPLE_INTERVAL = INTERVAL
    yield server.extra["url"]
    server.stop()


def published(name: str, **changes) -> NodeState:
    values = dict(
        name=name,
        version="9.9",
        status="ok",
        reason="ok",
        connections=10,
        max_connections=100,
        usage=0.2,
        threshold=0.6,
        recovery_level=0.55,
        sampler_age=0.3,
        accepting=True,
        redis="up",
    )
    return NodeState(**{**values, **changes})


async def test_cluster_page__anonymous_is_sent_to_login(transactional_db):
    """No session: the page redirects to the admin login, the JSON answers 403."""
    client = AsyncClient()
    response = await client.get(PAGE)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=/admin/cluster/")
    assert (await client.get(STATE)).status_code == 403
    assert (await client.get(DRAIN + "?node=x")).status_code == 302


async def test_cluster_page__non_staff_is_refused(transactional_db):
    """A logged-in user who is not staff gets no page, no JSON and no drain."""
    user = await get_user_model().objects.acreate_user("visitor", password="pw")
    client = AsyncClient()
    await client.aforce_login(user)
    assert (await client.get(PAGE))["Location"].startswith("/admin/login/")
    assert (await client.get(STATE)).status_code == 403
    response = await client.post(DRAIN, {"node": "node-a", "action": "drain"})
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert not await HealthPolicy.objects.aexists()


async def test_cluster_page__renders_for_staff_with_its_script(staff_client, local_node):
    """The page links its hashed script and the JSON it polls; the admin index links to it."""
    response = await staff_client.get(PAGE)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-state-url="/admin/cluster/state.json"' in html
    assert "/static/timer/cluster." in html and ".js" in html
    index = (await staff_client.get("/admin/")).content.decode()
    assert 'href="/admin/cluster/"' in index


async def test_cluster_state__local_node_without_redis(staff_client, local_node):
    """Without WSTIME_REDIS_URL: one row, this node, with no stored history."""
    response = await staff_client.get(STATE)
    assert response.status_code == 200
    data = response.json()
    assert data["source"] == "local"
    [row] = data["nodes"]
    assert row["name"] == local_node.name
    assert row["state"] in {"ok", "overloaded", "stale"}  # as the sampler found this machine
    assert row["redis"] == "not configured" and row["history"] is None
    assert data["totals"]["nodes"] == 1 and data["totals"]["connections"] == 0


async def test_cluster_state__rows_and_states_from_redis(staff_client, redis_url):
    """Published states come back as rows: ok, overloaded, draining, and stale by age."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    cluster = ClusterState(client, ttl=ttl_for(INTERVAL))
    try:
        await cluster.publish(published("node-d", connections=1))
        await asyncio.sleep(4 * INTERVAL)  # node-d stops publishing: stale after 3 intervals
        for _ in range(2):
            await cluster.publish(published("node-a"))
            await cluster.publish(
                published(
                    "node-b",
                    status="overloaded",
                    reason="server is overloaded",
                    usage=0.7,
                    connections=90,
                    accepting=False,
                )
            )
            await cluster.publish(
                published(
                    "node-c",
                    status="draining",
                    reason="draining",
                    draining=True,
                    accepting=False,
                    connections=0,
                )
            )
        response = await staff_client.get(STATE)
    finally:
        await cluster.aclose()
    assert response.status_code == 200
    data = response.json()
    assert data["source"] == "redis"
    rows = {row["name"]: row for row in data["nodes"]}
    assert [row["name"] for row in data["nodes"]] == ["node-a", "node-b", "node-c", "node-d"]
    assert {name: row["state"] for name, row in rows.items()} == {
        "node-a": "ok",
        "node-b": "overloaded",
        "node-c": "draining",
        "node-d": "stale",
    }
    assert rows["node-b"]["reason"] == "server is overloaded"
    assert rows["node-d"]["reason"].startswith("no report for ")
    assert rows["node-c"]["draining"] is True
    assert (rows["node-b"]["usage"], rows["node-b"]["threshold"]) == (0.7, 0.6)
    assert [h[1:] for h in rows["node-b"]["history"]] == [[0.7, 90], [0.7, 90]]
    assert len(rows["node-d"]["history"]) == 1
    assert data["totals"]["connections"] == 10 + 90 + 0 + 1
    assert data["totals"]["max_connections"] == 400
    assert data["totals"]["by_state"] == {"ok": 1, "overloaded": 1, "draining": 1, "stale": 1}


async def test_cluster_state__many_pages_at_once_all_answered(staff_client, redis_url):
    """Twelve polls at once share the serving node's few Redis connections; none fails."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    cluster = ClusterState(client, ttl=ttl_for(INTERVAL))
    try:
        await cluster.publish(published("node-a"))
        responses = await asyncio.gather(*(staff_client.get(STATE) for _ in range(12)))
    finally:
        await cluster.aclose()
    assert [r.status_code for r in responses] == [200] * 12
    assert all(r.json()["nodes"][0]["name"] == "node-a" for r in responses)


async def test_cluster_state__redis_down_answers_503(staff_client, redis_url, settings):
    """Redis configured but not answering: 503 with the error's type, no traceback."""
    settings.WSTIME_REDIS_URL = "redis://127.0.0.1:1/0"
    response = await staff_client.get(STATE)
    assert response.status_code == 503
    assert "ConnectionError" in response.json()["error"]


async def test_cluster_drain__confirm_then_post_drains_and_undoes(staff_client):
    """GET asks and changes nothing; the POST drains the node; undo stops it."""
    confirm = await staff_client.get(DRAIN, {"node": "node-a", "action": "drain"})
    assert confirm.status_code == 200
    assert "Yes, drain node node-a" in confirm.content.decode()
    assert not await HealthPolicy.objects.aexists()

    response = await staff_client.post(DRAIN, {"node": "node-a", "action": "drain"})
    assert response.status_code == 302 and response["Location"] == PAGE
    assert (await HealthPolicy.objects.aget(node="node-a")).draining is True

    await staff_client.post(DRAIN, {"node": "node-a", "action": "undo"})
    assert (await HealthPolicy.objects.aget(node="node-a")).draining is False

    await staff_client.post(DRAIN, {"node": "", "action": "drain"})
    assert (await HealthPolicy.objects.aget(node="")).draining is True


async def test_cluster_drain__new_row_keeps_the_nodes_own_limits(staff_client, redis_url, settings):
    """Draining another node from this one's admin copies that node's published policy into
    its new row, not this process's settings (which would give it this node's limits)."""
    settings.WSTIME_MAX_CONNECTIONS = 1  # the serving node's own limit
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    cluster = ClusterState(client, ttl=ttl_for(INTERVAL))
    try:
        await cluster.publish(
            published("other-node", max_connections=None, threshold=0.7, recovery_level=0.6)
        )
        response = await staff_client.post(DRAIN, {"node": "other-node", "action": "drain"})
    finally:
        await cluster.aclose()
    assert response.status_code == 302
    row = await HealthPolicy.objects.aget(node="other-node")
    assert row.draining is True
    assert (row.max_connections, row.threshold, row.recovery_margin) == (None, 0.7, 0.1)


def test_cluster_drain__post_needs_the_csrf_token(staff):
    """The drain is a POST with Django's CSRF token: one without it is refused."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    response = client.post(DRAIN, {"node": "node-a", "action": "drain"})
    assert response.status_code == 403
    assert not HealthPolicy.objects.exists()
    confirm = client.get(DRAIN, {"node": "node-a"})
    token = confirm.context["csrf_token"]
    response = client.post(
        DRAIN, {"node": "node-a", "action": "drain", "csrfmiddlewaretoken": str(token)}
    )
    assert response.status_code == 302
    assert HealthPolicy.objects.get(node="node-a").draining is True


def test_cluster_drain__bad_node_name_is_an_error_message(staff):
    """A name no node can have is reported, and nothing is written."""
    client = Client()
    client.force_login(staff)
    response = client.post(DRAIN, {"node": "Not A Node", "action": "drain"}, follow=True)
    assert "Cannot drain node" in response.content.decode()
    assert not HealthPolicy.objects.exists()


@pytest.mark.django_db
def test_drain_command__same_function_as_the_page(capsys):
    """``manage.py drain`` writes the same row and says what it did, and the undo's note."""
    call_command("drain", "--all")
    call_command("drain", "--node", "node-a", "--undo")
    call_command("drain", "--node", "node-b")
    call_command("drain", "--node", "node-b", "--undo")
    out = capsys.readouterr().out
    assert "every node is draining" in out
    assert "node node-a was not draining." in out
    assert "Note: the default policy still drains every node (drain --all --undo)." in out
    assert HealthPolicy.objects.get(node="node-b").draining is False
