"""The Redis session store against a real redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time

import pytest
import redis
import redis.asyncio as aioredis

from localcluster.cluster import data_dir_env, start_cluster
from localcluster.processes import restart_redis, start_redis, wait_for
from timer.sessions.records import CLOSED, LIVE, SessionRecord
from timer.sessions.redis_store import KEY_PREFIX, LIVE_PREFIX, RedisSessionStore
from timer.sessions.store import SessionStoreBusy

from .ticks import TickClient, frames_from

pytestmark = pytest.mark.integration


def make_store(redis_server, *, ttl: float = 60, skew: float = 0.0, **kwargs) -> RedisSessionStore:
    """A store on ``redis_server`` whose wall clock is off by ``skew`` seconds.

    Its recovery grace is zero unless given: only the test of that grace waits it out.
    """
    kwargs.setdefault("recovery_grace", 0.0)
    store = RedisSessionStore.from_url(redis_server.extra["url"], ttl=ttl, pool_size=4, **kwargs)
    store._wall_clock = lambda: time.time() + skew
    return store


@pytest.fixture
async def store(redis_server):
    session_store = make_store(redis_server)
    yield session_store
    await session_store.aclose()


@pytest.fixture
async def short_store(redis_server):
    """A store whose sessions live 0.4 s (buckets of 0.1 s): expiry tests wait on Redis's clock."""
    session_store = make_store(redis_server, ttl=0.4)
    yield session_store
    await session_store.aclose()


def newest(store, client_id) -> SessionRecord | None:
    """The newest claim record of ``client_id``, read with a plain client."""
    client = redis.Redis(port=store._redis.connection_pool.connection_kwargs["port"])
    keys = sorted(
        client.keys(KEY_PREFIX + "*"), key=lambda key: int(key.rsplit(b":", 1)[1]), reverse=True
    )
    for key in keys:
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
    assert (await store.checkpoint("nodeA", [("bob", "nodeA#1", 41)])).stored  # its last checkpoint
    await store.close("bob", "nodeA#1", 41)
    assert newest(store, "bob") == SessionRecord(41, CLOSED, "nodeA#1")
    opening = await store.open("bob", "nodeB#7")
    assert opening.last_n == 41


async def test_redis_store__checkpoint_of_a_dead_node_resumes_one_ahead(store):
    """A live checkpoint may lag the client by one frame: resume counts it as seen."""
    await store.open("carol", "nodeA#1")
    assert (await store.checkpoint("nodeA", [("carol", "nodeA#1", 10)])).stored
    opening = await store.open("carol", "nodeB#1")  # nodeA was killed
    assert opening.previous == SessionRecord(10, LIVE, "nodeA#1")
    assert opening.last_n == 11


async def test_redis_store__claims_of_failed_handshakes_cost_no_count(store):
    """A claim whose connection never sent a frame (its handshake timed out, or its node died
    before the first checkpoint) resumes exactly: claims do not pile up counts."""
    await store.open("cleo", "nodeA#1")
    # The client saw 10 or 11:
    assert (await store.checkpoint("nodeA", [("cleo", "nodeA#1", 10)])).stored
    assert (await store.open("cleo", "nodeB#1")).last_n == 11  # nodeA died; nodeB#1 too
    assert (await store.open("cleo", "nodeC#1")).last_n == 11  # nodeC#1's handshake timed out
    opening = await store.open("cleo", "nodeD#1")
    assert opening.last_n == 11  # first frame 12: at most last seen + 2


async def test_redis_store__the_clients_last_count_is_a_floor(store):
    """A session Redis lost (restarted empty, its node gone too) resumes past the count the
    client remembers, and the claim stores it; a higher stored count is never lowered."""
    opening = await store.open("lost", "nodeB#1", last_seen=60)
    assert opening.last_n == 60
    assert newest(store, "lost") == SessionRecord(60, LIVE, "nodeB#1")
    await store.close("lost", "nodeB#1", 75)
    assert (await store.open("lost", "nodeC#1", last_seen=3)).last_n == 75


