"""What the load generator records, and the arithmetic over it.

Pure: no sockets, no clocks, no processes. Times are seconds on one monotonic clock shared by
every process of a run (``time.monotonic``, CLOCK_MONOTONIC on Linux), so a window chosen by the
orchestrator applies to what each load-generator worker recorded.

Definitions used in every report:

- delivered %: frames received during the steady window, divided by ``attempted × window /
  interval`` (a connection that never opened, or dropped, still counts as expected).
- jitter: ``|gap − interval|`` between two consecutive frames (count N then N + 1) of one
  connection, the later one inside the window. Insensitive to slow drift (Node's setInterval),
  sensitive to stalls: a frame 300 ms late shows as two gaps 300 ms off.
- continuity break: two consecutive frames of one connection whose counts do not differ by 1.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

# Latencies are kept as integer multiples of this unit (0.1 ms): histograms stay small,
# merge by adding counters, and percentiles are exact to the unit.
UNIT = 1e-4


class Histogram:
    """A mergeable histogram of non-negative durations in seconds, 0.1 ms resolution."""

    __slots__ = ("counts",)

    def __init__(self, counts: dict[int, int] | None = None) -> None:
        self.counts: Counter[int] = Counter(counts or {})

    def add(self, seconds: float) -> None:
        self.counts[int(round(max(0.0, seconds) / UNIT))] += 1

    def merge(self, other: Histogram) -> None:
        self.counts.update(other.counts)

    def __len__(self) -> int:
        return sum(self.counts.values())

    def percentile(self, p: float) -> float | None:
        """Return the ``p``-th percentile (0-100) in seconds, nearest rank; None when empty."""
        total = len(self)
        if total == 0:
            return None
        rank = max(1, math.ceil(p / 100 * total))
        seen = 0
        for key in sorted(self.counts):
            seen += self.counts[key]
            if seen >= rank:
                return key * UNIT
        raise AssertionError("unreachable")

    def max(self) -> float | None:
        return max(self.counts) * UNIT if self.counts else None

    def to_json(self) -> dict[str, int]:
        return {str(key): value for key, value in sorted(self.counts.items())}

    @classmethod
    def from_json(cls, data: dict[str, int]) -> Histogram:
        return cls({int(key): value for key, value in data.items()})


def to_ms(seconds: float | None) -> float | None:
    """Seconds to milliseconds rounded to 0.1 ms; None (and infinity: never) stay None."""
    if seconds is None or math.isinf(seconds):
        return None
    return round(seconds * 1000, 1)


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank ``p``-th percentile of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def parse_frame(text: str) -> tuple[str, int]:
    """Split ``<name>: you have been connected for N seconds`` into (name, N)."""
    name, _, rest = text.partition(": ")
    return name, int(rest.rsplit(" ", 2)[1])


def full_jitter_delay(
    attempt: int, random: float, *, base: float = 0.5, cap: float = 30.0
) -> float:
    """Return the browser client's reconnect delay: ``random × min(cap, base × 2^attempt)``."""
    return random * min(cap, base * 2.0**attempt)


@dataclass
class Attempt:
    """One WebSocket connection attempt of a client, and the frames it received."""

    started: float
    opened: float | None = None
    failure: str | None = None  # why it never opened (refused, timeout, http-503, ...)
    closed: float | None = None  # when it ended after opening; None if still open at the stop
    close_code: int | None = None
    hint_ms: int | None = None  # the reconnect hint in the close reason (1012, 1013)
    node: str = ""  # the name in its first frame
    times: array = field(default_factory=lambda: array("d"))
    counts: array = field(default_factory=lambda: array("q"))


@dataclass
class Tally:
    """Mergeable totals of one run (or of one worker's share of it)."""

    attempted: int = 0
    established: int = 0
    failures: Counter = field(default_factory=Counter)
    dropped: int = 0
    drop_codes: Counter = field(default_factory=Counter)
    frames_in_window: int = 0
    expected_in_window: float = 0.0
    continuity_pairs: int = 0
    continuity_breaks: int = 0
    handshake: Histogram = field(default_factory=Histogram)
    jitter: Histogram = field(default_factory=Histogram)
    loop_lag: Histogram = field(default_factory=Histogram)

    def merge(self, other: Tally) -> None:
        self.attempted += other.attempted
        self.established += other.established
        self.failures.update(other.failures)
        self.dropped += other.dropped
        self.drop_codes.update(other.drop_codes)
        self.frames_in_window += other.frames_in_window
        self.expected_in_window += other.expected_in_window
        self.continuity_pairs += other.continuity_pairs
        self.continuity_breaks += other.continuity_breaks
        self.handshake.merge(other.handshake)
        self.jitter.merge(other.jitter)
        self.loop_lag.merge(other.loop_lag)

    def figures(self) -> dict[str, Any]:
        """The numbers a report shows (seconds turned into milliseconds)."""
        delivered = (
            100 * self.frames_in_window / self.expected_in_window
            if self.expected_in_window
            else None
        )
        return {
            "attempted": self.attempted,
            "established": self.established,
            "failed": sum(self.failures.values()),
            "failures": dict(self.failures),
            "dropped": self.dropped,
            "drop_codes": {str(code): n for code, n in self.drop_codes.items()},
            "frames_delivered": self.frames_in_window,
            "frames_expected": round(self.expected_in_window),
            "delivered_pct": None if delivered is None else round(delivered, 3),
            "handshake_p50_ms": to_ms(self.handshake.percentile(50)),
            "handshake_p99_ms": to_ms(self.handshake.percentile(99)),
            "handshake_max_ms": to_ms(self.handshake.max()),
            "jitter_p50_ms": to_ms(self.jitter.percentile(50)),
            "jitter_p99_ms": to_ms(self.jitter.percentile(99)),
            "jitter_max_ms": to_ms(self.jitter.max()),
            "continuity_pairs": self.continuity_pairs,
            "continuity_breaks": self.continuity_breaks,
            "client_loop_lag_p99_ms": to_ms(self.loop_lag.percentile(99)),
        }


