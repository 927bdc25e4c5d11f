"""Which interfaces to measure, and how many bits per second they carry.

Link speeds come from ``psutil.net_if_stats()`` in Mbit/s; 0 means unknown (loopback, most
virtual NICs), and then ``WSTIME_LINK_CAPACITY`` stands in for that interface. A capacity set
in the health policy (admin) overrides both for the whole node.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

BITS_PER_MEGABIT = 1_000_000

FROM_POLICY = "policy"
FROM_LINK_SPEED = "link speed"
FROM_SETTING = "WSTIME_LINK_CAPACITY"
UNKNOWN = "unknown"

LOOPBACK_NAMES = frozenset({"lo", "lo0"})


@dataclass(frozen=True)
class Capacity:
    """Bits per second the measured interfaces carry (None: unknown), and where that came from."""

    bits_per_second: int | None
    source: str


def is_loopback(name: str, stats: Any) -> bool:
    """Return whether an interface is the loopback (by psutil's flags, else by its name)."""
    flags = str(getattr(stats, "flags", "") or "")
    return "loopback" in flags.split(",") or name in LOOPBACK_NAMES


def select_interfaces(stats: Mapping[str, Any], configured: Iterable[str]) -> tuple[str, ...]:
    """Return the interfaces to measure, sorted.

    ``configured`` (``WSTIME_NET_INTERFACES``) names them, ``lo`` included, whatever their
    state; names this machine does not have are left out. Empty: every interface that is up,
    except the loopback.
    """
    wanted = tuple(configured)
    if wanted:
        return tuple(sorted(name for name in set(wanted) if name in stats))
    return tuple(
        sorted(name for name, nic in stats.items() if nic.isup and not is_loopback(name, nic))
    )


def link_capacity(stats: Mapping[str, Any], names: Iterable[str], fallback: int | None) -> Capacity:
    """Sum the capacity of ``names``: each one's link speed, or ``fallback`` when it is 0.

    Unknown (None) when there is no interface, or when one has neither a speed nor a fallback:
    a partial sum would overstate the usage of the others.
    """
    total = 0
    sources: set[str] = set()
    names = tuple(names)
    for name in names:
        speed_mbit = int(getattr(stats.get(name), "speed", 0) or 0)
        if speed_mbit > 0:
            total += speed_mbit * BITS_PER_MEGABIT
            sources.add(FROM_LINK_SPEED)
        elif fallback is not None:
            total += fallback
            sources.add(FROM_SETTING)
        else:
            return Capacity(None, UNKNOWN)
    if not names:
        return Capacity(None, UNKNOWN)
    return Capacity(total, " + ".join(sorted(sources)))


def effective_capacity(override: int | None, link: Capacity) -> Capacity:
    """Return the policy's override when it has one, else the links' capacity."""
    if override is not None:
        return Capacity(override, FROM_POLICY)
    return link