async def test_redis_store__live_session_outlives_its_claim(short_store):
    """A connection held longer than the TTL keeps its session: its node's checkpoints carry it."""
    store = short_store
    await store.open("ivy", "nodeA#1")
    await asyncio.sleep(store.ttl + 3 * store.bucket_seconds)  # the claim's bucket is gone
    assert newest(store, "ivy") is None
    assert (await store.checkpoint("nodeA", [("ivy", "nodeA#1", 500)])).stored
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


async def test_redis_store__a_dead_nodes_live_counts_expire_with_the_ttl(short_store):
    """A node that stopped checkpointing a TTL ago no longer resumes anyone."""
    store = short_store
    assert (await store.checkpoint("nodeA", [("kate", "nodeA#1", 8)])).stored
    await asyncio.sleep(store.ttl + 2 * store.bucket_seconds)
    assert (await store.open("kate", "nodeB#1")).previous is None


async def test_redis_store__older_connection_still_ticking_elsewhere_is_counted_and_revoked(
    store,
):
    """A takeover message that has not reached the older connection: the open resumes past it
    (one frame past its checkpoint, which its lease allows) and revokes it, so its node's next
    checkpoint raises no lease and it cannot tick further. A claim whose handshake timed out is
    revoked the same way."""
    await store.open("kim", "nodeA#1")
    assert (await store.checkpoint("nodeA", [("kim", "nodeA#1", 20)])).stored
    opening = await store.open("kim", "nodeB#1")
    assert opening.last_n == 21 and opening.revoked == ("nodeA#1",)
    result = await store.checkpoint("nodeA", [("kim", "nodeA#1", 21)])
    assert result.stored and result.revoked == (("kim", "nodeA#1"),)
    opening = await store.open("kim", "nodeC#1")  # nodeB#1's handshake timed out
    assert opening.last_n == 21 and opening.revoked == ("nodeB#1",)
    assert opening.previous == SessionRecord(21, LIVE, "nodeB#1")


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


def live_entry(store, channel: str, client_id: str) -> str | None:
    """What ``channel``'s live hash holds for ``client_id``, read with a plain client."""
    client = redis.Redis(port=store._redis.connection_pool.connection_kwargs["port"])
    value = client.hget(f"{LIVE_PREFIX}{channel}", client_id)
    return value.decode() if value is not None else None


async def test_redis_store__a_claim_revokes_the_connection_that_holds_the_session(store):
    """The open names every connection that may still hold the session, not only the one with
    the highest count: here the newest claim, while the live hash still lists the connection
    before it (closed since the last checkpoint). Missing the claim left two connections ticking.
    """
    await store.open("pia", "nodeA#1")
    assert (await store.checkpoint("nodeA", [("pia", "nodeA#1", 1)])).stored
    await store.close("pia", "nodeA#1", 1)
    await store.open("pia", "nodeA#2")  # its claim: 1, live hash still "1|1"
    opening = await store.open("pia", "nodeB#1")
    assert "nodeA#2" in opening.revoked
    result = await store.checkpoint("nodeA", [("pia", "nodeA#2", 1)])
    assert live_entry(store, "nodeA", "pia") is None  # no lease for the revoked connection
    assert result.stored and result.revoked == (("pia", "nodeA#2"),)


async def test_redis_store__a_connection_claimed_away_before_its_first_checkpoint_sends_nothing(
    store,
):
    """A newer claim resumes exactly from an older claim that sent nothing; the older one's
    next checkpoint must then not give it a lease, or both would send the same next frame."""
    await store.open("quin", "nodeA#1")  # claim -1: its connection waits for a checkpoint
    opening = await store.open("quin", "nodeB#1")
    assert opening.last_n == -1 and opening.revoked == ("nodeA#1",)
    result = await store.checkpoint("nodeA", [("quin", "nodeA#1", -1)], handshake_floor=2)
    assert live_entry(store, "nodeA", "quin") is None
    assert result.revoked == (("quin", "nodeA#1"),)
    # Its node closed it: once past its sequence, the node's next checkpoint drops the mark.
    assert (await store.checkpoint("nodeA", [], handshake_floor=2)).revoked == ()
    assert (await store.checkpoint("nodeA", [("quin", "nodeA#1", -1)])).revoked == ()


