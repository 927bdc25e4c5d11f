"""Counters to rates: full duplex, several interfaces, resets and clock trouble."""

import pytest

from tests.health.conftest import io
from timer.health.rates import Counters, CounterSample, counters_from_psutil, interval_rate


def sample(at: float, **interfaces: tuple[int, int]) -> CounterSample:
    return CounterSample(at, {name: Counters(*pair) for name, pair in interfaces.items()})


@pytest.mark.parametrize(
    "previous, current, expected",
    [
        # (rx, tx) bytes; expected max(rx, tx) bits/s, or None when the interval is dropped
        (sample(0, eth0=(0, 0)), sample(1, eth0=(1000, 0)), 8000),
        (sample(0, eth0=(0, 0)), sample(2, eth0=(1000, 3000)), 12000),  # tx is busier
        (sample(0, eth0=(0, 0), eth1=(0, 0)), sample(1, eth0=(100, 0), eth1=(100, 0)), 1600),
        (sample(0, eth0=(0, 0)), sample(1, eth0=(0, 0), eth1=(5000, 0)), 0),  # eth1 is new
        (sample(0, eth0=(500, 500)), sample(1, eth0=(100, 900)), None),  # rx counter reset
        (sample(0, eth0=(2**32 - 10, 0)), sample(1, eth0=(5, 0)), None),  # 32-bit wrap
        (sample(5, eth0=(0, 0)), sample(5, eth0=(10, 0)), None),  # no time passed
        (sample(5, eth0=(0, 0)), sample(4, eth0=(10, 0)), None),  # clock went back
        (sample(0, eth0=(0, 0)), sample(1, eth1=(10, 0)), None),  # nothing in common
    ],
)
def test_interval_rate__table(previous, current, expected):
    """Each pair of samples gives the busier direction's bits/s, or is dropped."""
    rate = interval_rate(previous, current)
    assert (None if rate is None else rate.bits_per_second) == expected


def test_interval_rate__never_negative_after_reset():
    """A reset on one interface drops the interval instead of subtracting."""
    rate = interval_rate(sample(0, a=(10**12, 10**12), b=(0, 0)), sample(1, a=(0, 0), b=(1, 1)))
    assert rate is None


def test_counters_from_psutil__picks_named_interfaces():
    """psutil's snetio tuples become Counters for the named interfaces that exist."""
    pernic = {"lo": io(rx=10, tx=20), "eth0": io(rx=30, tx=40)}
    assert counters_from_psutil(pernic, ["eth0", "wlan9"]) == {"eth0": Counters(30, 40)}
