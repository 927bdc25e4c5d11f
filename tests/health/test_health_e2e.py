"""End to end: a real daphne node measuring ``lo`` is pushed over its threshold by real traffic.

Other processes on this machine also talk over loopback, so the node's capacity is set from a
short measurement of the loopback's background rate (at least 8 Mbit/s, ten times the
background), and the flood is three times that capacity, bounded in bytes and time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcluster.processes import Managed, http_get, start_node
from localcluster.traffic import LoopbackFlood, loopback_bits_per_second

pytestmark = pytest.mark.integration

WINDOW = 2.0  # seconds; WSTIME_NET_WINDOW of the node
INTERVAL = 0.2  # seconds; WSTIME_SAMPLE_INTERVAL
SLACK = 2.0  # seconds of scheduling delay tolerated on a busy 2-core machine
MIN_CAPACITY = 8_000_000  # bits/s
FLOOD_FACTOR = 3  # flood at this multiple of the capacity
FLOOD_SECONDS = 10.0  # the flood's byte budget is this many seconds of it


def wait_for_status(
    node: Managed, path: str, want_status: int, timeout: float
) -> tuple[float, str]:
    """Poll ``path`` every 50 ms until it answers ``want_status``; return elapsed and body."""
    start = time.monotonic()
    status, body = 0, ""
    while time.monotonic() - start < timeout:
        status, body = http_get(node.extra["url"] + path)
        if status == want_status:
            return time.monotonic() - start, body
        time.sleep(0.05)
    raise AssertionError(
        f"{path} did not answer {want_status} within {timeout}s; last: {status} {body[:300]!r}"
    )


@pytest.fixture
def measured_node(tmp_path: Path) -> Iterator[tuple[Managed, int]]:
    """A node measuring lo with a capacity well above the background traffic; stopped by PID."""
    capacity = max(MIN_CAPACITY, int(10 * loopback_bits_per_second()))
    node = start_node(
        name="health-e2e",
        env={
            "WSTIME_NET_INTERFACES": "lo",
            "WSTIME_LINK_CAPACITY": str(capacity),
            "WSTIME_NET_WINDOW": str(WINDOW),
            "WSTIME_SAMPLE_INTERVAL": str(INTERVAL),
            "WSTIME_DATA_DIR": str(tmp_path),
            "WSTIME_LOG_LEVEL": "WARNING",
        },
    )
    try:
        yield node, capacity
    finally:
        node.stop()


def test_healthcheck__real_loopback_traffic_fills_and_frees_the_node(measured_node):
    """Flooding lo turns /healthcheck to 503 within the window; it returns to 200 after."""
    node, capacity = measured_node
    wait_for_status(node, "/healthcheck", 200, timeout=10)  # the first request starts the sampler
    # Let a whole window of background traffic be measured, so that the 503 below comes from
    # the moving average rather than from the first few samples.
    time.sleep(WINDOW)

    rate = FLOOD_FACTOR * capacity // 8
    with LoopbackFlood(rate, budget=int(rate * FLOOD_SECONDS)) as flood:
        took, body = wait_for_status(node, "/healthcheck", 503, timeout=WINDOW + SLACK)
        assert body == "server is overloaded"
        detail = json.loads(http_get(node.extra["url"] + "/healthcheck?format=json")[1])
    assert 0.3 * WINDOW <= took <= WINDOW + SLACK  # averaged: not at the first busy sample
    assert flood.sent <= flood.budget
    assert (detail["status"], detail["full_by"], detail["interfaces"]) == (
        "overloaded",
        ["network"],
        ["lo"],
    )
    assert (detail["capacity_bits_per_second"], detail["capacity_source"]) == (
        capacity,
        "WSTIME_LINK_CAPACITY",
    )

    recovered, body = wait_for_status(node, "/healthcheck", 200, timeout=WINDOW + SLACK)
    assert body == "ok"
