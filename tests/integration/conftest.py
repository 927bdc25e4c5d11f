"""Real processes for integration tests: Redis, daphne nodes, HAProxy, on loopback."""

from __future__ import annotations

import pytest

from localcluster.processes import start_redis


@pytest.fixture
def redis_server():
    """A throwaway redis-server on a free loopback port, stopped by PID afterwards."""
    server = start_redis()
    yield server
    server.stop()
