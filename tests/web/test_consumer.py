"""The WebSocket endpoint driven in-process with Channels' WebsocketCommunicator."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
import tracemalloc

import pytest
from channels.testing import WebsocketCommunicator

from timer.core.close_codes import (
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_NO_STATUS_RECEIVED,
    CLOSE_SESSION_TAKEN_OVER,
)
from timer.web.routing import websocket_application

pytestmark = pytest.mark.django_db(transaction=True)

FRAME = re.compile(r"^(?P<name>[a-z0-9-]+): you have been connected for (?P<n>\d+) seconds$")


def communicator(path: str = "/?id=abc", origin: bytes | None = b"http://localhost"):
    headers = [(b"origin", origin)] if origin is not None else []
    return WebsocketCommunicator(websocket_application(), path, headers=headers)


async def counts(comm: WebsocketCommunicator, frames: int) -> list[int]:
    result = []
    for _ in range(frames):
        match = FRAME.match(await comm.receive_from(timeout=2))
        assert match, "frame does not have the original's format"
        result.append(int(match["n"]))
    return result


async def test_consumer__ticks_count_up_from_zero_with_the_node_name(node):
    """Frames read '<node>: you have been connected for N seconds', N = 0, 1, 2 ..."""
    comm = communicator()
    connected, _ = await comm.connect()
    assert connected
    text = await comm.receive_from(timeout=2)
    assert text == f"{node.name}: you have been connected for 0 seconds"
    assert await counts(comm, 3) == [1, 2, 3]
    await comm.disconnect()


async def test_consumer__first_frame_one_interval_after_connecting(node):
    """As in the original, nothing arrives before one interval has passed."""
    comm = communicator()
    await comm.connect()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await comm.receive_from(timeout=2)
    assert loop.time() - started >= node.config.tick_interval * 0.9
    await comm.disconnect()


async def test_consumer__missing_id_gets_one_assigned(node):
    """A client that sends no id is accepted and ticks like any other."""
    comm = communicator("/")
    connected, _ = await comm.connect()
    assert connected
    assert await counts(comm, 2) == [0, 1]
    assert len(node.hub) == 1
    await comm.disconnect()


async def test_consumer__resumes_past_the_count_the_client_last_saw(node):
    """A session the node knows nothing of resumes one past the client's own last count."""
    comm = communicator("/?id=remembers&last=41")
    connected, _ = await comm.connect()
    assert connected
    assert await counts(comm, 2) == [42, 43]
    await comm.disconnect()


async def test_consumer__a_stored_count_beyond_the_clients_wins(node):
    """The client's last count is a floor: a higher stored count is not lowered by it."""
    first = communicator("/?id=ahead")
    await first.connect()
    shown = await counts(first, 3)
    await first.disconnect()
    await asyncio.sleep(0.05)  # the close is recorded
    again = communicator("/?id=ahead&last=0")
    await again.connect()
    assert await counts(again, 1) == [shown[-1] + 1]
    await again.disconnect()


@pytest.mark.parametrize(
    "path",
    [
        "/?id=" + "x" * 65,
        "/?id=a%20b",
        "/?id=a&id=b",
        "/?id=%00",
        "/?id=abc&last=-3",
        "/?id=abc&last=x",
    ],
)
async def test_consumer__malformed_id_refused_at_handshake(node, path, caplog):
    """A malformed or over-long id is refused before accept (HTTP 403) and says why in the log."""
    comm = communicator(path)
    connected, _ = await comm.connect()
    assert not connected
    assert "bad client id" in caplog.text
    assert len(node.hub) == 0


async def test_consumer__other_paths_refused(node):
    """Only / speaks WebSocket."""
    comm = communicator("/other?id=abc")
    connected, _ = await comm.connect()
    assert not connected


@pytest.mark.parametrize(
    "origin, accepted",
    [
        (b"http://localhost", True),
        (b"http://127.0.0.1:8000", True),
        (b"https://localhost:8443", True),
        (None, True),  # command-line clients send no Origin
        (b"http://evil.example", False),
        (b"http://localhost.evil.example", False),
        (b"http://evil.example/localhost", False),
        (b"null", False),
    ],
)
async def test_consumer__origin_checked_against_allowed_hosts(node, origin, accepted):
    """A browser's foreign or look-alike Origin is refused; a missing one is accepted."""
    comm = communicator(origin=origin)
    connected, _ = await comm.connect()
    assert connected is accepted
    if connected:
        await comm.disconnect()


async def test_consumer__missing_origin_refused_when_required(node, settings):
    """WSTIME_REQUIRE_ORIGIN turns command-line clients away too."""
    settings.WSTIME_REQUIRE_ORIGIN = True
    comm = communicator(origin=None)
    connected, _ = await comm.connect()
    assert not connected


