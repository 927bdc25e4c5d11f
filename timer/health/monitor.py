"""The health state machine: counter samples and a policy in, a report out (sans I/O).

The sampler calls :meth:`HealthMonitor.observe` once per interval from the event loop; the view
calls :meth:`HealthMonitor.report`, also from the event loop, and gets an answer from the kept
state in O(1) (no I/O, no per-connection work). The policy is swapped in by assigning
:attr:`HealthMonitor.policy`, which any thread may do (one reference assignment); the next
observe or report applies it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ..core.health_policy import Policy
from .capacity import UNKNOWN, Capacity, effective_capacity
from .decision import OK, stale_after, still_full, verdict
from .rates import CounterSample, interval_rate
from .window import MovingAverage

FULL_BY_NETWORK = "network"
FULL_BY_CONNECTIONS = "connections"


@dataclass(frozen=True)
class Report:
    """Everything ``/healthcheck`` says, as plain values."""

    status: str
    reason: str
    usage: float | None  # moving average of max(rx, tx) / capacity, 0..1; None: unknown
    threshold: float
    recovery_level: float
    window: float
    capacity_bits_per_second: int | None
    capacity_source: str
    interfaces: tuple[str, ...]
    connections: int
    max_connections: int | None
    full_by: tuple[str, ...]  # which signals hold the node full (FULL_BY_*), even if draining
    sampler_age: float | None  # seconds since the last sample; None: no sample yet
    policy_source: str

    @property
    def healthy(self) -> bool:
        return self.status == OK


class HealthMonitor:
    """See the module docstring. ``clock`` is the monotonic clock samples are timed with."""

    def __init__(
        self, policy: Policy, *, sample_interval: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.stale_after = stale_after(sample_interval)
        self.started_at = clock()
        self.last_sample_at: float | None = None
        self.interfaces: tuple[str, ...] = ()
        self.capacity = Capacity(None, UNKNOWN)
        self.usage: float | None = None
        self._link = Capacity(None, UNKNOWN)
        self._previous: CounterSample | None = None
        self._average = MovingAverage()
        self._network_full = False
        self._connections_full = False
        self._applied: Policy | None = None

    def observe(self, sample: CounterSample, link: Capacity, connections: int) -> None:
        """Take one sample of the counters, the links' capacity and the open connections."""
        if self.last_sample_at is not None and sample.at <= self.last_sample_at:
            return  # the clock did not advance: nothing to learn, and no zero-length interval
        previous, self._previous = self._previous, sample
        self.last_sample_at = sample.at
        self.interfaces = tuple(sorted(sample.interfaces))
        self._link = link
        policy = self.policy
        capacity = effective_capacity(policy.capacity, link).bits_per_second
        rate = interval_rate(previous, sample) if previous is not None else None
        if rate is not None and capacity:
            # More than the capacity means the capacity is set too low; it counts as full,
            # and one wild interval can move the average by at most interval / window.
            self._average.add(rate.start, rate.end, min(1.0, rate.bits_per_second / capacity))
        self._apply(policy, connections)

    def report(self, now: float, connections: int, *, draining: bool = False) -> Report:
        """Return the verdict at ``now`` with ``connections`` open; ``draining``: the node's own."""
        policy = self.policy
        if policy is not self._applied:
            self._apply(policy, connections)
        else:
            self._update_connections(policy, connections)
        age = None if self.last_sample_at is None else now - self.last_sample_at
        quiet_for = now - (self.started_at if self.last_sample_at is None else self.last_sample_at)
        full_by = tuple(
            name
            for name, full in (
                (FULL_BY_NETWORK, self._network_full),
                (FULL_BY_CONNECTIONS, self._connections_full),
            )
            if full
        )
        answer = verdict(
            draining=policy.draining or draining,
            stale=quiet_for > self.stale_after,
            full=bool(full_by),
        )
        return Report(
            status=answer.status,
            reason=answer.reason,
            usage=self.usage,
            threshold=policy.threshold,
            recovery_level=policy.recovery_level,
            window=policy.window,
            capacity_bits_per_second=self.capacity.bits_per_second,
            capacity_source=self.capacity.source,
            interfaces=self.interfaces,
            connections=connections,
            max_connections=policy.max_connections,
            full_by=full_by,
            sampler_age=age,
            policy_source=policy.source,
        )

    def _apply(self, policy: Policy, connections: int) -> None:
        self._applied = policy
        self.capacity = effective_capacity(policy.capacity, self._link)
        if self.last_sample_at is not None:
            self._average.forget_before(self.last_sample_at - policy.window)
            self.usage = (
                self._average.average(self.last_sample_at, policy.window)
                if self.capacity.bits_per_second
                else None
            )
        self._network_full = still_full(
            self._network_full, self.usage, policy.threshold, policy.recovery_level
        )
        self._update_connections(policy, connections)

    def _update_connections(self, policy: Policy, connections: int) -> None:
        # Same hysteresis as the network: full at the limit, room again below limit x (1 - margin).
        level = None if policy.max_connections is None else connections / policy.max_connections
        self._connections_full = still_full(
            self._connections_full, level, 1.0, 1.0 - policy.recovery_margin
        )