async def test_redis_store__a_connection_claimed_away_during_its_handshake_is_revoked_once_listed(
    store,
):
    """Revoked before it is attached (its node's checkpoints do not list it yet): the mark stays
    while the node says a handshake at that sequence may still be in progress."""
    await store.open("ruth", "nodeA#7")
    await store.open("ruth", "nodeB#1")
    assert (await store.checkpoint("nodeA", [], handshake_floor=7)).revoked == ()
    result = await store.checkpoint("nodeA", [("ruth", "nodeA#7", -1)], handshake_floor=8)
    assert result.revoked == (("ruth", "nodeA#7"),)


async def test_redis_store__a_close_is_exact_before_the_next_checkpoint(store):
    """A connection closes, then a handshake with the same id claims and gives up (its close
    replaces the first one's record), all before the node's next checkpoint: the next open
    resumes exactly, not one past the first connection's entry still in the live hash."""
    await store.open("rita", "nodeA#1")
    assert (await store.checkpoint("nodeA", [("rita", "nodeA#1", 1)])).stored
    await store.close("rita", "nodeA#1", 1)
    await store.open("rita", "nodeA#2")  # a handshake that gave up: it sent nothing
    await store.close("rita", "nodeA#2", 1)
    assert live_entry(store, "nodeA", "rita") == "1|1|C"
    assert (await store.open("rita", "nodeA#3")).last_n == 1


async def test_redis_store__a_close_on_its_way_survives_a_checkpoint_that_overtakes_it(
    redis_server,
):
    """Closes and checkpoints travel on different connections. A checkpoint that reaches Redis
    before a close still on its way must keep the closing connection's count (marked exact):
    without it another node resumed from the claim alone and restarted the count."""
    url = redis_server.extra["url"]
    claims = aioredis.Redis(
        connection_pool=aioredis.BlockingConnectionPool.from_url(url, max_connections=1)
    )
    node_a = RedisSessionStore(
        claims, ttl=60, recovery_grace=0.0, lease_client=aioredis.Redis.from_url(url)
    )
    node_b = make_store(redis_server)
    try:
        await node_a.open("olga", "nodeA#1")  # claim -1
        assert (await node_a.checkpoint("nodeA", [("olga", "nodeA#1", 4)])).stored
        held = await claims.connection_pool.get_connection()  # the close waits for it
        closing = asyncio.create_task(node_a.close("olga", "nodeA#1", 5))
        await asyncio.sleep(0.05)
        assert not closing.done()
        assert (await node_a.checkpoint("nodeA", [])).stored  # olga is off the hub
        opening = await node_b.open("olga", "nodeB#1")
        assert opening.last_n == 5  # exact: not -1 (a reset) from the claim alone
        await claims.connection_pool.release(held)
        await closing
    finally:
        await node_a.aclose()
        await node_b.aclose()


async def test_redis_store__checkpoint_is_one_command_whatever_the_connection_count(
    store, redis_server
):
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


async def test_redis_store__sessions_expire_with_their_buckets(short_store, redis_server):
    """Abandoned sessions vanish after the TTL: Redis keeps only recent buckets."""
    store = short_store
    client = redis.Redis(port=redis_server.port)
    await store.open("erin", "nodeA#1")
    await store.close("erin", "nodeA#1", 3)
    ttl_ms = max(client.pttl(key) for key in client.keys(KEY_PREFIX + "*"))
    assert 0 < ttl_ms <= (store.ttl + store.bucket_seconds) * 1000
    await asyncio.sleep(store.ttl + 2 * store.bucket_seconds)
    assert not client.keys(KEY_PREFIX + "*")
    assert (await store.open("erin", "nodeB#1")).previous is None


