"""Cumulative interface byte counters to bit rates (the pure half of the sampler).

Counters come from ``psutil.net_io_counters(pernic=True)``, whose default ``nowrap=True``
already folds 32-bit wraps into ever-growing numbers. What is left is a counter that goes
backwards (driver reload, interface re-created, a wrap psutil did not see): that interval is
dropped rather than turned into a negative or absurd rate, and the new value becomes the base.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

BITS_PER_BYTE = 8


@dataclass(frozen=True)
class Counters:
    """Cumulative bytes received and sent by one interface."""

    rx_bytes: int
    tx_bytes: int


@dataclass(frozen=True)
class CounterSample:
    """The counters of the measured interfaces at one instant (seconds, monotonic clock)."""

    at: float
    interfaces: Mapping[str, Counters]


@dataclass(frozen=True)
class IntervalRate:
    """Bits per second received and sent between two samples, summed over the interfaces."""

    start: float
    end: float
    rx_bits_per_second: float
    tx_bits_per_second: float

    @property
    def bits_per_second(self) -> float:
        """The busier direction: a full-duplex link is full when either direction is."""
        return max(self.rx_bits_per_second, self.tx_bits_per_second)


def counters_from_psutil(pernic: Mapping[str, Any], names: Iterable[str]) -> dict[str, Counters]:
    """Pick ``names`` out of psutil's per-interface ``snetio`` tuples; absent names are skipped."""
    return {
        name: Counters(rx_bytes=int(pernic[name].bytes_recv), tx_bytes=int(pernic[name].bytes_sent))
        for name in names
        if name in pernic
    }


def interval_rate(previous: CounterSample, current: CounterSample) -> IntervalRate | None:
    """Return the rates between two samples, or None when the interval cannot be trusted.

    None when time did not advance, when any interface's counter went backwards (a reset),
    or when no interface is in both samples. Interfaces in only one sample are ignored.
    """
    elapsed = current.at - previous.at
    if elapsed <= 0:
        return None
    rx = tx = 0
    common = 0
    for name, now in current.interfaces.items():
        before = previous.interfaces.get(name)
        if before is None:
            continue
        if now.rx_bytes < before.rx_bytes or now.tx_bytes < before.tx_bytes:
            return None
        rx += now.rx_bytes - before.rx_bytes
        tx += now.tx_bytes - before.tx_bytes
        common += 1
    if common == 0:
        return None
    return IntervalRate(
        start=previous.at,
        end=current.at,
        rx_bits_per_second=rx * BITS_PER_BYTE / elapsed,
        tx_bits_per_second=tx * BITS_PER_BYTE / elapsed,
    )
