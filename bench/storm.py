"""The failover storm: thousands of clients of a killed node land on a survivor that is busy.

Redis, two wstime nodes and HAProxy. The survivor first gets ``survivor_clients`` of its own,
connected to it directly, which keep ticking throughout; then ``clients`` connect directly to
the victim (which does not rebalance), so that all of them are on it. Once every session has a
checkpoint, the victim is killed (``kill -9``) and its clients reconnect *through HAProxy* like the page (full-jitter
backoff, silence timeout, reconnect hints), all of them onto the survivor. During the storm the
survivor's ``/healthcheck`` is timed about 20 times a second, its own event-loop lag is read
from two scrapes of its ``wstime_event_loop_lag_seconds`` histogram, and its CPU sampled; with
a profile folder, py-spy records it from the kill to the end of the storm.

The parsing of ``/metrics`` text below is pure; the rest starts processes and stops them, by
PID, before it returns or raises.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from localcluster.processes import LOOPBACK, start_haproxy, start_redis
from timer.core.close_codes import CLOSE_SESSION_TAKEN_OVER

from . import profile
from .loadgen import LoadGenerator, LoadSpec, default_workers
from .loop_lag import lag_figures, lag_scrape
from .probes import HttpProber, MachineSampler, ProcessSampler
from .scenarios import (
    Options,
    _data_dir,
    _metrics,
    _record,
    _sampling,
    _sleep_until,
    _started,
    log_problems,
)
from .servers import Server, start_wstime
from .stats import Recovery, percentile, recovery_figures, resume_kinds, to_ms

logger = logging.getLogger(__name__)

WITHIN_S = 4.0  # the target: resumed within this long after the kill
HEALTH_RATE = 20.0  # /healthcheck requests per second on the survivor
SURVIVOR, VICTIM = "bench-survivor", "bench-victim"
# Counters of the survivor's /metrics whose growth during the storm the report shows.
COUNTERS = (
    "wstime_sessions_opened",
    "wstime_handshakes_refused",
    "wstime_takeovers",
    "wstime_connections_closed",
    "wstime_frames_held",
    "wstime_ticker_steps_skipped",
)


def counter_growth(
    before: dict[str, float] | None, after: dict[str, float] | None, names: Sequence[str] = COUNTERS
) -> dict[str, float]:
    """How much each sample of the ``names`` families grew between two /metrics readings."""
    if not before or not after:
        return {}
    return {
        sample: round(value - before.get(sample, 0.0), 1)
        for sample, value in sorted(after.items())
        if sample.startswith(tuple(names)) and value != before.get(sample, 0.0)
    }


def refused_for_good(found: Sequence[Recovery]) -> dict[str, int]:
    """Clients the page would have lost, by why: closed with 4001 (the page stops there), or no
    frame by the end of the observation (by the failure of their last attempt)."""
    why: Counter[str] = Counter()
    for r in found:
        if f"closed-{CLOSE_SESSION_TAKEN_OVER}" in r.failures:
            why[f"closed-{CLOSE_SESSION_TAKEN_OVER}"] += 1
        elif r.reconnect_s is None:
            why[r.failures[-1] if r.failures else "no failed attempt"] += 1
    return dict(why)


_SERVER_CHANGE = re.compile(r"(Server|backend) \S+ (is|has) ", re.IGNORECASE)


_LEVEL = re.compile(r"^\[[A-Z]+\]\s+\(\d+\)\s*:\s*")


def server_changes(log: str, *, top: int = 20) -> list[str]:
    """HAProxy's log lines that mark a server (or a backend) up or down, the first ``top``.

    HAProxy writes each both to stderr (``[WARNING]  (pid) : ...``) and to its log (stdout);
    each is kept once.
    """
    found = dict.fromkeys(
        _LEVEL.sub("", line.strip())[:200]
        for line in log.splitlines()
        if _SERVER_CHANGE.search(line)
    )
    return list(found)[:top]


def storm(
    clients: int, survivor_clients: int, options: Options, *, observe: float = 20.0
) -> dict[str, Any]:
    """Kill the node holding ``clients`` while the survivor holds ``survivor_clients``."""
    with contextlib.ExitStack() as stack:
        redis = stack.enter_context(_started(start_redis))
        data_dir = Path(stack.enter_context(_data_dir()))
        # The victim does not rebalance: it would move its clients to the survivor before the
        # kill, and the storm is of all of them at once.
        nodes = {
            name: stack.enter_context(
                _started(
                    start_wstime,
                    name=name,
                    interval=options.interval,
                    redis_url=redis.extra["url"],
                    data_dir=data_dir,
                    env=env,
                )
            )
            for name, env in ((SURVIVOR, {}), (VICTIM, {"WSTIME_REBALANCE_ENABLED": "false"}))
        }
        survivor, victim = nodes[SURVIVOR], nodes[VICTIM]
        haproxy = stack.enter_context(_started(start_haproxy, [survivor.ws_port, victim.ws_port]))
        machine = stack.enter_context(_sampling(MachineSampler()))
        cpu = {
            name: stack.enter_context(_sampling(ProcessSampler([pid])))
            for name, pid in (
                ("survivor", survivor.pid),
                ("redis", redis.pid),
                ("haproxy", haproxy.pid),
            )
        }
        health = stack.enter_context(
            _sampling(HttpProber(LOOPBACK, survivor.ws_port, "/healthcheck", rate=HEALTH_RATE))
        )
        lives = (
            (clients + survivor_clients) / options.rate
            + 2 * options.open_timeout
            + options.settle
            + 5 * options.interval
            + observe
            + 120
        )
        own = stack.enter_context(
            LoadGenerator(
                LoadSpec(
                    url=survivor.ws_url,
                    connections=survivor_clients,
                    rate=options.rate,
                    interval=options.interval,
                    open_timeout=options.open_timeout,
                    workers=options.workers or default_workers(survivor_clients),
                    id_prefix=f"{options.run_id}-storm-own",
                    max_duration=lives,
                )
            )
        )
        own.start()
        own_ramp = own.wait_ramped(
            timeout=survivor_clients / options.rate + options.open_timeout + 60
        )
        load = stack.enter_context(
            LoadGenerator(
                LoadSpec(
                    url=victim.ws_url,
                    reconnect_url=haproxy.extra["ws_url"],
                    connections=clients,
                    rate=options.rate,
                    interval=options.interval,
                    open_timeout=options.open_timeout,
                    workers=options.workers or default_workers(clients),
                    id_prefix=f"{options.run_id}-storm",
                    reconnect=True,
                    silence=3.5 * options.interval,
                    max_duration=lives,
                )
            )
        )
        started = load.start()
        clients_cpu = stack.enter_context(_sampling(ProcessSampler(own.pids + load.pids)))
        ramp = load.wait_ramped(timeout=clients / options.rate + options.open_timeout + 60)
        # Two intervals and more: every session has a checkpoint in Redis before the kill.
        steady = max(time.monotonic(), ramp.resolved_at) + options.settle + 2 * options.interval
        _sleep_until(steady)
        counters_before = _metrics(survivor)
        lag_steady = lag_scrape(survivor)
        _sleep_until(steady + options.interval)
        before = {"survivor's own": dict(own.census()), "victim's": dict(load.census())}
        lag_before = lag_scrape(survivor)
        recording = _start_profile(survivor, options)
        kill_time = time.monotonic()
        victim.managed.kill()
        storm_end = kill_time + observe
        _sleep_until(storm_end)
        lag_after = lag_scrape(survivor)
        summary = profile.finish_recording(*recording) if recording is not None else None
        counters_after = _metrics(survivor)
        after = {"survivor's own": dict(own.census()), "victim's": dict(load.census())}
        own_outcome = own.stop(window=(kill_time, storm_end))
        outcome = load.stop(window=(kill_time, storm_end), killed_node=VICTIM, kill_time=kill_time)
        recovery = recovery_figures(outcome.recoveries, within=WITHIN_S)
        recovery["reconnect_p90_ms"] = to_ms(
            percentile(
                [
                    r.reconnect_s if r.reconnect_s is not None else math.inf
                    for r in outcome.recoveries
                ],
                90,
            )
        )
        window = (kill_time, storm_end)
        survivor_cpu = cpu["survivor"].figures(*window)
        result: dict[str, Any] = {
            "clients": clients,
            "survivor_clients": survivor_clients,
            "observe_s": observe,
            "killed": VICTIM,
            "survivor": SURVIVOR,
            "ramp": {
                "survivor's own": {"established": own_ramp.established, "failed": own_ramp.failed},
                "victim's": {
                    "seconds": round(ramp.resolved_at - started, 2),
                    "established": ramp.established,
                    "failed": ramp.failed,
                },
            },
            "before_kill": before,
            "after": after,
            "recovery": recovery,
            "resume_kinds": resume_kinds(outcome.recoveries),
            "refused_for_good": refused_for_good(outcome.recoveries),
            "survivor_health": {
                "before_kill": health.figures(steady, kill_time),
                "storm": health.figures(*window),
            },
            "survivor_loop_lag": {
                "before_kill": lag_figures(lag_steady, lag_before),
                "storm": lag_figures(lag_before, lag_after),
            },
            "survivor_own_load": own_outcome.tally.figures(),
            "survivor_cpu_pct": survivor_cpu["cpu_pct"],
            "survivor_cpu_peak_pct": survivor_cpu["cpu_peak_pct"],
            "survivor_cpu_before_kill_pct": cpu["survivor"].figures(steady, kill_time)["cpu_pct"],
            "redis_cpu_pct": cpu["redis"].figures(*window)["cpu_pct"],
            "haproxy_cpu_pct": cpu["haproxy"].figures(*window)["cpu_pct"],
            "loadgen_cpu_pct": clients_cpu.figures(*window)["cpu_pct"],
            # The load generators' own event-loop lag in the storm: when high, the clients, not
            # the survivor, were slow to reconnect and to read their frames.
            "client_loop_lag_p99_ms": {
                "survivor's own": own_outcome.tally.figures()["client_loop_lag_p99_ms"],
                "victim's": outcome.tally.figures()["client_loop_lag_p99_ms"],
            },
            "machine_busy_pct": machine.busy_pct(*window),
            "survivor_counters": counter_growth(counters_before, counters_after),
            "log_problems": {
                name: log_problems(node.managed.log()) for name, node in nodes.items()
            },
            "haproxy_server_changes": server_changes(haproxy.log()),
        }
        if summary is not None:
            result["profile"] = summary
        return result


def _start_profile(server: Server, options: Options):
    if options.profile_dir is None:
        return None
    return _record(server.pid, options.profile_dir / f"{options.run_id}-storm-survivor.folded")
