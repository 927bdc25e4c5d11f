"""Fixtures of the node's tests."""

from __future__ import annotations

import pytest

from localcluster.processes import start_redis


@pytest.fixture(scope="module")
def redis_url():
    """A redis-server on a free loopback port, for the tests of one module."""
    server = start_redis()
    yield server.extra["url"]
    server.stop()
