"""The sampler against the real psutil of this machine (loopback only), without waiting."""

import asyncio

import pytest

from tests.health.conftest import FakeClock, table_policy
from timer.health import policy_store
from timer.health.capacity import FROM_SETTING
from timer.health.monitor import HealthMonitor
from timer.health.sampler import Sampler


def loopback_sampler(monitor: HealthMonitor, *, interval: float = 1.0) -> Sampler:
    return Sampler(
        monitor,
        node_name="test-node",
        interval=interval,
        interfaces=("lo",),
        link_capacity=8_000_000,
        policy_every=3600,
        connections=lambda: 7,
    )


def test_sampler_read__loopback_with_setting_capacity():
    """lo reports speed 0, so WSTIME_LINK_CAPACITY gives its capacity."""
    clock = FakeClock(5.0)
    sample, capacity = loopback_sampler(
        HealthMonitor(table_policy(), sample_interval=1.0, clock=clock)
    ).read()
    assert (sample.at, set(sample.interfaces)) == (5.0, {"lo"})
    assert sample.interfaces["lo"].rx_bytes >= 0
    assert (capacity.bits_per_second, capacity.source) == (8_000_000, FROM_SETTING)


async def test_sampler_sample_forever__feeds_the_monitor():
    """Running the loop for a few 10 ms intervals gives the monitor a usage and a fresh age."""
    monitor = HealthMonitor(table_policy(), sample_interval=0.01)
    task = asyncio.create_task(loopback_sampler(monitor, interval=0.01).sample_forever())
    try:
        for _ in range(200):
            await asyncio.sleep(0.01)
            if monitor.usage is not None:
                break
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    report = monitor.report(monitor.clock(), 7)
    assert report.interfaces == ("lo",)
    assert 0.0 <= report.usage <= 1.0
    assert report.sampler_age < 1.0


@pytest.mark.django_db(transaction=True)
async def test_sampler_run__policy_load_error_never_stops_sampling(monkeypatch, caplog):
    """A policy read raising something other than a database error: sampling goes on,
    the error is logged once for the episode."""
    calls = 0

    def broken(node_name, settings):
        nonlocal calls
        calls += 1
        raise ValueError("unreadable row")

    monkeypatch.setattr(policy_store, "load_policy", broken)
    monkeypatch.setattr(policy_store, "_policy_error", None)  # put back after the test
    monitor = HealthMonitor(table_policy(), sample_interval=0.01)
    # A capacity no loopback traffic of other processes can fill: the test is about sampling.
    sampler = Sampler(
        monitor,
        node_name="test-node",
        interval=0.01,
        interfaces=("lo",),
        link_capacity=10**12,
        policy_every=0.01,
        connections=lambda: 7,
    )
    task = asyncio.create_task(sampler.run())
    try:
        async with asyncio.timeout(5):
            while calls < 5 or monitor.usage is None:
                await asyncio.sleep(0.01)
        first_age = monitor.report(monitor.clock(), 7).sampler_age
        await asyncio.sleep(0.1)
        assert not task.done(), task
        report = monitor.report(monitor.clock(), 7)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert report.status == "ok" and report.sampler_age < 0.1 + first_age
    assert policy_store.policy_error() == "ValueError"
    logged = [r for r in caplog.records if "health policy" in r.getMessage()]
    assert len(logged) == 1, [r.getMessage() for r in logged]
