"""The Redis session store against a real redis-server."""

from __future__ import annotations

import asyncio

import pytest
import redis

from localcluster.processes import restart_redis
from timer.sessions.records import CLOSED, LIVE, SessionRecord
from timer.sessions.redis_store import KEY_PREFIX, RedisSessionStore
from timer.sessions.store import SessionStoreBusy

pytestmark = pytest.mark.integration


class Clock:
    """A settable wall clock for bucket arithmetic."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(redis_server):
    clock = Clock()
    session_store = RedisSessionStore.from_url(redis_server.extra["url"], ttl=60, pool_size=4)
    session_store._wall_clock = clock
    yield session_store
    await session_store.aclose()


def newest(store, client_id) -> SessionRecord | None:
    """The newest claim record of ``client_id``, read with a plain client."""
    client = redis.Redis(port=store._redis.connection_pool.connection_kwargs["port"])
    for key in store._keys():
        value = client.hget(key, client_id)
        if value is not None:
            return SessionRecord.decode(value)
    return None


async def test_redis_store__new_session_starts_at_zero_and_is_claimed(store):
    """An unknown id resumes from nothing; the claim names the new connection."""
    opening = await store.open("alice", "nodeA#1")
    assert opening.last_n == -1 and opening.previous is None and opening.stored
    assert newest(store, "alice") == SessionRecord(-1, LIVE, "nodeA#1")


async def test_redis_store__closed_session_resumes_exactly(store):
    """After a clean close the next connection continues at last + 1."""
    await store.open("bob", "nodeA#1")
    await store.close("bob", "nodeA#1", 41)
    assert newest(store, "bob") == SessionRecord(41, CLOSED, "nodeA#1")
    opening = await store.open("bob", "nodeB#7")
    assert opening.last_n == 41


async def test_redis_store__checkpoint_of_a_dead_node_resumes_one_ahead(store):
    """A live checkpoint may lag the client by one frame: resume counts it as seen."""
    await store.open("carol", "nodeA#1")
    await store.checkpoint("nodeA", [("carol", "nodeA#1", 10)])
    opening = await store.open("carol", "nodeB#1")  # nodeA was killed
    assert opening.previous == SessionRecord(10, LIVE, "nodeA#1")
    assert opening.last_n == 11


async def test_redis_store__live_session_outlives_its_claim(store):
    """A connection held longer than the TTL keeps its session: its node's checkpoints carry it."""
    await store.open("ivy", "nodeA#1")
    store._wall_clock.now += store.ttl + 3 * store.bucket_seconds  # the claim's bucket is gone
    await store.checkpoint("nodeA", [("ivy", "nodeA#1", 500)])
    opening = await store.open("ivy", "nodeB#1")  # nodeA was killed
    assert opening.previous == SessionRecord(500, LIVE, "nodeA#1")
    assert opening.last_n == 501
    assert newest(store, "ivy") == SessionRecord(501, LIVE, "nodeB#1")


async def test_redis_store__redis_losing_its_data_loses_no_live_session(store, redis_server):
    """Redis restarted empty: the next checkpoint is enough for another node to resume."""
    await store.open("jack", "nodeA#4")
    await store.checkpoint("nodeA", [("jack", "nodeA#4", 30)])
    redis_server.stop()
    restarted = restart_redis(redis_server)
    try:
        assert await store.ping()
        await store.checkpoint("nodeA", [("jack", "nodeA#4", 33)])
        assert store.available
        opening = await store.open("jack", "nodeB#1")
        assert opening.previous == SessionRecord(33, LIVE, "nodeA#4")
        assert opening.last_n == 34
    finally:
        restarted.stop()


async def test_redis_store__a_dead_nodes_live_counts_expire_with_the_ttl(store):
    """A node that stopped checkpointing a TTL ago no longer resumes anyone."""
    await store.checkpoint("nodeA", [("kate", "nodeA#1", 8)])
    store._wall_clock.now += store.ttl + 2 * store.bucket_seconds
    assert (await store.open("kate", "nodeB#1")).previous is None


