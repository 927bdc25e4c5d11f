"""Hostile clients against a real node: over-limit and unfinished frames, empty close frames.

Each client here speaks WebSocket on a bare socket (:mod:`.raw_ws`), so it can send what no
library would: several over-limit frames in one TCP write, fragments it never finishes.
"""

from __future__ import annotations

import json
import select
import threading
import time

import psutil
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from localcluster.cluster import data_dir_env
from localcluster.processes import http_get, start_node, wait_for
from timer.core.close_codes import CLOSE_MESSAGE_TOO_BIG, CLOSE_NO_STATUS_RECEIVED

from .raw_ws import OP_CLOSE, OP_CONTINUATION, OP_TEXT, RawClient, frame

pytestmark = pytest.mark.integration

LIMIT = 1024  # WSTIME_MAX_CLIENT_FRAME's default; the nodes here run without daphne flags


def open_connections(node) -> int:
    status, body = http_get(f"{node.extra['url']}/healthcheck?format=json")
    assert status in (200, 503), body
    return json.loads(body)["connections"]


def close_codes(frames) -> list[int | None]:
    return [f.close_code for f in frames if f.opcode == OP_CLOSE]


@pytest.fixture
def capped_node(tmp_path):
    running = start_node(
        name="capped-node",
        env={"WSTIME_CONNECTION_CAP": "3", "WSTIME_TICK_INTERVAL": "0.2", **data_dir_env(tmp_path)},
    )
    yield running
    running.stop()


@pytest.fixture
def plain_node(tmp_path):
    running = start_node(
        name="plain-node", env={"WSTIME_TICK_INTERVAL": "0.2", **data_dir_env(tmp_path)}
    )
    yield running
    running.stop()


async def test_hostile__over_limit_frames_in_one_write_leak_no_slot(capped_node):
    """Three clients each write three over-limit frames at once: one 1009 each, no slot lost.

    The node is capped at three connections, so one leaked connection per client would make it
    answer 503 to everyone after them.
    """
    for i in range(3):
        client = RawClient(capped_node.port, f"/?id=hostile-{i}")
        assert client.status == 101
        client.send(b"".join(frame(OP_TEXT, b"x" * (2 * LIMIT)) for _ in range(3)))
        codes = close_codes(client.frames(timeout=5))
        client.close()
        assert codes == [CLOSE_MESSAGE_TOO_BIG], f"client {i} got closes {codes}"
    wait_for(
        lambda: open_connections(capped_node) == 0,
        timeout=10,
        what="the hostile connections to be released",
    )
    async with websockets.connect(f"{capped_node.extra['ws_url']}?id=normal") as ws:
        assert (await ws.recv()).startswith("capped-node: ")
    assert "Traceback" not in capped_node.log()


async def test_hostile__empty_close_frame_leaves_metrics_scrapable(plain_node):
    """A close frame without a status code (a browser's plain close()) is counted as 1005."""
    client = RawClient(plain_node.port, "/?id=quiet-closer")
    client.send(frame(OP_CLOSE, b""))
    replies = [f for f in client.frames(timeout=5) if f.opcode == OP_CLOSE]
    client.close()
    assert len(replies) == 1

    def scraped():
        status, body = http_get(f"{plain_node.extra['url']}/metrics")
        assert status == 200, body[-500:]
        families = {f.name: f for f in text_string_to_metric_families(body)}
        closes = families["wstime_connections_closed"].samples
        return {s.labels["code"]: s.value for s in closes if s.name.endswith("_total")}

    closes = wait_for(
        lambda: scraped().get(str(CLOSE_NO_STATUS_RECEIVED)),
        timeout=10,
        what="the 1005 close in /metrics",
    )
    assert closes == 1


