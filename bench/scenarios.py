"""The benchmark's scenarios: capacity of one server at N connections, and failover.

Each scenario starts what it needs (servers, Redis, HAProxy) on free loopback ports, drives
load with :class:`bench.loadgen.LoadGenerator`, samples from outside (:mod:`bench.probes`) and
stops everything it started, by PID, before it returns or raises. Results are plain dicts,
ready for JSON.
"""

from __future__ import annotations

import contextlib
import logging
import re
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcluster.processes import LOOPBACK, Managed, http_get, start_haproxy, start_redis

from . import profile
from .loadgen import LoadGenerator, LoadSpec, default_workers
from .loop_lag import lag_figures, lag_scrape
from .probes import HttpProber, MachineSampler, ProcessSampler, RedisCommandSampler
from .servers import (
    NODE_WS,
    PYTHON_WEBSOCKETS,
    WSTIME_KINDS,
    Server,
    start_node_ws,
    start_python_websockets,
    start_wstime,
    start_wstime_kind,
)
from .stats import recovery_figures

logger = logging.getLogger(__name__)

IDLE_SETTLE = 1.0  # seconds between a server's start and its idle RSS reading


@dataclass(frozen=True)
class Options:
    """Knobs shared by the scenarios. Times in seconds."""

    window: float = 25.0  # steady window
    settle: float = 2.0  # after the ramp, before the window
    rate: float = 500.0  # new connections per second
    interval: float = 1.0  # tick interval of every server
    health_rate: float = 5.0  # /healthcheck requests per second during the window
    workers: int | None = None  # load-generator processes; None: one per 5,000 connections
    open_timeout: float = 10.0
    run_id: str = "bench"
    profile_dir: Path | None = None  # record the wstime node with py-spy into this folder


@contextlib.contextmanager
def _started(start, *args, **kwargs) -> Iterator[Any]:
    """Start a server or process; stop it on the way out, whatever happened."""
    thing = start(*args, **kwargs)
    try:
        yield thing
    finally:
        thing.stop()


def _data_dir() -> tempfile.TemporaryDirectory:
    """A throwaway WSTIME_DATA_DIR (the nodes' SQLite database), shared by a run's nodes."""
    return tempfile.TemporaryDirectory(prefix="wstime-bench-")


@contextlib.contextmanager
def _sampling(sampler) -> Iterator[Any]:
    sampler.start()
    try:
        yield sampler
    finally:
        sampler.stop()


_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ")
_VARYING = re.compile(r"(?<![A-Za-z])[0-9][0-9.:]*|client=\S+|[Cc]lient \S+")


def log_problems(text: str, *, top: int = 12) -> dict[str, Any]:
    """Count warning, error and traceback lines of a server log; the commonest messages.

    Messages are grouped with numbers and client ids blanked, so that 5,000 lines of one
    failure show as one entry with its count. The last line of each traceback (the
    exception) is counted as a message too.
    """
    counts = {"warning": 0, "error": 0, "traceback": 0}
    messages: Counter[str] = Counter()
    in_traceback = False
    for line in text.splitlines():
        if line.startswith("Traceback"):
            counts["traceback"] += 1
            in_traceback = True
        elif in_traceback and not line.startswith((" ", "\t")):
            in_traceback = False
            if line.strip() and not _TIMESTAMP.match(line):
                messages[_VARYING.sub("#", line.strip())[:200]] += 1
        head = line[:40]
        level = next(
            (name for name in ("CRITICAL", "ERROR", "WARNING") if f" {name} " in head), None
        )
        if level is not None:
            counts["error" if level != "WARNING" else "warning"] += 1
            messages[_VARYING.sub("#", _TIMESTAMP.sub("", line))[:200]] += 1
    return {**counts, "top": messages.most_common(top)}


def capacity(kind: str, connections: int, options: Options) -> dict[str, Any]:
    """Hold ``connections`` ticking connections on one ``kind`` server; measure the window."""
    with contextlib.ExitStack() as stack:
        redis: Managed | None = None
        if kind in WSTIME_KINDS:
            redis = stack.enter_context(_started(start_redis))
            data_dir = Path(stack.enter_context(_data_dir()))
            server: Server = stack.enter_context(
                _started(
                    start_wstime_kind,
                    kind,
                    name="bench-node",
                    interval=options.interval,
                    redis_url=redis.extra["url"],
                    data_dir=data_dir,
                )
            )
        elif kind == NODE_WS:
            server = stack.enter_context(_started(start_node_ws, interval=options.interval))
        elif kind == PYTHON_WEBSOCKETS:
            server = stack.enter_context(
                _started(start_python_websockets, interval=options.interval)
            )
        else:
            raise ValueError(f"unknown server kind {kind!r}")
        return _measure_capacity(stack, server, redis, connections, options)