async def test_redis_store__outage_refuses_opens_and_writes_closes_back(store, redis_server):
    """With Redis down, opens raise SessionStoreBusy (no count from memory) and checkpoints
    report failure; the held close is written back when Redis returns."""
    await store.open("frank", "nodeA#1")
    assert (await store.checkpoint("nodeA", [("frank", "nodeA#1", 9)])).stored
    redis_server.stop()
    with pytest.raises(SessionStoreBusy):
        await store.open("frank", "nodeA#2")
    assert not store.available
    await store.close("frank", "nodeA#1", 10)
    assert store.pending_closes == 1
    assert not (await store.checkpoint("nodeA", [("grace", "nodeA#3", 4)])).stored
    restarted = restart_redis(redis_server)  # empty
    other = make_store(restarted)
    try:
        assert (await store.checkpoint("nodeA", [("grace", "nodeA#3", 4)])).stored
        assert store.available and store.pending_closes == 0
        assert (await other.open("frank", "nodeB#1")).last_n == 10
    finally:
        await other.aclose()
        restarted.stop()


async def test_redis_store__held_close_is_kept_through_restart_with_data(tmp_path):
    """Redis killed and restarted with its data: until the held close is written, the node's
    checkpoint keeps its count live, so another node resumes past it; a stale write-back that
    would lower the newer claim is refused and counted."""
    server = start_redis(data_dir=tmp_path)
    store, other = make_store(server), make_store(server)
    try:
        await store.open("gus", "nodeA#1")
        assert (await store.checkpoint("nodeA", [("gus", "nodeA#1", 5)])).stored
        server.kill()
        await store.close("gus", "nodeA#1", 8)
        server = restart_redis(server)
        assert newest(store, "gus") == SessionRecord(-1, LIVE, "nodeA#1")  # the AOF kept it
        assert (await store.checkpoint("nodeA", [])).stored
        assert store.pending_closes == 1  # same data: nothing replayed
        # The held close is exact: the next connection continues at 9, not one past it.
        assert (await other.open("gus", "nodeB#1")).last_n == 8
        assert await store.flush_pending() == 0
        assert store.refused_writes == 1
        assert newest(store, "gus") == SessionRecord(8, LIVE, "nodeB#1")
    finally:
        await store.aclose()
        await other.aclose()
        server.stop()


async def test_redis_store__held_closes_are_bounded_by_refusing_opens(redis_server):
    """Past ``pending_max`` held closes the store refuses opens, even with Redis back, until
    they are written: held closes never grow without bound and none is dropped."""
    store = make_store(redis_server, pending_max=1)
    try:
        await store.open("ida", "nodeA#1")
        redis_server.stop()
        await store.close("ida", "nodeA#1", 6)
        restarted = restart_redis(redis_server)
        try:
            with pytest.raises(SessionStoreBusy):
                await store.open("jo", "nodeA#2")
            assert await store.flush_pending() == 1
            assert (await store.open("jo", "nodeA#2")).last_n == -1
        finally:
            restarted.stop()
    finally:
        await store.aclose()


async def test_redis_store__write_back_never_loses_to_a_lower_record(store):
    """Max wins: a close under a token Redis never saw still raises a lower record's count,
    and a close lower than a newer connection's record is refused and counted."""
    await store.open("hal", "nodeA#1")
    await store.close("hal", "nodeA#1", 4)
    await store.close("hal", "nodeA#2", 14)  # a connection whose claim never reached Redis
    assert newest(store, "hal").last_n == 14
    assert (await store.open("hal", "nodeB#1")).last_n >= 14
    await store.close("hal", "nodeA#3", 10)
    assert store.refused_writes == 1
    assert newest(store, "hal").last_n >= 14


