"""Samplers that watch a run from outside: server CPU and memory, Redis commands, HTTP latency.

Each sampler is a daemon thread started with :meth:`start` and ended with :meth:`stop`; it only
records (time, value) pairs on the monotonic clock the load generator uses, and the window math
lives in :mod:`bench.stats`.
"""

from __future__ import annotations

import http.client
import statistics
import threading
import time
from collections import Counter
from typing import Any

import psutil

from .stats import Histogram, peak_rate, to_ms, window_rate, window_values


class _Sampler:
    period = 1.0

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=type(self).__name__, daemon=True)

    def start(self) -> _Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.sample()
            next_at += self.period
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def sample(self) -> None:
        raise NotImplementedError


class ProcessSampler(_Sampler):
    """CPU seconds and RSS of one or more processes (summed), once a ``period``."""

    def __init__(self, pids: list[int], *, period: float = 0.5) -> None:
        super().__init__()
        self.period = period
        self._processes = [psutil.Process(pid) for pid in pids]
        self.cpu: list[tuple[float, float]] = []
        self.rss: list[tuple[float, float]] = []

    def sample(self) -> None:
        cpu = rss = 0.0
        try:
            for process in self._processes:
                with process.oneshot():
                    times = process.cpu_times()
                    cpu += times.user + times.system
                    rss += process.memory_info().rss
        except psutil.NoSuchProcess:
            return  # a killed server: keep what was recorded
        now = time.monotonic()
        self.cpu.append((now, cpu))
        self.rss.append((now, rss))

    def rss_now(self) -> float:
        self.sample()
        return self.rss[-1][1]

    def figures(self, start: float, end: float) -> dict[str, Any]:
        """CPU as % of one core (mean and busiest ``period``) and median RSS in the window."""
        mean = window_rate(self.cpu, start, end)
        peak = peak_rate(self.cpu, start, end)
        rss = window_values(self.rss, start, end)
        return {
            "cpu_pct": None if mean is None else round(100 * mean, 1),
            "cpu_peak_pct": None if peak is None else round(100 * peak, 1),
            "rss_bytes": statistics.median(rss) if rss else None,
        }


class MachineSampler(_Sampler):
    """Busy CPU seconds of the whole machine (all cores), to see what else was running."""

    def __init__(self, *, period: float = 0.5) -> None:
        super().__init__()
        self.period = period
        self.busy: list[tuple[float, float]] = []

    def sample(self) -> None:
        times = psutil.cpu_times()
        idle = times.idle + getattr(times, "iowait", 0.0)
        self.busy.append((time.monotonic(), sum(times) - idle))

    def busy_pct(self, start: float, end: float) -> float | None:
        """Busy time over [start, end] in % of one core (200 = two cores fully busy)."""
        rate = window_rate(self.busy, start, end)
        return None if rate is None else round(100 * rate, 1)


class RedisCommandSampler(_Sampler):
    """``total_commands_processed`` from Redis INFO, once a second."""

    def __init__(self, url: str) -> None:
        super().__init__()
        import redis  # the app's dependency; imported here so baselines need no Redis

        self._client = redis.Redis.from_url(url, socket_timeout=2)
        self.commands: list[tuple[float, float]] = []
        self._own = 0  # our INFO calls are commands too

    def sample(self) -> None:
        try:
            total = self._client.info("stats")["total_commands_processed"]
        except Exception:  # noqa: BLE001 - a missing sample shortens the window, no more
            return
        self.commands.append((time.monotonic(), total - self._own))
        self._own += 1

    def stop(self) -> None:
        super().stop()
        self._client.close()

    def per_second(self, start: float, end: float) -> float | None:
        rate = window_rate(self.commands, start, end)
        return None if rate is None else round(rate, 1)


class HttpProber(_Sampler):
    """GET ``path`` on a new connection ``rate`` times a second, recording latency and status."""

    def __init__(
        self, host: str, port: int, path: str, *, rate: float = 5.0, timeout: float = 5.0
    ) -> None:
        super().__init__()
        self.period = 1 / rate
        self._host, self._port, self._path, self._timeout = host, port, path, timeout
        self.results: list[tuple[float, float, int]] = []  # (start, seconds, status; 0 = error)

    def sample(self) -> None:
        started = time.monotonic()
        status = 0
        connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        try:
            connection.request("GET", self._path, headers={"Host": "localhost"})
            response = connection.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            pass
        finally:
            connection.close()
        self.results.append((started, time.monotonic() - started, status))

    def figures(self, start: float, end: float) -> dict[str, Any]:
        inside = [(seconds, status) for at, seconds, status in self.results if start <= at < end]
        latency = Histogram()
        for seconds, _ in inside:
            latency.add(seconds)

        return {
            "requests": len(inside),
            "statuses": {str(k): v for k, v in sorted(Counter(s for _, s in inside).items())},
            "p50_ms": to_ms(latency.percentile(50)),
            "p99_ms": to_ms(latency.percentile(99)),
            "max_ms": to_ms(latency.max()),
        }