def _measure_capacity(
    stack: contextlib.ExitStack,
    server: Server,
    redis: Managed | None,
    connections: int,
    options: Options,
) -> dict[str, Any]:
    machine = stack.enter_context(_sampling(MachineSampler()))
    process = stack.enter_context(_sampling(ProcessSampler([server.pid])))
    commands = redis_process = None
    if redis is not None:
        commands = stack.enter_context(_sampling(RedisCommandSampler(redis.extra["url"])))
        redis_process = stack.enter_context(_sampling(ProcessSampler([redis.pid])))
    time.sleep(IDLE_SETTLE)
    rss_idle = process.rss_now()
    workers = options.workers or default_workers(connections)
    spec = LoadSpec(
        url=server.ws_url,
        connections=connections,
        rate=options.rate,
        interval=options.interval,
        workers=workers,
        open_timeout=options.open_timeout,
        id_prefix=f"{options.run_id}-{server.kind}-{connections}",
        max_duration=_max_duration(connections, options),
    )
    load = stack.enter_context(LoadGenerator(spec))
    recording = _start_profile(server, connections, options)  # the ramp and the window
    started = load.start()
    loadgen = stack.enter_context(_sampling(ProcessSampler(load.pids)))
    health = None
    if server.kind in WSTIME_KINDS:
        health = stack.enter_context(
            _sampling(
                HttpProber(LOOPBACK, server.ws_port, "/healthcheck", rate=options.health_rate)
            )
        )
    ramp = load.wait_ramped(timeout=connections / options.rate + options.open_timeout + 60)
    # Every connection's first frame comes an interval after it opened: start after that.
    window_start = max(time.monotonic(), ramp.resolved_at) + max(
        options.settle, 1.5 * options.interval
    )
    window = (window_start, window_start + options.window)
    lag_at_start = None
    if server.kind in WSTIME_KINDS:
        _sleep_until(window[0])
        lag_at_start = lag_scrape(server)
    _sleep_until(window[1] + 0.2)
    summary = profile.finish_recording(*recording) if recording is not None else None
    metrics = _metrics(server) if server.kind in WSTIME_KINDS else None
    loop_lag = None if lag_at_start is None else lag_figures(lag_at_start, lag_scrape(server))
    outcome = load.stop(window=window)
    figures = outcome.tally.figures()
    used = process.figures(*window)
    client_cpu = loadgen.figures(*window)["cpu_pct"]
    redis_cpu = redis_process.figures(*window)["cpu_pct"] if redis_process else None
    busy = machine.busy_pct(*window)
    others = (
        None
        if busy is None or used["cpu_pct"] is None or client_cpu is None
        else round(busy - used["cpu_pct"] - client_cpu - (redis_cpu or 0.0), 1)
    )
    rss_per_conn = (
        None
        if used["rss_bytes"] is None or not figures["established"]
        else (used["rss_bytes"] - rss_idle) / figures["established"]
    )
    result: dict[str, Any] = {
        "server": server.kind,
        "connections": connections,
        "window_s": options.window,
        "workers": workers,
        "ramp": {
            "seconds": round(ramp.resolved_at - started, 2),
            "achieved_rate": round(ramp.achieved_rate, 1),
            "established": ramp.established,
            "failed": ramp.failed,
        },
        "load": figures,
        "cpu_pct": used["cpu_pct"],
        "cpu_peak_pct": used["cpu_peak_pct"],
        "rss_idle_mb": round(rss_idle / 2**20, 1),
        "rss_mb": None if used["rss_bytes"] is None else round(used["rss_bytes"] / 2**20, 1),
        "kb_per_conn": None if rss_per_conn is None else round(rss_per_conn / 1024, 1),
        "loadgen_cpu_pct": client_cpu,
        "redis_cpu_pct": redis_cpu,
        "machine_busy_pct": busy,
        "others_cpu_pct": others,  # busy time of processes this run did not start
        "redis_cmds_per_s": commands.per_second(*window) if commands else None,
        "healthcheck": health.figures(*window) if health else None,
        "loop_lag": loop_lag,  # the node's own, over the window (bucket bounds)
        "log_problems": log_problems(server.managed.log()),
        "metrics": metrics,
    }
    if summary is not None:
        result["profile"] = summary
    return result


