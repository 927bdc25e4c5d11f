"""Publishing and reading the cluster's state, against a real redis-server on loopback (marked
integration), and the node's own state (unit)."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from timer.health.runtime import get_monitor
from timer.node.cluster_state import (
    HISTORY_PREFIX,
    INDEX_KEY,
    NODE_PREFIX,
    ClusterState,
    NodeState,
    ttl_for,
)
from timer.node.cluster_task import node_state
from timer.web.health_views import health_json
from timer.web.metrics_collector import NodeCollector


@pytest.fixture
async def cluster(redis_url):
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    await client.flushdb()
    state = ClusterState(client, ttl=5.0, history=3)
    yield state
    await state.aclose()


def a_node(name: str, **changes) -> NodeState:
    values = dict(
        name=name,
        version="1.2.3",
        status="ok",
        reason="ok",
        connections=42,
        max_connections=None,
        usage=0.125,
        threshold=0.6,
        recovery_level=0.55,
        capacity_bits_per_second=None,
        sampler_age=0.4,
        draining=False,
        accepting=True,
        spare_percent=79,
        redis="up",
        started_at=1700000000.5,
        rebalance_state="balanced",
        rebalance_share=40.5,
        rebalance_moved=3,
    )
    return NodeState(**{**values, **changes})


@pytest.mark.integration
async def test_publish_and_read__round_trip_with_age_from_redis_time(cluster):
    """Every field comes back as published; the age and time are Redis's, not the node's."""
    published = a_node("node-one")
    at = await cluster.publish(published)
    await cluster.publish(
        a_node(
            "node-two",
            usage=None,
            draining=True,
            accepting=False,
            status="draining",
            max_connections=500,
        )
    )
    states = await cluster.read()
    assert [s.name for s in states] == ["node-one", "node-two"]
    one, two = states
    assert one.reported_at_ms == at and 0 <= one.age < 1
    assert one == NodeState(**{**published.__dict__, "reported_at_ms": at, "age": one.age})
    assert (two.usage, two.draining, two.accepting, two.max_connections) == (None, True, False, 500)


@pytest.mark.integration
async def test_publish__constant_cost_and_bounded_history(cluster):
    """One script call per publish; the history keeps the newest ``history`` entries."""
    for connections in range(5):
        await cluster.publish(a_node("node-one", connections=connections))
    history = await cluster.read_history(["node-one", "gone"])
    assert [e.connections for e in history["node-one"]] == [2, 3, 4]  # oldest first
    assert history["node-one"][-1].usage == 0.125 and history["gone"] == []
    raw = cluster._redis
    assert await raw.llen(HISTORY_PREFIX + "node-one") == 3
    assert 0 < await raw.pttl(NODE_PREFIX + "node-one") <= 5000
    assert 0 < await raw.pttl(HISTORY_PREFIX + "node-one") <= 5000
    assert await raw.zrange(INDEX_KEY, 0, -1) == ["node-one"]


@pytest.mark.integration
async def test_read__a_node_that_stopped_publishing_vanishes(redis_url):
    """Past the ttl a node's keys expire and the reader no longer lists it."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    await client.flushdb()
    short = ClusterState(client, ttl=0.3)
    try:
        await short.publish(a_node("short-lived"))
        assert [s.name for s in await short.read()] == ["short-lived"]
        await asyncio.sleep(0.5)
        assert await short.read() == []
        assert await client.exists(NODE_PREFIX + "short-lived", HISTORY_PREFIX + "short-lived") == 0
    finally:
        await short.aclose()


def test_node_state__fields_are_plain_strings():
    """The hash's encoding: decimal numbers, 0/1 booleans, empty for unknown."""
    fields = a_node("n", usage=None, max_connections=7).to_fields()
    assert fields["usage"] == "" and fields["max_connections"] == "7"
    assert fields["draining"] == "0" and fields["accepting"] == "1"
    assert "reported_at_ms" not in fields and "age" not in fields
    assert NodeState.from_fields({"name": "n", "connections": "x", "extra": "1"}).connections == 0


@pytest.mark.django_db(transaction=True)
async def test_node_state__from_the_health_report(node):
    """A node's published state is its health report's, with the agent's weight."""
    state = node_state(node)
    assert (state.name, state.connections, state.status, state.accepting) == (
        node.name,
        0,
        "ok",
        True,
    )
    assert state.spare_percent == 100 and state.redis == "not configured"
    assert state.threshold == 0.6 and not state.draining


@pytest.mark.django_db(transaction=True)
async def test_health_json_and_metrics__rebalancing_off_without_redis(node):
    """Without a shared store nothing is published or moved, and both say so."""
    monitor = get_monitor()
    report = monitor.report(monitor.clock(), 0)
    assert health_json(node, report, stale_after=2.0)["rebalance"] == {
        "enabled": False,
        "state": "off",
        "share": None,
        "cluster_connections": 0,
        "nodes": 0,
        "moved": 0,
    }
    samples = {
        (s.name, s.labels.get("state")): s.value
        for family in NodeCollector(lambda: node).collect()
        for s in family.samples
    }
    assert samples[("wstime_rebalance_moved_total", None)] == 0
    assert samples[("wstime_rebalance_state", "off")] == 1
    assert samples[("wstime_rebalance_state", "moving")] == 0


def test_ttl_for__ten_intervals_at_least_five_seconds():
    """Publisher and readers agree on how long a silent node stays listed."""
    assert (ttl_for(1.0), ttl_for(0.25), ttl_for(2.0)) == (10.0, 5.0, 20.0)


@pytest.mark.django_db(transaction=True)
async def test_node_state__draining_as_soon_as_the_policy_drains(node):
    """A policy drain is published as draining (the page's undo) before the governor starts it."""
    from dataclasses import replace

    monitor = get_monitor()
    monitor.policy = replace(monitor.policy, draining=True)
    state = node_state(node)
    assert not node.draining  # the governor has not run yet
    assert state.status == "draining" and state.draining and not state.accepting