async def test_redis_store__skewed_clocks_share_buckets_and_registry(redis_server):
    """Nodes whose clocks disagree by seconds still find each other's claims and live counts."""
    ahead = make_store(redis_server, ttl=4, skew=+6)
    behind = make_store(redis_server, ttl=4, skew=-6)
    client = redis.Redis(port=redis_server.port)
    try:
        await ahead.open("skew-1", "nodeA#1")
        await ahead.close("skew-1", "nodeA#1", 20)
        assert (await behind.open("skew-1", "nodeB#1")).last_n == 20
        # A node whose clock is behind by more than the TTL must stay in the registry.
        await behind.open("skew-2", "nodeB#2")
        assert (await behind.checkpoint("nodeB", [("skew-2", "nodeB#2", 30)])).stored
        assert (await ahead.checkpoint("nodeA", [])).stored
        client.delete(*client.keys(KEY_PREFIX + "*"))  # as if the claim had aged out
        assert (await ahead.open("skew-2", "nodeA#3")).last_n == 31
    finally:
        await ahead.aclose()
        await behind.aclose()
        client.close()


async def test_redis_store__restart_empty_replays_recent_closes(store, redis_server):
    """Redis restarted empty: the next checkpoint writes back the sessions closed here, and
    opens wait until every node had time to do the same."""
    other = make_store(redis_server, recovery_grace=0.5)
    try:
        await store.open("iris", "nodeA#1")
        await store.close("iris", "nodeA#1", 40)
        await store.checkpoint("nodeA", [])
        await other.checkpoint("nodeB", [])  # other knows the epoch too
        redis_server.stop()
        restarted = restart_redis(redis_server)
        try:
            with pytest.raises(SessionStoreBusy):
                await other.open("iris", "nodeB#1")  # other has not written its sessions back
            await store.checkpoint("nodeA", [])
            assert newest(store, "iris") == SessionRecord(40, CLOSED, "nodeA#1")
            await other.checkpoint("nodeB", [])
            with pytest.raises(SessionStoreBusy):
                await other.open("iris", "nodeB#1")  # within the grace
            await asyncio.sleep(0.6)
            assert (await other.open("iris", "nodeB#1")).last_n == 40
        finally:
            restarted.stop()
    finally:
        await other.aclose()


async def test_redis_store__slow_redis_refuses_rather_than_guessing(redis_server):
    """A Redis that answers too late raises SessionStoreBusy: no count is made up from memory."""
    slow = RedisSessionStore.from_url(
        redis_server.extra["url"], ttl=60, pool_size=2, socket_timeout=0.3
    )
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
        blocking = asyncio.get_running_loop().run_in_executor(
            None, blocker.eval, busy_for_a_second, 0
        )
        await asyncio.sleep(0.1)
        with pytest.raises(SessionStoreBusy):
            await slow.open("henry", "nodeA#1")
        await blocking
        assert slow.available  # slow is not down: no fallback, no outage logged
    finally:
        await slow.aclose()
        blocker.close()


# --- faults with real nodes

INTERVAL = 0.25


def node_pair(tmp_path, **kwargs):
    return start_cluster(
        names=("sess-a", "sess-b"),
        with_haproxy=False,
        with_agents=False,
        env={"WSTIME_TICK_INTERVAL": str(INTERVAL), **data_dir_env(tmp_path)},
        **kwargs,
    )


async def first_frame(url: str, client_id: str, timeout: float = 20.0) -> int:
    """Connect (retrying refusals with backoff like the page); return the first count seen."""
    client = TickClient(url, client_id)
    stop = asyncio.Event()
    run = asyncio.create_task(client.run(stop, max_delay=0.5))
    try:
        await client.wait_frames(1, timeout=timeout)
    finally:
        stop.set()
        await run
    return client.frames[0].n


