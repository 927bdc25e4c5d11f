"""Interfaces and capacity: link speeds in Mbit/s, the WSTIME_LINK_CAPACITY fallback, overrides."""

import pytest

from tests.health.conftest import nic
from timer.health.capacity import (
    FROM_LINK_SPEED,
    FROM_POLICY,
    FROM_SETTING,
    UNKNOWN,
    Capacity,
    effective_capacity,
    link_capacity,
    select_interfaces,
)

STATS = {
    "lo": nic(0, flags="up,loopback,running"),
    "eth0": nic(1000),
    "eth1": nic(0),
    "eth2": nic(10_000, isup=False),
}


@pytest.mark.parametrize(
    "configured, expected",
    [
        ((), ("eth0", "eth1")),  # up, not loopback
        (("lo",), ("lo",)),
        (("lo", "eth2"), ("eth2", "lo")),  # named ones count even when down
        (("wlan9", "eth0"), ("eth0",)),  # absent names are left out
    ],
)
def test_select_interfaces__table(configured, expected):
    """Default: every up interface but loopback; WSTIME_NET_INTERFACES names them otherwise."""
    assert select_interfaces(STATS, configured) == expected


def test_select_interfaces__loopback_by_name_without_flags():
    """An old psutil without flags still leaves lo out by its name."""
    assert select_interfaces({"lo": nic(0, flags=""), "eth0": nic(100)}, ()) == ("eth0",)


@pytest.mark.parametrize(
    "names, fallback, expected",
    [
        (("eth0",), None, Capacity(1_000_000_000, FROM_LINK_SPEED)),  # Mbit/s -> bit/s
        (("eth1",), 10_000_000, Capacity(10_000_000, FROM_SETTING)),  # speed 0: the setting
        (
            ("eth0",),
            10_000_000,
            Capacity(1_000_000_000, FROM_LINK_SPEED),
        ),  # setting overrides nothing
        (("eth0", "eth1"), 5, Capacity(1_000_000_005, f"{FROM_SETTING} + {FROM_LINK_SPEED}")),
        (("eth1",), None, Capacity(None, UNKNOWN)),
        (("eth0", "eth1"), None, Capacity(None, UNKNOWN)),  # no partial sums
        ((), 10_000_000, Capacity(None, UNKNOWN)),
    ],
)
def test_link_capacity__table(names, fallback, expected):
    """Capacity is the sum of link speeds, the fallback standing in for speed 0."""
    assert link_capacity(STATS, names, fallback) == expected


@pytest.mark.parametrize(
    "override, link, expected",
    [
        (None, Capacity(8, FROM_LINK_SPEED), Capacity(8, FROM_LINK_SPEED)),
        (100, Capacity(8, FROM_LINK_SPEED), Capacity(100, FROM_POLICY)),
        (100, Capacity(None, UNKNOWN), Capacity(100, FROM_POLICY)),
    ],
)
def test_effective_capacity__policy_overrides(override, link, expected):
    """A capacity in the policy wins over whatever the links say."""
    assert effective_capacity(override, link) == expected