def tally(
    clients: Iterable[list[Attempt]],
    *,
    window: tuple[float, float] | None,
    interval: float,
    stopped_at: float,
    lag_samples: Iterable[tuple[float, float]] = (),
) -> Tally:
    """Count one share of clients: each is its list of attempts, oldest first.

    ``window`` is the steady window [start, end); None counts no frames (a run that never got
    steady). ``stopped_at`` is when the generator began closing: a connection that ended before
    it was dropped by the other side.
    """
    result = Tally()
    start, end = window if window is not None else (0.0, 0.0)
    expected_each = (end - start) / interval if window is not None else 0.0
    for attempts in clients:
        result.attempted += 1
        result.expected_in_window += expected_each
        first = attempts[0] if attempts else None
        if first is not None and first.opened is not None:
            result.established += 1
        elif first is not None:
            result.failures[first.failure or "unknown"] += 1
        for attempt in attempts:
            if attempt.opened is None:
                continue
            result.handshake.add(attempt.opened - attempt.started)
            if attempt.closed is not None and attempt.closed < stopped_at:
                result.dropped += 1
                result.drop_codes[attempt.close_code if attempt.close_code is not None else -1] += 1
            _tally_frames(result, attempt, start, end, interval)
    for at, lag in lag_samples:
        if window is None or start <= at < end:
            result.loop_lag.add(lag)
    return result


def _tally_frames(
    result: Tally, attempt: Attempt, start: float, end: float, interval: float
) -> None:
    times, counts = attempt.times, attempt.counts
    for i, at in enumerate(times):
        inside = start <= at < end
        if inside:
            result.frames_in_window += 1
        if i == 0:
            continue
        result.continuity_pairs += 1
        step = counts[i] - counts[i - 1]
        if step != 1:
            result.continuity_breaks += 1
        elif inside:
            result.jitter.add(abs(at - times[i - 1] - interval))


@dataclass(frozen=True)
class Recovery:
    """What happened to one client whose node was killed."""

    last_n: int  # the last count it saw from the killed node
    reconnect_s: float | None  # from the kill to its next frame; None if none came
    first_n: int | None  # the count in that frame
    attempts: int  # connection attempts it took
    reopened_at: float | None  # when the connection that delivered it opened (since the kill)
    noticed_s: float | None = None  # from the kill to the end of its connection to the node
    failures: tuple[str, ...] = ()  # why the attempts before the good one failed

    @property
    def jump(self) -> int | None:
        return None if self.first_n is None else self.first_n - self.last_n

    @property
    def resumed(self) -> bool:
        """The count went on: last N + 1, or + 2 when the last checkpoint lagged a frame."""
        return self.jump in (1, 2)


def recoveries(
    clients: Iterable[list[Attempt]], *, killed_node: str, kill_time: float
) -> list[Recovery]:
    """Return a :class:`Recovery` for every client connected to ``killed_node`` at the kill."""
    found = []
    for attempts in clients:
        for index, attempt in enumerate(attempts):
            live_at_kill = (
                attempt.opened is not None
                and attempt.opened <= kill_time
                and (attempt.closed is None or attempt.closed > kill_time)
            )
            if live_at_kill and attempt.node == killed_node and len(attempt.counts):
                noticed = None if attempt.closed is None else attempt.closed - kill_time
                found.append(
                    _recovery(attempt.counts[-1], noticed, attempts[index + 1 :], kill_time)
                )
                break
    return found


