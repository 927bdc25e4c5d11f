"""The hub's ticker when a frame cannot be sent: the count stays what the client saw."""

import asyncio
import time

from timer.core.close_codes import CLOSE_INTERNAL_ERROR
from timer.node.hub import Connection, Hub
from timer.server import ClientDisconnected

INTERVAL = 0.02


class Socket:
    """Records frames and closes; raises ``fail_with`` from the send numbered ``fail_at``."""

    def __init__(self, fail_at: int, fail_with: Exception) -> None:
        self.fail_at, self.fail_with = fail_at, fail_with
        self.frames: list[str] = []
        self.closes: list[int] = []
        self.attempts = 0

    async def send_text(self, text: str) -> None:
        self.attempts += 1
        if self.attempts == self.fail_at:
            raise self.fail_with
        self.frames.append(text)

    async def close(self, code: int, reason: str) -> None:
        self.closes.append(code)


async def tick_until_failure(socket: Socket) -> tuple[Hub, Connection]:
    hub = Hub(node_name="unit", interval=INTERVAL, clock=time.monotonic)
    connection = Connection(
        client_id="c", token="t", last_n=-1, send_text=socket.send_text, close=socket.close
    )
    hub.attach(connection)
    ticker = asyncio.create_task(hub.run_ticker())
    try:
        async with asyncio.timeout(5):
            while hub.stats.send_errors == 0:
                await asyncio.sleep(INTERVAL)
        await asyncio.sleep(5 * INTERVAL)  # further steps must not tick it again
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
    return hub, connection


async def test_hub__client_gone_mid_send__frame_uncounted_connection_left_to_disconnect():
    """A send the server refuses (the client closed) is not counted and not retried."""
    socket = Socket(fail_at=3, fail_with=ClientDisconnected("gone"))
    hub, connection = await tick_until_failure(socket)
    assert socket.frames == [
        "unit: you have been connected for 0 seconds",
        "unit: you have been connected for 1 seconds",
    ]
    assert connection.last_n == 1 and connection.closing
    assert hub.get("c") is connection, "its disconnect detaches it and persists the session"
    assert socket.attempts == 3 and socket.closes == []
    assert hub.detach(connection)


async def test_hub__unexpected_send_error__closed_with_1011():
    """Any other failure is a fault on the node: the connection is closed, to go elsewhere."""
    socket = Socket(fail_at=1, fail_with=RuntimeError("bug"))
    hub, connection = await tick_until_failure(socket)
    assert connection.last_n == -1 and socket.frames == []
    assert socket.closes == [CLOSE_INTERNAL_ERROR] and socket.attempts == 1
    assert hub.stats.send_errors == 1


async def test_hub__lease__one_frame_past_the_stored_count_until_confirmed():
    """With a shared store a connection sends nothing until a checkpoint lists it, then at most
    one frame past its stored count; held frames are not counted, and a checkpoint's confirm
    releases a just-held frame at once."""
    interval = 0.1
    hub = Hub(node_name="unit", interval=interval, clock=time.monotonic)
    hub.lease = True
    socket = Socket(fail_at=0, fail_with=RuntimeError("never raised"))
    connection = Connection(
        client_id="c", token="t", last_n=4, send_text=socket.send_text, close=socket.close
    )
    hub.attach(connection)
    ticker = asyncio.create_task(hub.run_ticker())

    async def held(count: int) -> None:
        async with asyncio.timeout(5):
            while hub.stats.frames_held < count:
                await asyncio.sleep(0.002)

    try:
        await held(1)  # the claim alone allows no frame
        assert socket.frames == [] and connection.last_n == 4
        await hub.confirm([(connection, 4)])
        assert socket.frames == ["unit: you have been connected for 5 seconds"]
        await held(2)
        assert connection.last_n == 5
        await hub.confirm([(connection, 5)])
        assert socket.frames[-1] == "unit: you have been connected for 6 seconds"
        await held(3)
        await asyncio.sleep(2.5 * interval)  # more due steps: still held
        await hub.confirm([(connection, 5)])  # an older count raises nothing
        assert len(socket.frames) == 2 and connection.last_n == 6
        assert connection.persisted == 5
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)


async def test_hub__no_lease__ticks_freely():
    """Without a shared store (one node in memory) nothing holds frames back."""
    hub = Hub(node_name="unit", interval=INTERVAL, clock=time.monotonic)
    socket = Socket(fail_at=0, fail_with=RuntimeError("never raised"))
    hub.attach(
        Connection(
            client_id="c", token="t", last_n=-1, send_text=socket.send_text, close=socket.close
        )
    )
    ticker = asyncio.create_task(hub.run_ticker())
    try:
        async with asyncio.timeout(5):
            while len(socket.frames) < 4:
                await asyncio.sleep(INTERVAL)
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
