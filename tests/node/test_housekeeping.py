"""One checkpoint round of a node against a real redis-server on loopback (marked integration):
leases are raised for the stored connections, and the node hears of a connection another node's
claim revoked, which gets none; what the node then does with it."""

from __future__ import annotations

import asyncio
import time

import pytest

from timer.node.housekeeping import checkpoint_once
from timer.node.hub import Connection, Hub
from timer.sessions.redis_store import RedisSessionStore

pytestmark = pytest.mark.integration


@pytest.fixture
async def stores(redis_url):
    """Two nodes' stores on one Redis."""
    made = [
        RedisSessionStore.from_url(redis_url, ttl=60, pool_size=2, recovery_grace=0.0)
        for _ in range(2)
    ]
    yield made
    for store in made:
        await store.aclose()


async def ignore(text: str) -> None:
    return None


async def ignore_close(code: int, reason: str) -> None:
    return None


async def test_checkpoint_once__a_revoked_connection_gets_no_lease_and_is_reported(stores):
    node_a, node_b = stores
    hub = Hub(node_name="a", interval=1.0, clock=time.monotonic)
    hub.lease = True
    connections = {}
    for client_id in ("stays", "moves"):
        token = f"nodeA#{client_id}"
        opening = await node_a.open(client_id, token)
        connections[client_id] = Connection(
            client_id=client_id,
            token=token,
            last_n=opening.last_n,
            send_text=ignore,
            close=ignore_close,
        )
        hub.attach(connections[client_id])
    # "moves" reconnected to node B; node B's takeover message has not reached node A.
    assert (await node_b.open("moves", "nodeB#1")).revoked == ("nodeA#moves",)
    reported: list[tuple[tuple[str, str], ...]] = []

    async def revoked(pairs: tuple[tuple[str, str], ...]) -> None:
        reported.append(pairs)

    assert await checkpoint_once(hub, node_a, "nodeA", revoked, handshake_floor=1)
    assert reported == [(("moves", "nodeA#moves"),)]
    assert connections["stays"].persisted == -1  # its lease: frame 0 may go
    assert connections["moves"].persisted == -2  # none: it sent nothing, and sends nothing


async def test_node__a_revoked_connection_no_takeover_reaches_is_closed_with_1013():
    """Revoked by a claim whose handshake never finished (no takeover message will come): after
    the grace its client is told to reconnect, not that another tab holds its session."""
    from timer.config.loader import config
    from timer.core.close_codes import CLOSE_TRY_AGAIN_LATER
    from timer.node.node import Node
    from timer.sessions.memory import MemorySessionStore

    node = Node(config(), name="revoking")
    node.hub = Hub(node_name="revoking", interval=1.0, clock=time.monotonic)
    node.store = MemorySessionStore(ttl=60)
    node.revoked_grace = 0.05
    closes: list[int] = []

    async def close(code: int, reason: str) -> None:
        closes.append(code)

    connection = Connection(client_id="c", token="n#1", last_n=4, send_text=ignore, close=close)
    node.hub.attach(connection)
    await node.revoked((("c", "n#1"), ("gone", "n#2")))  # noted; "gone" is not here
    assert connection.revoked_at is not None and closes == []
    await asyncio.sleep(0.06)
    await node.revoked((("c", "n#1"),))  # the next checkpoint reports it again
    assert closes == [CLOSE_TRY_AGAIN_LATER] and node.hub.get("c") is None
    assert (await node.store.open("c", "n#3")).last_n == 4  # its exact count was recorded


def test_node__handshake_floor_is_the_oldest_pending_token_else_the_next():
    """The floor a checkpoint keeps revocation marks above: handshakes not attached yet."""
    from timer.config.loader import config
    from timer.node.node import Node

    node = Node(config(), name="floor")
    node.new_token(), node.new_token()
    assert node.handshake_floor() == 3
    reservation = node.reservations.reserve("a")
    reservation.token = node.new_token()
    node.new_token()
    assert node.handshake_floor() == 3
    reservation.release()
    assert node.handshake_floor() == 5


async def test_housekeeping__a_resumed_session_goes_on_at_once_a_new_one_an_interval_later(
    stores,
):
    """With a 3 s interval, a session that has a count gets its next frame within half a
    second of attaching (an early checkpoint lists it; the lease waits for that), and a new
    session its first frame an interval after attaching, as ever."""
    from timer.node.housekeeping import run_housekeeping

    store = stores[0]
    interval = 3.0
    hub = Hub(node_name="a", interval=interval, clock=time.monotonic)
    hub.lease = True
    await store.open("earlier", "old#1")
    await store.close("earlier", "old#1", 41)
    frames: dict[str, list[tuple[float, str]]] = {"earlier": [], "new": []}

    def recorder(client_id: str):
        async def send(text: str) -> None:
            frames[client_id].append((time.monotonic(), text))

        return send

    async def no_revocations(pairs: tuple[tuple[str, str], ...]) -> None:
        raise AssertionError(f"nothing was revoked: {pairs}")

    tasks = [
        asyncio.create_task(hub.run_ticker()),
        asyncio.create_task(
            run_housekeeping(
                hub,
                store,
                channel=lambda: "nodeC",  # a live hash of its own: checkpoints start at 1
                interval=interval,
                revoked=no_revocations,
                handshake_floor=lambda: 0,
            )
        ),
    ]
    try:
        await asyncio.sleep(0.5)  # away from the housekeeping's own deadline
        attached_at = time.monotonic()
        for client_id, token in (("earlier", "nodeC#1"), ("new", "nodeC#2")):
            opening = await store.open(client_id, token)
            connection = Connection(
                client_id=client_id,
                token=token,
                last_n=opening.last_n,
                send_text=recorder(client_id),
                close=ignore_close,
            )
            hub.attach(connection, prompt=opening.last_n >= 0)
        async with asyncio.timeout(10):
            while not frames["new"]:
                await asyncio.sleep(0.01)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    (resumed_at, resumed), *_ = frames["earlier"]
    assert resumed == "a: you have been connected for 42 seconds"
    assert resumed_at - attached_at < 0.5
    (new_at, new), *_ = frames["new"]
    assert new == "a: you have been connected for 0 seconds"
    assert new_at - attached_at >= interval - 0.05
    assert hub.checkpoint_wanted is None  # the task cleared its hook on the way out
