"""Hysteresis and the verdict: what ``/healthcheck`` answers, before HTTP is involved."""

from __future__ import annotations

from dataclasses import dataclass

OK = "ok"
OVERLOADED = "overloaded"
DRAINING = "draining"
STALE = "stale"

# The text a load balancer (or a person with curl) sees in the body; the README lists them.
REASONS = {
    OK: "ok",
    OVERLOADED: "server is overloaded",
    DRAINING: "draining",
    STALE: "sampler is stale",
}

# A sampler that has not delivered for this many intervals (and at least this long) is stale.
STALE_AFTER_INTERVALS = 3
STALE_AFTER_MIN_SECONDS = 2.0


def stale_after(sample_interval: float) -> float:
    """Return the sample age, in seconds, past which the sampler counts as stale."""
    return max(STALE_AFTER_INTERVALS * sample_interval, STALE_AFTER_MIN_SECONDS)


def still_full(
    was_full: bool, level: float | None, threshold: float, recovery_level: float
) -> bool:
    """Apply hysteresis: full at or above ``threshold``; once full, until below ``recovery_level``.

    An unknown level (no reading, or no capacity to compare with) never makes a node full.
    """
    if level is None:
        return False
    if level >= threshold:
        return True
    return was_full and level >= recovery_level


@dataclass(frozen=True)
class Verdict:
    """The answer: a status (``OK``, ``OVERLOADED``, ...) and its reason text."""

    status: str
    reason: str

    @property
    def healthy(self) -> bool:
        return self.status == OK


def verdict(*, draining: bool, stale: bool, full: bool) -> Verdict:
    """Combine the signals; the operator's drain first, then a stale sampler, then load."""
    if draining:
        status = DRAINING
    elif stale:
        status = STALE
    elif full:
        status = OVERLOADED
    else:
        status = OK
    return Verdict(status, REASONS[status])