async def test_sessions__redis_stall_then_crash_repeats_no_count(tmp_path):
    """Redis paused 1 s, its node killed 0.8 s in: every client resumes past what it saw, by
    at most two, on the other node."""
    cluster = node_pair(tmp_path)
    try:
        a, b = cluster.nodes
        clients = [TickClient(a.extra["ws_url"], f"stall-{i}") for i in range(50)]
        runs = [asyncio.create_task(client.run_once()) for client in clients]
        await asyncio.gather(*(client.wait_frames(4, timeout=30) for client in clients))
        cluster.redis.kill(signal.SIGSTOP)
        try:
            await asyncio.sleep(0.8)
            a.kill()
            await asyncio.sleep(0.2)
        finally:
            cluster.redis.kill(signal.SIGCONT)
        await asyncio.gather(*runs, return_exceptions=True)
        firsts = await asyncio.gather(
            *(first_frame(b.extra["ws_url"], client.client_id) for client in clients)
        )
    finally:
        cluster.stop()
    steps = {
        client.client_id: first - client.frames[-1].n
        for client, first in zip(clients, firsts, strict=False)
    }
    bad = {client_id: step for client_id, step in steps.items() if step not in (1, 2)}
    assert not bad, f"{len(bad)} of {len(clients)} resumed outside +1..+2: {bad}"


async def test_sessions__close_held_through_redis_restart_with_data_is_kept(tmp_path):
    """Redis killed while a client leaves and comes back; it restarts with its data: the other
    node resumes after everything the client saw, not at the pre-outage count."""
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    cluster = node_pair(tmp_path, redis_data_dir=redis_dir)
    try:
        a, b = cluster.nodes
        await frames_from(a.extra["ws_url"], "held", 3)
        cluster.redis.kill()
        # The client comes back to the same node and stays for six frames.
        again = TickClient(a.extra["ws_url"], "held")
        stop = asyncio.Event()
        run = asyncio.create_task(again.run(stop, max_delay=0.5))

        async def restart_later() -> None:
            with contextlib.suppress(TimeoutError):
                await again.wait_frames(6, timeout=2)
            cluster.redis = await asyncio.to_thread(restart_redis, cluster.redis)

        restart = asyncio.create_task(restart_later())
        try:
            await again.wait_frames(6, timeout=20)
        finally:
            stop.set()
            await run
            await restart
        # Give the node an interval or two to write back what it held.
        await asyncio.sleep(4 * INTERVAL)
        first = await first_frame(b.extra["ws_url"], "held")
    finally:
        cluster.stop()
    assert 1 <= first - again.frames[-1].n <= 2, (again.counts(), first)


async def test_sessions__session_closed_before_redis_restarts_empty_is_not_reset(tmp_path):
    """A client that closed just before Redis restarted empty resumes at last + 1 on another
    node: the node it left writes its recent closes back."""
    cluster = node_pair(tmp_path)
    try:
        a, b = cluster.nodes
        before = await frames_from(a.extra["ws_url"], "amnesia", 4)
        await asyncio.to_thread(
            wait_for,
            lambda: "client=amnesia event=disconnect" in a.log(),
            timeout=5,
            what="the close to be recorded",
        )
        await asyncio.sleep(2 * INTERVAL)  # both nodes have checkpointed since
        cluster.redis.stop()
        cluster.redis = restart_redis(cluster.redis)
        first = await first_frame(b.extra["ws_url"], "amnesia")
    finally:
        cluster.stop()
    assert first == before.frames[-1].n + 1, (before.counts(), first)


async def test_redis_store__a_burst_of_claims_shares_round_trips_and_resumes_exactly(store):
    """300 concurrent opens (a failover's burst): each claims exactly, in far fewer round trips."""
    from timer.sessions.redis_store import ClaimBatcher

    ids = [f"burst-{i}" for i in range(300)]
    await asyncio.gather(*(store.open(client_id, f"old#{i}") for i, client_id in enumerate(ids)))
    await asyncio.gather(
        *(store.close(client_id, f"old#{i}", 40 + i) for i, client_id in enumerate(ids))
    )
    batches: list[int] = []

    async def counted(claims):
        batches.append(len(claims))
        return await store._send_claims(claims)

    await store._claims.aclose()
    store._claims = ClaimBatcher(counted)
    openings = await asyncio.gather(
        *(store.open(client_id, f"new#{i}") for i, client_id in enumerate(ids))
    )
    assert [opening.last_n for opening in openings] == [40 + i for i in range(300)]
    assert sum(batches) == 300 and len(batches) < 30, batches