def _recovery(
    last_n: int, noticed: float | None, later: list[Attempt], kill_time: float
) -> Recovery:
    failures: list[str] = []
    for number, attempt in enumerate(later, start=1):
        if len(attempt.times):
            return Recovery(
                last_n=last_n,
                reconnect_s=attempt.times[0] - kill_time,
                first_n=attempt.counts[0],
                attempts=number,
                reopened_at=attempt.opened - kill_time,
                noticed_s=noticed,
                failures=tuple(failures),
            )
        failures.append(attempt.failure or f"closed-{attempt.close_code}")
    return Recovery(
        last_n=last_n,
        reconnect_s=None,
        first_n=None,
        attempts=len(later),
        reopened_at=None,
        noticed_s=noticed,
        failures=tuple(failures),
    )


RECONNECT_BUCKETS: tuple[float, ...] = (0.25, 0.5, 1, 2, 3, 5, 10, 20)


def recovery_figures(found: Sequence[Recovery], *, within: float = 10.0) -> dict[str, Any]:
    """Summarise recoveries: percentiles, % resumed within ``within`` s, spread of reconnects."""
    times = [r.reconnect_s for r in found if r.reconnect_s is not None]
    # A client that never came back counts as infinitely slow in the percentiles.
    ranked = times + [math.inf] * (len(found) - len(times))
    resumed_in_time = sum(
        1 for r in found if r.resumed and r.reconnect_s is not None and r.reconnect_s <= within
    )
    histogram: dict[str, int] = {}
    lower = 0.0
    for upper in (*RECONNECT_BUCKETS, math.inf):
        label = f"{_fmt(lower)}-{_fmt(upper)} s" if upper != math.inf else f">{_fmt(lower)} s"
        histogram[label] = sum(1 for t in times if lower <= t < upper)
        lower = upper
    histogram["never"] = len(found) - len(times)
    opened = sorted(r.reopened_at for r in found if r.reopened_at is not None)
    noticed = [r.noticed_s for r in found if r.noticed_s is not None]
    per_100ms = Counter(int(t * 10) for t in opened)
    return {
        "affected": len(found),
        "recovered": len(times),
        "resumed": sum(1 for r in found if r.resumed),
        "resumed_within_pct": round(100 * resumed_in_time / len(found), 2) if found else None,
        "within_s": within,
        "reconnect_p50_ms": to_ms(percentile(ranked, 50)),
        "reconnect_p99_ms": to_ms(percentile(ranked, 99)),
        "reconnect_max_ms": to_ms(max(ranked)) if ranked else None,
        "jumps": {
            str(k): v
            for k, v in sorted(Counter(r.jump for r in found if r.jump is not None).items())
        },
        "histogram": histogram,
        # Every affected client's time to its next frame, for the report's plot.
        "reconnect_ms": sorted(to_ms(t) for t in times),
        "reconnects_peak_per_100ms": max(per_100ms.values()) if per_100ms else 0,
        "reopened_p50_ms": to_ms(percentile(opened, 50)),
        "reopened_p99_ms": to_ms(percentile(opened, 99)),
        "noticed_p50_ms": to_ms(percentile(noticed, 50)),
        "noticed_p99_ms": to_ms(percentile(noticed, 99)),
        "attempts_p99": percentile([r.attempts for r in found], 99),
        "failed_attempts": dict(Counter(kind for r in found for kind in r.failures)),
    }


def _fmt(seconds: float) -> str:
    return f"{seconds:g}"


def window_rate(samples: Sequence[tuple[float, float]], start: float, end: float) -> float | None:
    """Return the rate of a growing counter over [start, end] from (time, value) samples.

    Uses the first and last sample inside the window; None with fewer than two.
    """
    inside = [(t, v) for t, v in samples if start <= t <= end]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return None
    return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


def peak_rate(samples: Sequence[tuple[float, float]], start: float, end: float) -> float | None:
    """Return the highest rate between two consecutive samples inside [start, end]."""
    inside = [(t, v) for t, v in samples if start <= t <= end]
    rates = [
        (v2 - v1) / (t2 - t1)
        for (t1, v1), (t2, v2) in zip(inside, inside[1:], strict=False)
        if t2 > t1
    ]
    return max(rates) if rates else None


def window_values(samples: Sequence[tuple[float, float]], start: float, end: float) -> list[float]:
    """Return the values of the (time, value) samples inside [start, end]."""
    return [v for t, v in samples if start <= t <= end]


def resume_kinds(found: Iterable[Recovery]) -> dict[str, int]:
    """Sort each affected client by its first count after the kill against its last one.

    ``resumed``: last + 1 or + 2 (the count went on); ``repeated``: a count it was shown
    already; ``reset``: 0 again, a new session; ``skipped``: more than + 2 ahead; ``never``:
    no frame came.
    """
    kinds = dict.fromkeys(("resumed", "repeated", "reset", "skipped", "never"), 0)
    for r in found:
        if r.first_n is None:
            kinds["never"] += 1
        elif r.resumed:
            kinds["resumed"] += 1
        elif r.first_n == 0 and r.last_n > 0:
            kinds["reset"] += 1
        elif r.first_n <= r.last_n:
            kinds["repeated"] += 1
        else:
            kinds["skipped"] += 1
    return kinds
