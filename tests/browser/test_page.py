"""The page in real headless Chromium against real daphne nodes."""

from __future__ import annotations

import re
import time

import pytest

from localcluster.cluster import data_dir_env, start_cluster
from localcluster.processes import start_node

pytestmark = [pytest.mark.browser, pytest.mark.integration]

FRAME = re.compile(r"^(?P<node>[a-z0-9-]+): you have been connected for (?P<n>\d+) seconds$")


def frames(page) -> list[tuple[str, int]]:
    lines = page.locator("#messages div").all_inner_texts()
    return [(m["node"], int(m["n"])) for m in map(FRAME.match, lines) if m]


def wait_for_frames(page, count: int, timeout: float = 15.0) -> list[tuple[str, int]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = frames(page)
        if len(seen) >= count:
            return seen
        page.wait_for_timeout(100)
    raise AssertionError(
        f"saw {len(frames(page))} of {count} frames: "
        f"{page.locator('#messages').inner_text()[-800:]}"
    )


@pytest.fixture
def single_node(tmp_path):
    node = start_node(
        name="page-node", env={"WSTIME_TICK_INTERVAL": "0.2", **data_dir_env(tmp_path)}
    )
    yield node
    node.stop()


def test_page__connect_shows_the_count_going_up(page, single_node):
    """Open the page, press Connect, and watch the node's frames count 0, 1, 2 ..."""
    page.goto(single_node.extra["url"] + "/")
    assert page.input_value("#serverAddress") == f"ws://127.0.0.1:{single_node.port}"
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(0, 0, 0)"
    page.click("#connect")
    seen = wait_for_frames(page, 4)
    assert [n for _, n in seen[:4]] == [0, 1, 2, 3]
    assert {node for node, _ in seen} == {"page-node"}
    text = page.locator("#messages").inner_text()
    assert f"Connecting to ws://127.0.0.1:{single_node.port}" in text
    assert "establishing connection... retry #0" in text
    assert "connected to server" in text
    client_id = page.evaluate("sessionStorage.getItem('wstime.clientId')")
    assert re.fullmatch(r"[A-Za-z0-9._~-]{1,64}", client_id)


def test_page__a_node_that_lost_the_session_continues_from_the_page(page, tmp_path):
    """kill -9 of a lone node (sessions in its memory, now gone) and a fresh one on its port:
    the page sends the last count it saw, so the count goes on instead of starting at 0."""
    env = {"WSTIME_TICK_INTERVAL": "0.2", **data_dir_env(tmp_path)}
    node = start_node(name="first-life", env=env)
    try:
        page.goto(node.extra["url"] + "/")
        page.click("#connect")
        before = wait_for_frames(page, 4)
        assert page.evaluate("sessionStorage.getItem('wstime.lastSeen')") == str(before[-1][1])
        node.kill()
        node.stop()
        node = start_node(name="second-life", env=env, port=node.port)
        seen = wait_for_frames(page, len(before) + 3, timeout=30)
    finally:
        node.stop()
    last_of_first_life = max(n for name, n in seen if name == "first-life")
    after = [n for name, n in seen if name == "second-life"]
    assert after and after[0] == last_of_first_life + 1, seen


def test_page__address_is_normalised_and_backoff_is_jittered(page, single_node):
    """No ws://http://...; full-jitter delays stay under the exponential ceiling and its cap."""
    page.goto(single_node.extra["url"] + "/")
    normalise = "(a) => window.wstime.normaliseAddress(a, window.location).toString()"
    assert page.evaluate(normalise, "ws://http://example.com") == "ws://example.com/"
    assert page.evaluate(normalise, "https://example.com:8443") == "wss://example.com:8443/"
    assert page.evaluate(normalise, "example.com") == "ws://example.com/"
    assert page.evaluate(normalise, "  ") == f"ws://127.0.0.1:{single_node.port}/"
    delays = page.evaluate(
        "[0, 1, 3, 10, 40].map((a) => [0, 0.5, 0.999].map("
        "(r) => window.wstime.backoffDelay(a, () => r)))"
    )
    assert delays[0] == [0, 250, 499]
    assert delays[2] == [0, 2000, 3996]
    assert delays[4][2] < 30000  # capped


def test_page__survives_a_node_kill_through_haproxy(page, tmp_path):
    """Through HAProxy: kill -9 the serving node; the page reconnects and the count goes on."""
    cluster = start_cluster(
        names=("left-node", "right-node"),
        env={"WSTIME_TICK_INTERVAL": "0.25", **data_dir_env(tmp_path)},
    )
    try:
        page.goto(cluster.haproxy.extra["url"] + "/")
        page.click("#connect")
        before = wait_for_frames(page, 4)
        serving = before[-1][0]
        cluster.node_named(serving).kill()
        after_kill = len(before)
        seen = wait_for_frames(page, after_kill + 6, timeout=30)
    finally:
        cluster.stop()
    survivor = [n for node, n in seen if node != serving]
    assert survivor, "no frame from the surviving node"
    counts = [n for _, n in seen]
    steps = [b - a for a, b in zip(counts, counts[1:], strict=False)]
    assert all(step in (1, 2) for step in steps), counts
    assert "Connection lost with server." in page.locator("#messages").inner_text()


def test_page__reconnect_hints_honoured_and_hundreds_of_clients_spread(page, single_node):
    """The page's own retry logic: hints from 1012/1013 closes; 500 clients' delays spread."""
    page.goto(single_node.extra["url"] + "/")
    hint = "(args) => window.wstime.reconnectHint(args[0], args[1])"
    assert page.evaluate(hint, [1012, "node restarting; reconnect in 734 ms"]) == 734
    assert page.evaluate(hint, [1013, "node overloaded; reconnect in 12 ms"]) == 12
    assert page.evaluate(hint, [1000, "reconnect in 5 ms"]) is None
    assert page.evaluate(hint, [1012, "no hint"]) is None
    # 500 clients dropped at the same instant (a node killed): their first and third retries.
    for attempt, ceiling in [(0, 500), (2, 2000)]:
        delays = page.evaluate(
            "(a) => Array.from({length: 500}, () => window.wstime.backoffDelay(a))", attempt
        )
        assert all(0 <= d < ceiling for d in delays)
        tenths = [0] * 10
        for delay in delays:
            tenths[delay * 10 // ceiling] += 1
        assert max(tenths) < 100, tenths  # even share is 50 per tenth: no herd