async def test_consumer__small_client_frames_ignored(node):
    """Frames from the client are ignored: the ticks go on."""
    comm = communicator()
    await comm.connect()
    await comm.send_to(text_data="hello")
    await comm.send_to(bytes_data=b"\x00" * 100)
    assert await counts(comm, 2) == [0, 1]
    await comm.disconnect()


async def test_consumer__oversized_client_frame_closes_with_1009(node):
    """A frame over WSTIME_MAX_CLIENT_FRAME closes the connection with Message Too Big."""
    comm = communicator()
    await comm.connect()
    await comm.send_to(text_data="x" * (node.config.max_client_frame + 1))
    output = await comm.receive_output(timeout=2)
    assert output == {"type": "websocket.close", "code": CLOSE_MESSAGE_TOO_BIG}
    await comm.wait()


async def sent_before_disconnect(comm: WebsocketCommunicator) -> list[int]:
    """Disconnect, then return the counts of frames that were still on their way."""
    await comm.disconnect()
    late = []
    while not await comm.receive_nothing(timeout=0):
        output = await comm.receive_output()
        if output["type"] == "websocket.send":
            late.append(int(FRAME.match(output["text"])["n"]))
    return late


async def test_consumer__reconnect_resumes_the_count(node):
    """A reconnect with the same id continues where the last frame left off."""
    first = communicator("/?id=resume-me")
    await first.connect()
    seen = await counts(first, 3)
    seen += await sent_before_disconnect(first)
    assert seen[:3] == [0, 1, 2]
    second = communicator("/?id=resume-me")
    await second.connect()
    assert await counts(second, 2) == [seen[-1] + 1, seen[-1] + 2]
    await second.disconnect()


async def test_consumer__second_connection_takes_the_session_over(node):
    """The older connection is closed with 4001; the newer one counts on, without a repeat."""
    older = communicator("/?id=twice")
    await older.connect()
    assert await counts(older, 2) == [0, 1]
    newer = communicator("/?id=twice")
    await newer.connect()
    closed = None
    while closed is None:  # a frame may have been on its way before the takeover
        output = await older.receive_output(timeout=2)
        if output["type"] == "websocket.close":
            closed = output
    assert closed["code"] == CLOSE_SESSION_TAKEN_OVER
    first_new = (await counts(newer, 1))[0]
    assert first_new in (2, 3)
    assert len(node.hub) == 1
    assert node.counters.takeovers == 1
    await newer.disconnect()


async def test_consumer__no_leaks_after_many_connect_disconnect_cycles(node, caplog):
    """Thousands of cycles leave no task, no hub entry and no growing memory behind."""
    caplog.set_level(logging.WARNING)  # pytest keeps every captured record in memory

    async def cycles(count: int) -> None:
        for i in range(count):
            comm = communicator(f"/?id=cycle-{i % 20}")
            connected, _ = await comm.connect()
            assert connected
            await comm.disconnect()

    await cycles(200)  # warm caches
    gc.collect()
    tasks_before = len(asyncio.all_tasks())
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    await cycles(2000)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    growth = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert len(node.hub) == 0
    assert len(node.hub.wheel) == 0
    assert len(asyncio.all_tasks()) == tasks_before
    assert growth < 256 * 1024, f"memory grew by {growth} bytes over 2000 cycles"


async def outputs_until_quiet(
    comm: WebsocketCommunicator, quiet: float = 0.3, limit: int = 100
) -> list[dict]:
    """The outputs the application sends until it is silent for ``quiet`` s (at most ``limit``)."""
    result = []
    while len(result) < limit and not await comm.receive_nothing(timeout=quiet):
        result.append(await comm.receive_output())
    return result


async def test_consumer__over_limit_frames_in_a_row_close_once(node):
    """Three over-limit frames before the close lands: one close, and the connection released."""
    comm = communicator("/?id=flooder")
    await comm.connect()
    for _ in range(3):
        await comm.send_to(text_data="x" * (node.config.max_client_frame + 1))
    closes = [o for o in await outputs_until_quiet(comm) if o["type"] == "websocket.close"]
    assert closes == [{"type": "websocket.close", "code": CLOSE_MESSAGE_TOO_BIG}]
    await comm.disconnect(code=CLOSE_MESSAGE_TOO_BIG)
    assert len(node.hub) == 0


async def test_consumer__instance_cancelled_without_disconnect_releases_its_connection(node):
    """An application instance that ends without a disconnect (daphne cancels it) frees its slot
    and records its count, so the next connection resumes at exactly the next frame."""
    comm = communicator("/?id=cancelled")
    await comm.connect()
    seen = await counts(comm, 2)
    comm.future.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await comm.future
    assert len(node.hub) == 0 and len(node.hub.wheel) == 0
    outputs = []
    while not comm.output_queue.empty():
        outputs.append(comm.output_queue.get_nowait())
    late = [int(FRAME.match(o["text"])["n"]) for o in outputs if o["type"] == "websocket.send"]
    again = communicator("/?id=cancelled")
    await again.connect()
    assert await counts(again, 1) == [(seen + late)[-1] + 1]
    await again.disconnect()


