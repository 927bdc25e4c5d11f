"""Shared fixtures: a fresh node per test, tick intervals in milliseconds."""

from __future__ import annotations

import pytest

from timer.node.node import get_node, reset_node

MS = 0.001  # tick intervals and timeouts in tests are written in milliseconds


@pytest.fixture
def fast_ticks(settings):
    """Tick every 50 ms and start from a fresh node; stop its tasks afterwards."""
    settings.WSTIME_TICK_INTERVAL = 50 * MS
    reset_node()
    yield 50 * MS
    reset_node()


@pytest.fixture
async def node(fast_ticks):
    """The process's node with its background tasks running, stopped after the test."""
    current = get_node()
    await current.ensure_started()
    yield current
    await current.stop()


@pytest.fixture(scope="session", autouse=True)
def static_manifest():
    """Build the hashed static files once, as a node does at start, so that pages render."""
    from timer.web.static_files import collect_static

    collect_static()