def test_hostile__oversized_frame_closed_by_its_header(plain_node):
    """A frame announcing 2 MiB gets 1009 from its header alone, before its payload arrives."""
    client = RawClient(plain_node.port, "/?id=big-frame")
    # FIN + binary, masked, 64-bit length, a zero mask, then only the first 4 KiB.
    header = bytes([0x82, 0x80 | 127]) + (2 * 1024 * 1024).to_bytes(8, "big") + b"\0\0\0\0"
    client.send(header + b"\0" * 4096)
    codes = close_codes(client.frames(timeout=5))
    client.close()
    assert codes == [CLOSE_MESSAGE_TOO_BIG]


def test_hostile__fragments_past_the_limit_close_with_1009(plain_node):
    """Continuation frames each under the limit, summing past it, close the connection."""
    client = RawClient(plain_node.port, "/?id=fragments")
    client.send(frame(OP_TEXT, b"a" * 600, fin=False))
    client.send(frame(OP_CONTINUATION, b"b" * 600, fin=False))
    codes = close_codes(client.frames(timeout=5))
    client.close()
    assert codes == [CLOSE_MESSAGE_TOO_BIG]


def parked_fragments(port: int, index: int, fragments: int = 960, per_write: int = 64) -> list:
    """Send up to ~1 MB of unfinished fragments; stop at the server's close; return its frames."""
    client = RawClient(port, f"/?id=parker-{index}")
    piece = frame(OP_TEXT, b"p" * 1000, fin=False)
    more = frame(OP_CONTINUATION, b"q" * 1000, fin=False)
    sent = 0
    try:
        while sent < fragments:
            readable, _, _ = select.select([client.sock], [], [], 0)
            if readable:
                break  # the server answered (a close frame): stop sending
            client.send(b"".join(piece if sent + k == 0 else more for k in range(per_write)))
            sent += per_write
    except OSError:
        pass
    return [client, client.frames(timeout=5)]


def test_hostile__unfinished_fragments_keep_memory_bounded(plain_node):
    """50 clients parking unfinished fragments: each gets 1009; the node's RSS grows < 16 MiB.

    Before the limit was enforced in the protocol, each could park up to 1 MiB (daphne's default
    message size) in a message it never finishes: 50 MiB for these 50.
    """
    process = psutil.Process(plain_node.pid)
    baseline = process.memory_info().rss
    peak = [baseline]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    held = []
    try:
        for i in range(50):
            held.append(parked_fragments(plain_node.port, i))
        time.sleep(0.5)  # the node has read everything sent
    finally:
        stop.set()
        sampler.join()
        for client, _ in held:
            client.close()
    codes = [close_codes(frames) for _, frames in held]
    assert codes == [[CLOSE_MESSAGE_TOO_BIG]] * 50
    growth = peak[0] - baseline
    assert growth < 16 * 1024 * 1024, f"RSS grew by {growth / 2**20:.1f} MiB"


OP_PING = 0x9


@pytest.fixture
def pinging_node(tmp_path):
    running = start_node(
        name="pinging-node",
        env={"WSTIME_TICK_INTERVAL": "0.2", **data_dir_env(tmp_path)},
        daphne_args=("--ping-interval", "1", "--ping-timeout", "2"),
    )
    yield running
    running.stop()


def test_hostile__a_client_that_never_answers_pings_is_dropped(pinging_node):
    """daphne's keepalive still pings every connection and drops one that does not answer.

    The checks run a slice of the connections at a time (timer/server/sliced_checks.py); each
    connection is still checked once per 2 s pass, so the ping comes within about 3 s and the
    drop 2 s after it.
    """
    started = time.monotonic()
    client = RawClient(pinging_node.port, "/?id=never-pongs")
    frames = client.frames(timeout=15)
    ended = time.monotonic() - started
    client.close()
    assert any(f.opcode == OP_PING for f in frames), [f.opcode for f in frames]
    assert ended < 10, f"still open after {ended:.1f} s"
    assert any(f.opcode == OP_TEXT for f in frames)  # it ticked until then
