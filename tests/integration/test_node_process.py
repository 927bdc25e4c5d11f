"""One real ``daphne wstime.asgi:application`` process, talked to as clients would."""

from __future__ import annotations

import asyncio
import random
import urllib.request

import pytest
import websockets

from localcluster.cluster import data_dir_env
from localcluster.processes import http_get, start_node

from .ticks import FRAME

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    running = start_node(
        name="plain-node",
        env={"WSTIME_TICK_INTERVAL": "0.2", **data_dir_env(tmp_path_factory.mktemp("node"))},
    )
    yield running
    running.stop()


async def test_node__command_line_client_without_origin_sees_the_ticks(node):
    """A WebSocket client library, no Origin header: frames count 0, 1, 2 from the node."""
    async with websockets.connect(f"{node.extra['ws_url']}?id=cli", origin=None) as ws:
        frames = [FRAME.match(await asyncio.wait_for(ws.recv(), 5)) for _ in range(3)]
    assert [(m["node"], int(m["n"])) for m in frames] == [("plain-node", n) for n in range(3)]


@pytest.mark.parametrize(
    "query, origin",
    [
        ("?id=" + "x" * 65, None),
        ("?id=%3Cscript%3E", None),
        ("?id=ok", "http://evil.example"),
    ],
)
async def test_node__bad_handshakes_get_403(node, query, origin):
    """Malformed ids and foreign Origins are refused with HTTP 403 before any frame."""
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(f"{node.extra['ws_url']}{query}", origin=origin)
    assert refused.value.response.status_code == 403


def test_node__serves_the_page_and_cacheable_static_files(node):
    """The page and its script come from the node itself; static files carry caching headers."""
    status, page = http_get(node.extra["url"] + "/")
    assert status == 200 and "serverAddress" in page and "/static/timer/app." in page
    with urllib.request.urlopen(node.extra["url"] + "/static/timer/app.js", timeout=5) as reply:
        assert reply.headers["Cache-Control"] == "public, max-age=3600"
        modified = reply.headers["Last-Modified"]
    request = urllib.request.Request(
        node.extra["url"] + "/static/timer/app.js", headers={"If-Modified-Since": modified}
    )
    assert http_get_status(request) == 304


def http_get_status(request: urllib.request.Request) -> int:
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def fast_node(tmp_path):
    running = start_node(
        name="fast-node", env={"WSTIME_TICK_INTERVAL": "0.05", **data_dir_env(tmp_path)}
    )
    yield running
    running.stop()


async def test_node__reloads_at_any_moment_resume_exactly(fast_node):
    """A client closing cleanly, even as a frame is due, resumes at exactly last seen + 1.

    Frames the node sends after the client's close frame arrived never reach the client, so the
    node must not count them; forty closes at random moments of a 50 ms tick find that race.
    """
    url = f"{fast_node.extra['ws_url']}?id=reloader"
    seen: list[list[int]] = []
    for _ in range(40):
        counts: list[int] = []
        async with websockets.connect(url, origin=None) as ws:
            for _ in range(2):
                counts.append(int(FRAME.match(await asyncio.wait_for(ws.recv(), 5))["n"]))
            await asyncio.sleep(random.uniform(0, 0.05))
            await ws.close()
            counts += [int(FRAME.match(text)["n"]) async for text in ws]
        seen.append(counts)
    broken = [
        (earlier, later)
        for earlier, later in zip(seen, seen[1:], strict=False)
        if later[0] != earlier[-1] + 1
    ]
    assert not broken, f"{len(broken)} of {len(seen) - 1} reloads did not resume at last + 1"
