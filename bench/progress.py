"""Progress of a benchmark run on stderr: which step, how far into it, and time left.

The plan is the list of steps with an estimate each (ramp + settle + window, plus start-up);
after each step the estimates still ahead are scaled by how the finished ones compared with
theirs, so "time left" learns the machine's pace. Pure but for the clock and the stream, both
injectable; a daemon thread repeats the current line every ``every`` seconds during a step.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

STARTUP_S = 6.0  # servers, Redis and load-generator processes starting and stopping, per step


@dataclass(frozen=True)
class Step:
    """One scenario run: what it is and about how long it should take."""

    label: str
    estimate_s: float


def capacity_estimate(connections: int, *, rate: float, settle: float, window: float) -> float:
    """Seconds one capacity row takes: ramp at ``rate``, settle, the window, start-up."""
    return connections / rate + settle + window + STARTUP_S


def failover_estimate(
    clients: int, *, rate: float, settle: float, interval: float, observe: float
) -> float:
    """Seconds the failover scenario takes: ramp, settle, the checkpoint wait, observation."""
    return clients / rate + settle + 5 * interval + observe + 2 * STARTUP_S


def storm_estimate(
    clients: int,
    survivor_clients: int,
    *,
    rate: float,
    settle: float,
    interval: float,
    observe: float,
) -> float:
    """Seconds the storm takes: both ramps, settle, the checkpoint wait, the storm itself."""
    return (clients + survivor_clients) / rate + settle + 3 * interval + observe + 2 * STARTUP_S


def format_duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Progress:
    """Reports a plan of steps as they run."""

    def __init__(
        self,
        steps: list[Step],
        *,
        stream: TextIO = sys.stderr,
        clock: Callable[[], float] = time.monotonic,
        every: float = 10.0,
    ) -> None:
        self.steps = steps
        self._stream, self._clock, self._every = stream, clock, every
        self._index = -1
        self._started_at = self._step_started_at = clock()
        self._pace = 1.0  # finished steps' actual ÷ estimated time
        self._done_actual = self._done_estimate = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def time_left(self, now: float) -> float:
        """Seconds until the plan is done, at the pace observed so far."""
        if self._index < 0:
            return sum(step.estimate_s for step in self.steps) * self._pace
        current = self.steps[self._index].estimate_s * self._pace - (now - self._step_started_at)
        ahead = sum(step.estimate_s for step in self.steps[self._index + 1 :]) * self._pace
        return max(0.0, current) + ahead

    def line(self, now: float) -> str:
        """The progress line for ``now``."""
        step = self.steps[self._index]
        into = now - self._step_started_at
        share = min(1.0, into / (step.estimate_s * self._pace)) if step.estimate_s else 1.0
        return (
            f"[{self._index + 1}/{len(self.steps)}] {step.label}: "
            f"{format_duration(into)} of ~{format_duration(step.estimate_s * self._pace)} "
            f"({share:.0%}); about {format_duration(self.time_left(now))} left in all"
        )

    def start(self, index: int) -> None:
        """Step ``index`` begins (the previous one, if any, is done)."""
        now = self._clock()
        if self._index >= 0:
            self._finish(now)
        self._index, self._step_started_at = index, now
        self._write(self.line(now))
        if self._thread is None and self._every > 0:
            self._thread = threading.Thread(
                target=self._heartbeat, name="bench-progress", daemon=True
            )
            self._thread.start()

    def done(self) -> None:
        """The plan is finished: stop the heartbeat, report the total time."""
        now = self._clock()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._every + 1)
        self._write(
            f"[{len(self.steps)}/{len(self.steps)}] done in "
            f"{format_duration(now - self._started_at)}"
        )

    def _finish(self, now: float) -> None:
        self._done_actual += now - self._step_started_at
        self._done_estimate += self.steps[self._index].estimate_s
        if self._done_estimate > 0:
            self._pace = self._done_actual / self._done_estimate

    def _heartbeat(self) -> None:
        while not self._stop.wait(self._every):
            self._write(self.line(self._clock()))

    def _write(self, text: str) -> None:
        self._stream.write(text + "\n")
        self._stream.flush()
