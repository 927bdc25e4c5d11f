"""Fixtures for the health check: a fake clock, psutil's own tuples, a started node."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest

from timer.config.loader import load_config
from timer.core.health_policy import Policy
from timer.health.monitor import HealthMonitor
from timer.health.runtime import install_monitor, settings_policy
from timer.node.node import Node, get_node, reset_node

try:  # psutil >= 7.1 keeps its named tuples here
    from psutil._ntuples import snetio, snicstats
except ImportError:  # pragma: no cover - older psutil
    from psutil._common import snetio, snicstats

__all__ = ["FakeClock", "snetio", "snicstats", "nic", "io", "table_policy"]


class FakeClock:
    """A monotonic clock that only moves when a test moves it."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def table_policy(**changes: Any) -> Policy:
    """Return the policy the settings table's defaults describe, with ``changes`` applied."""
    return replace(settings_policy(load_config({}, SimpleNamespace())), **changes)


def nic(speed_mbit: int = 0, *, isup: bool = True, flags: str = "up,running") -> snicstats:
    """Return a psutil ``snicstats`` for an interface of ``speed_mbit``."""
    return snicstats(isup=isup, duplex=2, speed=speed_mbit, mtu=1500, flags=flags)


def io(rx: int, tx: int) -> snetio:
    """Return a psutil ``snetio`` with ``rx`` bytes received and ``tx`` sent."""
    return snetio(
        bytes_sent=tx,
        bytes_recv=rx,
        packets_sent=0,
        packets_recv=0,
        errin=0,
        errout=0,
        dropin=0,
        dropout=0,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def node(transactional_db) -> Node:
    """A started node in this test's event loop; stopped (and forgotten) afterwards.

    Its real sampler feeds the process's monitor as it was at start; tests then install their
    own monitor (see ``monitor``), so that they alone decide what it has seen.
    """
    reset_node()
    install_monitor(None)
    started = get_node()
    await started.ensure_started()
    yield started
    await started.stop()
    reset_node()
    install_monitor(None)


@pytest.fixture
def monitor(node: Node, clock: FakeClock) -> HealthMonitor:
    """The process's monitor for this test: fake clock, default policy, 1 s samples."""
    installed = HealthMonitor(table_policy(), sample_interval=1.0, clock=clock)
    install_monitor(installed)
    return installed


async def settle() -> None:
    """Let the node's background tasks run once."""
    await asyncio.sleep(0)