def failover(connections: int, options: Options, *, observe: float = 20.0) -> dict[str, Any]:
    """Two nodes behind HAProxy; ``kill -9`` the busier one; time every client's comeback."""
    with contextlib.ExitStack() as stack:
        redis = stack.enter_context(_started(start_redis))
        data_dir = Path(stack.enter_context(_data_dir()))
        nodes = {
            name: stack.enter_context(
                _started(
                    start_wstime,
                    name=name,
                    interval=options.interval,
                    redis_url=redis.extra["url"],
                    data_dir=data_dir,
                )
            )
            for name in ("bench-a", "bench-b")
        }
        haproxy = stack.enter_context(
            _started(start_haproxy, [node.ws_port for node in nodes.values()])
        )
        commands = stack.enter_context(_sampling(RedisCommandSampler(redis.extra["url"])))
        samplers = {
            name: stack.enter_context(_sampling(ProcessSampler([node.pid])))
            for name, node in nodes.items()
        }
        spec = LoadSpec(
            url=haproxy.extra["ws_url"],
            connections=connections,
            rate=options.rate,
            interval=options.interval,
            open_timeout=options.open_timeout,
            workers=options.workers or default_workers(connections),
            id_prefix=f"{options.run_id}-failover",
            reconnect=True,
            silence=3.5 * options.interval,
            max_duration=_max_duration(connections, options) + observe,
        )
        load = stack.enter_context(LoadGenerator(spec))
        started = load.start()
        ramp = load.wait_ramped(timeout=connections / options.rate + options.open_timeout + 60)
        # Two intervals and more: every session has a checkpoint in Redis before the kill.
        steady = max(time.monotonic(), ramp.resolved_at) + options.settle + 2 * options.interval
        _sleep_until(steady + options.interval * 3)
        before = load.census()
        victim = max(nodes, key=lambda name: before.get(name, 0))
        survivor = next(name for name in nodes if name != victim)
        kill_time = time.monotonic()
        nodes[victim].managed.kill()
        _sleep_until(kill_time + observe)
        after = load.census()
        outcome = load.stop(window=(steady, kill_time), killed_node=victim, kill_time=kill_time)
        recovered = recovery_figures(outcome.recoveries, within=min(10.0, observe))
        survivor_cpu = samplers[survivor].figures(kill_time, kill_time + observe)
        return {
            "connections": connections,
            "observe_s": observe,
            "ramp": {
                "seconds": round(ramp.resolved_at - started, 2),
                "established": ramp.established,
                "failed": ramp.failed,
            },
            "before_kill": dict(before),
            "after": dict(after),
            "killed": victim,
            "before_kill_load": outcome.tally.figures(),
            "recovery": recovered,
            "survivor_cpu_pct": survivor_cpu["cpu_pct"],
            "survivor_cpu_peak_pct": survivor_cpu["cpu_peak_pct"],
            "redis_cmds_per_s_before_kill": commands.per_second(steady, kill_time),
            "log_problems": {
                name: log_problems(node.managed.log()) for name, node in nodes.items()
            },
        }


_NODE_LABEL = re.compile(r'node="[^"]*",?')


def _metrics(server: Server) -> dict[str, float] | None:
    """The node's own counters from /metrics (wstime_* samples, histogram buckets left out)."""
    status, body = http_get(f"http://{LOOPBACK}:{server.ws_port}/metrics", 5.0)
    if status != 200:
        return None
    samples: dict[str, float] = {}
    for line in body.splitlines():
        if line.startswith("wstime_") and "_bucket{" not in line:
            name, _, value = line.rpartition(" ")
            name = _NODE_LABEL.sub("", name).replace(",}", "}").replace("{}", "")
            with contextlib.suppress(ValueError):
                samples[name] = float(value)
    return samples


def _max_duration(connections: int, options: Options) -> float:
    """How long load workers may live at most: ramp, settle, window and a margin."""
    return connections / options.rate + options.open_timeout + options.settle + options.window + 120


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _start_profile(server: Server, connections: int, options: Options):
    if options.profile_dir is None or server.kind not in WSTIME_KINDS:
        return None
    return _record(
        server.pid, options.profile_dir / f"{options.run_id}-{server.kind}-{connections}.folded"
    )


def _record(pid: int, out: Path):
    """Start py-spy on ``pid`` into ``out``: (process, out), or None with a warning."""
    process = profile.start_recording(pid, out=out)
    if process is None:
        logger.warning("py-spy is not installed: no profile (pip install -e '.[bench]')")
        return None
    return process, out