async def test_consumer__close_frame_without_code_counted_as_1005(node):
    """The ASGI disconnect of an empty close frame has code None: counted as 1005."""
    comm = communicator("/?id=quiet")
    await comm.connect()
    await comm.disconnect(code=None)
    assert node.counters.closes_by_code == {str(CLOSE_NO_STATUS_RECEIVED): 1}


def slow_opens(node, delay: float = 0.05) -> list[str]:
    """Make every session open wait ``delay`` first: handshakes then overlap as under load.

    Returns the list the tokens of the opens are appended to, as each starts.
    """
    store_open = node.store.open
    tokens: list[str] = []

    async def open_later(client_id: str, token: str, *, last_seen: int = -1):
        tokens.append(token)
        await asyncio.sleep(delay)
        return await store_open(client_id, token, last_seen=last_seen)

    node.store.open = open_later
    return tokens


async def handshake(path: str, window: float = 0.5) -> tuple[WebsocketCommunicator, list[dict]]:
    """Connect; return the communicator and every output of the first ``window`` seconds."""
    comm = communicator(path)
    connected, _ = await comm.connect(timeout=5)
    assert connected
    outputs = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + window
    while (left := deadline - loop.time()) > 0:
        with contextlib.suppress(TimeoutError):
            outputs.append(await asyncio.wait_for(comm.output_queue.get(), left))
    return comm, outputs


async def test_consumer__two_handshakes_with_one_id_at_once__one_survives(node):
    """Simultaneous handshakes with one id: the older gets 4001, the newer resumes exactly."""
    first = communicator("/?id=racer")
    await first.connect()
    last = (await counts(first, 2))[-1]
    last = ([last] + await sent_before_disconnect(first))[-1]
    slow_opens(node)
    (older, older_out), (newer, newer_out) = await asyncio.gather(
        handshake("/?id=racer"), handshake("/?id=racer")
    )
    assert [o.get("code") for o in older_out if o["type"] == "websocket.close"] == [
        CLOSE_SESSION_TAKEN_OVER
    ]
    assert not [o for o in newer_out if o["type"] == "websocket.close"]
    frames = [int(FRAME.match(o["text"])["n"]) for o in newer_out if o["type"] == "websocket.send"]
    assert frames[:1] == [last + 1], "the newer connection must resume at exactly last + 1"
    assert len(node.hub) == 1 and node.counters.takeovers == 1
    assert len(node.reservations) == 0
    await older.disconnect(code=CLOSE_SESSION_TAKEN_OVER)
    await newer.disconnect()


async def test_consumer__takeover_message_during_the_handshake_is_not_lost(node):
    """Another node's takeover that arrives while the older connection is still in its
    handshake closes that connection with 4001 once the handshake ends."""
    tokens = slow_opens(node, delay=0.2)
    comm = communicator("/?id=crossed")
    connecting = asyncio.create_task(comm.connect(timeout=5))
    async with asyncio.timeout(2):
        while not tokens:  # the handshake is claiming the session
            await asyncio.sleep(0.005)
    await node.layer.send(
        node.channel_name, {"type": "session.takeover", "client_id": "crossed", "token": tokens[0]}
    )
    connected, _ = await connecting
    assert connected
    closes = [o for o in await outputs_until_quiet(comm) if o["type"] == "websocket.close"]
    assert [c["code"] for c in closes] == [CLOSE_SESSION_TAKEN_OVER]
    assert len(node.hub) == 0 and node.counters.takeovers == 1
    await comm.disconnect(code=CLOSE_SESSION_TAKEN_OVER)


async def test_consumer__hostile_peer_and_origin_are_quoted_in_logs(node, caplog):
    """A forged peer address (from a proxy header) and Origin cannot forge fields or lines."""
    forged = 'x" node=forged\n\x1b[31mred' + "A" * 500
    comm = WebsocketCommunicator(
        websocket_application(), "/?id=" + "x" * 65, headers=[(b"origin", b"http://localhost")]
    )
    comm.scope["client"] = [forged, 1]
    assert not (await comm.connect())[0]
    evil = communicator("/?id=ok", origin=b'http://evil.example/"\x1b[2J x=1')
    assert not (await evil.connect())[0]
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("timer.")]
    assert len(lines) >= 2
    for line in lines:
        assert "\n" not in line and "\x1b" not in line and len(line) < 400, line
        # Read as key=value fields (values quoted or bare), only the genuine ones appear.
        fields = re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"(?:\.\.\.)?|\S+)', line)
        assert ("node", node.name) in fields and ("x", "1") not in fields, line
        assert [key for key, _ in fields].count("node") == 1, line