async def test_redis_store__stale_writer_cannot_overwrite_a_takeover(store):
    """Once another connection claimed the session, the old one's checkpoint and close are ignored."""
    await store.open("dave", "nodeA#1")
    await store.checkpoint("nodeA", [("dave", "nodeA#1", 5)])
    await store.open("dave", "nodeB#1")  # takeover: claim with last 6
    await store.checkpoint("nodeA", [("dave", "nodeA#1", 6)])
    await store.close("dave", "nodeA#1", 6)
    assert newest(store, "dave") == SessionRecord(6, LIVE, "nodeB#1")
    await store.checkpoint("nodeB", [("dave", "nodeB#1", 9)])
    assert (await store.open("dave", "nodeC#1")).last_n == 10


async def test_redis_store__checkpoint_is_one_command_whatever_the_connection_count(store,
                                                                                 redis_server):
    """The per-interval write costs Redis the same commands for 10 or 2,000 connections."""
    client = redis.Redis(port=redis_server.port)

    async def commands_for(count: int) -> int:
        entries = [(f"c{i}", "nodeA#1", i) for i in range(count)]
        before = client.info("stats")["total_commands_processed"]
        await store.checkpoint("nodeA", entries)
        return client.info("stats")["total_commands_processed"] - before - 1  # minus INFO

    await commands_for(1)  # the first call also opens the pooled connection
    small, large = await commands_for(10), await commands_for(2000)
    assert small == large


async def test_redis_store__sessions_expire_with_their_buckets(store, redis_server):
    """Abandoned sessions vanish after the TTL: Redis keeps only recent buckets."""
    client = redis.Redis(port=redis_server.port)
    await store.open("erin", "nodeA#1")
    await store.close("erin", "nodeA#1", 3)
    ttl_ms = max(client.pttl(key) for key in client.keys(KEY_PREFIX + "*"))
    assert 0 < ttl_ms <= (store.ttl + store.bucket_seconds) * 1000
    other_node = RedisSessionStore.from_url(redis_server.extra["url"], ttl=60, pool_size=4)
    other_node._wall_clock = Clock(store._wall_clock.now + store.ttl + 2 * store.bucket_seconds)
    try:
        opening = await other_node.open("erin", "nodeB#1")
    finally:
        await other_node.aclose()
    assert opening.previous is None  # beyond the buckets read: forgotten


async def test_redis_store__outage_falls_back_to_memory_and_writes_back(store, redis_server):
    """With Redis down the store answers from memory; closes are written back on recovery."""
    await store.open("frank", "nodeA#1")
    await store.close("frank", "nodeA#1", 9)
    redis_server.stop()
    opening = await store.open("frank", "nodeA#2")
    assert not opening.stored and opening.last_n == 9
    assert not store.available
    await store.close("frank", "nodeA#2", 12)
    await store.checkpoint("nodeA", [("grace", "nodeA#3", 4)])  # fails quietly
    restarted = restart_redis(redis_server)
    try:
        assert await store.ping()
        assert await store.flush_pending() == 1
        opening = await store.open("frank", "nodeB#1")
        assert opening.stored and opening.last_n == 12
    finally:
        restarted.stop()


async def test_redis_store__slow_redis_refuses_rather_than_guessing(redis_server):
    """A Redis that answers too late raises SessionStoreBusy: no count is made up from memory."""
    slow = RedisSessionStore.from_url(redis_server.extra["url"], ttl=60, pool_size=2,
                                      socket_timeout=0.3)
    blocker = redis.Redis(port=redis_server.port)
    busy_for_a_second = """
        local start = redis.call('TIME')
        while true do
          local now = redis.call('TIME')
          if (now[1] - start[1]) * 1000000 + (now[2] - start[2]) > 1000000 then break end
        end
        return 1"""
    try:
        await slow.open("warm-up", "nodeA#0")
        blocking = asyncio.get_running_loop().run_in_executor(None, blocker.eval,
                                                              busy_for_a_second, 0)
        await asyncio.sleep(0.1)
        with pytest.raises(SessionStoreBusy):
            await slow.open("henry", "nodeA#1")
        await blocking
        assert slow.available  # slow is not down: no fallback, no outage logged
    finally:
        await slow.aclose()
        blocker.close()
