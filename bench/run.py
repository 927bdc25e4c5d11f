"""Run wstime's benchmark (``make bench``): capacity beside the baselines, failover, the storm.

    python -m bench.run                     # 1k, 5k, 10k; 25 s windows; failover with 2,000;
                                            # the storm: 5,000 onto a node holding 1,000
    python -m bench.run --quick             # small N, short windows, under a minute
    python -m bench.run --sizes 1000,5000 --window 30 --skip-node --profile

Shows progress on stderr (step, how far, time left), prints a Markdown table and writes
bench/results/<UTC date-time>.json, .md and -capacity.png / -failover.png plots. Everything runs
on 127.0.0.1, bounded in connections and time; every process it starts is stopped by PID.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import shlex
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from localcluster.processes import REPO

from . import plots, report, scenarios, storm
from .loadgen import MAX_CONNECTIONS, raise_nofile_limit
from .progress import Progress, Step, capacity_estimate, failover_estimate, storm_estimate
from .servers import (
    ALL_KINDS,
    KINDS,
    NODE_BASELINE,
    NODE_WS,
    PYTHON_WEBSOCKETS,
    node_available,
    parse_kinds,
)

logger = logging.getLogger("bench")

RESULTS = REPO / "bench" / "results"
QUICK = {
    "sizes": [200],
    "window": 4.0,
    "settle": 1.0,
    "failover_clients": 200,
    "observe": 8.0,
    "storm_clients": 300,
    "storm_survivor_clients": 100,
    "storm_observe": 6.0,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="N=200, 4 s windows, failover with 200 clients, a storm of 300 "
        "onto 100 (about a minute)",
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=None,
        help="connection counts for the capacity curve (default 1000,5000,10000)",
    )
    parser.add_argument("--window", type=float, default=None, help="steady window, s (25)")
    parser.add_argument(
        "--settle", type=float, default=None, help="pause between ramp and window, s (2)"
    )
    parser.add_argument("--rate", type=float, default=500.0, help="new connections/s (500)")
    parser.add_argument("--interval", type=float, default=1.0, help="tick interval, s (1)")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="load-generator processes (default: one per 5,000 connections)",
    )
    parser.add_argument(
        "--failover-clients", type=int, default=None, help="clients in the failover scenario (2000)"
    )
    parser.add_argument(
        "--observe", type=float, default=None, help="seconds watched after the node kill (20)"
    )
    parser.add_argument(
        "--storm-clients",
        type=int,
        default=None,
        help="clients of the node killed in the storm (5000)",
    )
    parser.add_argument(
        "--storm-survivor-clients",
        type=int,
        default=None,
        help="the survivor's own clients, ticking through the storm (1000)",
    )
    parser.add_argument(
        "--storm-observe",
        type=float,
        default=None,
        help="seconds of storm watched after the kill (20)",
    )
    parser.add_argument(
        "--servers",
        type=parse_kinds,
        default=list(KINDS),
        help=f"servers of the capacity curve, among {','.join(ALL_KINDS)} "
        f"(default {','.join(KINDS)})",
    )
    parser.add_argument(
        "--skip-node",
        action="store_true",
        help="leave out the Node ws baseline (when node or npm is missing)",
    )
    parser.add_argument(
        "--skip-python", action="store_true", help="leave out the Python websockets baseline"
    )
    parser.add_argument("--skip-capacity", action="store_true")
    parser.add_argument("--skip-failover", action="store_true")
    parser.add_argument("--skip-storm", action="store_true")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="record the wstime node with py-spy during each window, and the "
        "storm's survivor from the kill to the end of the storm",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS,
        help="where the .json and .md go (bench/results)",
    )
    parser.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="run nothing: write the .md and plots of an earlier run's .json again",
    )
    args = parser.parse_args(argv)
    quick = QUICK if args.quick else {}
    args.sizes = args.sizes or quick.get("sizes") or [1000, 5000, 10000]
    args.window = args.window or quick.get("window") or 25.0
    args.settle = args.settle if args.settle is not None else quick.get("settle", 2.0)
    args.failover_clients = args.failover_clients or quick.get("failover_clients") or 2000
    args.observe = args.observe or quick.get("observe") or 20.0
    args.storm_clients = args.storm_clients or quick.get("storm_clients") or 5000
    args.storm_survivor_clients = (
        args.storm_survivor_clients or quick.get("storm_survivor_clients") or 1000
    )
    args.storm_observe = args.storm_observe or quick.get("storm_observe") or 20.0
    if (
        max(args.sizes + [args.failover_clients, args.storm_clients, args.storm_survivor_clients])
        > MAX_CONNECTIONS
    ):
        parser.error(f"at most {MAX_CONNECTIONS:,} connections")
    return args


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 1000,5000, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes must be positive")
    return sizes


def servers_to_run(args: argparse.Namespace) -> list[str]:
    """The server kinds of the capacity curve, baselines first; exit when Node is missing."""
    kinds = [
        k
        for k in ALL_KINDS
        if k in args.servers
        and not (k == NODE_WS and args.skip_node)
        and not (k == PYTHON_WEBSOCKETS and args.skip_python)
    ]
    if NODE_WS in kinds:
        problem = node_available()
        if problem:
            raise SystemExit(
                f"The Node ws baseline cannot run: {problem}. `make bench` installs "
                f"it (npm ci in {NODE_BASELINE.relative_to(REPO)}); or pass "
                "--skip-node."
            )
    return kinds


def environment() -> dict[str, Any]:
    """Versions and machine facts that the figures depend on."""
    env: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    for package in (
        "django",
        "channels",
        "daphne",
        "twisted",
        "autobahn",
        "channels-redis",
        "redis",
        "websockets",
        "uvicorn",
    ):
        try:
            env["redis-py" if package == "redis" else package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    for name, argv, word in (
        ("node", ["node", "--version"], 0),
        ("redis-server", ["redis-server", "--version"], 2),
        ("haproxy", ["haproxy", "-v"], 2),
    ):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
            env[name] = out.split()[word].removeprefix("v=").removeprefix("v")
        except (OSError, subprocess.SubprocessError, IndexError):
            pass
    env["wstime commit"] = _commit()
    ws_package = NODE_BASELINE / "node_modules" / "ws" / "package.json"
    if ws_package.exists():
        env["node ws"] = json.loads(ws_package.read_text())["version"]
    return env


def _commit() -> str:
    """The checkout's commit, with ``+changes`` when the app's code differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            text=True,
            capture_output=True,
            timeout=10,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", "timer", "wstime", "localcluster", "deploy"],
            cwd=REPO,
            text=True,
            capture_output=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}+changes" if changed else head or "unknown"


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the scenarios and return the result (also the JSON written to disk)."""
    kinds = servers_to_run(args) if not args.skip_capacity else []
    started = datetime.datetime.now(datetime.UTC)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y-%m-%dT%H-%M-%SZ")
    options = scenarios.Options(
        window=args.window,
        settle=args.settle,
        rate=args.rate,
        interval=args.interval,
        workers=args.workers,
        run_id=stamp,  # names clients and profile files
        profile_dir=args.results_dir if args.profile else None,
    )
    # Servers and workers inherit the limit: N sockets each, plus HAProxy's two per client.
    raise_nofile_limit(
        2
        * max(
            args.sizes + [args.failover_clients, args.storm_clients + args.storm_survivor_clients]
        )
        + 1024
    )
    result: dict[str, Any] = {
        "started_utc": started.isoformat(timespec="seconds"),
        "command": "python -m bench.run " + shlex.join(sys.argv[1:]),
        "options": {
            "sizes": args.sizes,
            "window": args.window,
            "settle": args.settle,
            "rate": args.rate,
            "interval": args.interval,
            "workers": args.workers,
            "failover_clients": args.failover_clients,
            "observe": args.observe,
            "storm_clients": args.storm_clients,
            "storm_survivor_clients": args.storm_survivor_clients,
            "storm_observe": args.storm_observe,
            "health_rate": options.health_rate,
            "quick": args.quick,
        },
        "environment": environment(),
        "capacity": [],
        "failover": None,
        "storm": None,
    }
    capacity_runs = [(connections, kind) for connections in args.sizes for kind in kinds]
    progress = Progress(plan(args, capacity_runs))
    for index, (connections, kind) in enumerate(capacity_runs):
        progress.start(index)
        began = time.monotonic()
        row = scenarios.capacity(kind, connections, options)
        result["capacity"].append(row)
        logger.info(
            "  %s: delivered %s %%, CPU %s %%, %.0f s",
            kind,
            row["load"]["delivered_pct"],
            row["cpu_pct"],
            time.monotonic() - began,
        )
    if not args.skip_failover:
        progress.start(len(capacity_runs))
        result["failover"] = scenarios.failover(
            args.failover_clients, options, observe=args.observe
        )
    if not args.skip_storm:
        progress.start(len(capacity_runs) + (not args.skip_failover))
        result["storm"] = storm.storm(
            args.storm_clients, args.storm_survivor_clients, options, observe=args.storm_observe
        )
    progress.done()
    result["targets"] = report.judge(result)
    result["finished_utc"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    base = args.results_dir / stamp
    result["plots"] = draw_plots(result, base)
    markdown = report.render(result)
    result["files"] = {
        "json": str(base.with_suffix(".json")),
        "md": str(base.with_suffix(".md")),
        **{f"{kind} plot": str(base.parent / name) for kind, name in result["plots"].items()},
    }
    base.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    base.with_suffix(".md").write_text(markdown)
    sys.stdout.write(markdown)
    logger.info("wrote %s and %s", base.with_suffix(".json"), base.with_suffix(".md"))
    return result


def plan(args: argparse.Namespace, capacity_runs: list[tuple[int, str]]) -> list[Step]:
    """The run's steps, in order, with their estimated durations."""
    steps = [
        Step(
            f"capacity: {kind} with {connections:,} connections",
            capacity_estimate(connections, rate=args.rate, settle=args.settle, window=args.window),
        )
        for connections, kind in capacity_runs
    ]
    if not args.skip_failover:
        steps.append(
            Step(
                f"failover: {args.failover_clients:,} clients through HAProxy",
                failover_estimate(
                    args.failover_clients,
                    rate=args.rate,
                    settle=args.settle,
                    interval=args.interval,
                    observe=args.observe,
                ),
            )
        )
    if not args.skip_storm:
        steps.append(
            Step(
                f"storm: {args.storm_clients:,} clients of a killed node onto one "
                f"holding {args.storm_survivor_clients:,}",
                storm_estimate(
                    args.storm_clients,
                    args.storm_survivor_clients,
                    rate=args.rate,
                    settle=args.settle,
                    interval=args.interval,
                    observe=args.storm_observe,
                ),
            )
        )
    return steps


def draw_plots(result: dict[str, Any], base: Path) -> dict[str, str]:
    """The run's PNG plots next to ``base``; none, with a warning, without matplotlib."""
    try:
        return plots.write_plots(result, base)
    except ImportError as exc:
        logger.warning("no plots: %s (pip install -e '.[bench]')", exc)
        return {}


def render_again(path: Path) -> None:
    """Write ``path``'s Markdown (and plots) again from its JSON (after a change to the report)."""
    result = json.loads(path.read_text())
    result["targets"] = report.judge(result)  # the targets as the report now sets them
    result["plots"] = draw_plots(result, path.with_suffix(""))
    markdown = report.render(result)
    path.with_suffix(".md").write_text(markdown)
    sys.stdout.write(markdown)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr
    )
    args = parse_args(argv)
    if args.render:
        render_again(args.render)
    else:
        run(args)


if __name__ == "__main__":
    main()
