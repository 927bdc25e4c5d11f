"""System checks on the measured interfaces (timer.W101, timer.W102)."""

import psutil
import pytest

from tests.health.conftest import nic
from timer.config.loader import load_config
from timer.health.checks import check_health_network, network_problems

STATS = {"lo": nic(0, flags="up,loopback,running"), "eth0": nic(1000), "veth1": nic(0)}


def ids(environ: dict) -> list[str]:
    return [warning.id for warning in network_problems(load_config(environ, None), STATS)]


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({"WSTIME_NET_INTERFACES": "eth0"}, []),
        ({"WSTIME_NET_INTERFACES": "lo", "WSTIME_LINK_CAPACITY": "10M"}, []),
        ({"WSTIME_NET_INTERFACES": "lo"}, ["timer.W102"]),  # lo has no speed
        ({"WSTIME_NET_INTERFACES": "eth9,eth0"}, ["timer.W101"]),
        ({"WSTIME_NET_INTERFACES": "eth9"}, ["timer.W101", "timer.W102"]),
        ({}, ["timer.W102"]),  # veth1 is up with speed 0
        ({"WSTIME_LINK_CAPACITY": "1G"}, []),
    ],
)
def test_network_problems__table(environ, expected):
    """Missing interfaces and unknown capacity are warned about, each with its own id."""
    assert ids(environ) == expected


def test_network_problems__names_what_is_missing():
    """The warning names the interface and the ones the machine has."""
    [warning] = network_problems(load_config({"WSTIME_NET_INTERFACES": "eth0,wlan7"}, None), STATS)
    assert "wlan7" in warning.msg and "eth0, lo, veth1" in warning.msg


def test_check_health_network__this_machine_loopback(monkeypatch):
    """On this machine, lo with a link capacity raises no warning."""
    assert "lo" in psutil.net_if_stats()
    monkeypatch.setenv("WSTIME_NET_INTERFACES", "lo")
    monkeypatch.setenv("WSTIME_LINK_CAPACITY", "5M")
    assert check_health_network() == []


def test_check_health_network__silent_on_invalid_settings(monkeypatch):
    """Unparsable settings are timer.E001's to report, not these checks'."""
    monkeypatch.setenv("WSTIME_LINK_CAPACITY", "lots")
    assert check_health_network() == []
