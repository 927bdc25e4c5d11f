"""Rebalancing onto a new node: N clients on one node, a second joins; how fast, how spread.

    python -m bench.rebalance --clients 5000     # writes bench/results/<time>-rebalance.{json,md}

Redis, node A and HAProxy (naming A and a node B that is not running yet) start on loopback;
the clients (:mod:`bench.loadgen`, behaving like the page: reconnect after the close's hint)
all land on A. Then B starts with default rebalancing settings, and the run records:

- the time from B's start until the split is within ``--within`` % of even (by the clients'
  own count of where they are), and the split over time;
- every move (a 1012 close followed by a reconnect): how many, how many resumed exactly
  (first frame on the new node = last on the old + 1), how many clients moved twice;
- the reconnect spread: reconnects per 100 ms slot (busiest, and the 99th percentile).

Everything it starts is stopped by PID before it returns.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import math
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from localcluster.processes import LOOPBACK, free_port, http_get, start_haproxy, start_redis
from timer.core.close_codes import CLOSE_SERVICE_RESTART

from .loadgen import MAX_CONNECTIONS, LoadGenerator, LoadSpec, default_workers, raise_nofile_limit
from .scenarios import Options, _data_dir, _started, log_problems
from .servers import start_wstime

logger = logging.getLogger(__name__)

RESULTS = Path(__file__).resolve().parent / "results"
SLOT = 0.1  # seconds: the reconnect spread is counted per slot


def rebalance(
    connections: int,
    options: Options,
    *,
    within_pct: float = 10.0,
    observe: float = 180.0,
    after_balanced: float = 10.0,
) -> dict[str, Any]:
    """Run the scenario (see the module docstring) and return its figures."""
    with contextlib.ExitStack() as stack:
        redis = stack.enter_context(_started(start_redis))
        data_dir = Path(stack.enter_context(_data_dir()))
        agents = {"bench-a": free_port(), "bench-b": free_port()}
        b_port = free_port()
        a = stack.enter_context(
            _started(
                start_wstime,
                name="bench-a",
                interval=options.interval,
                redis_url=redis.extra["url"],
                data_dir=data_dir,
                env={"WSTIME_AGENT_PORT": str(agents["bench-a"])},
            )
        )
        haproxy = stack.enter_context(
            _started(start_haproxy, [a.ws_port, b_port], agent_ports=list(agents.values()))
        )
        spec = LoadSpec(
            url=haproxy.extra["ws_url"],
            connections=connections,
            rate=options.rate,
            interval=options.interval,
            open_timeout=options.open_timeout,
            workers=options.workers or default_workers(connections),
            id_prefix=f"{options.run_id}-rebalance",
            reconnect=True,
            silence=3.5 * options.interval,
            max_duration=connections / options.rate + options.open_timeout + observe + 120,
        )
        load = stack.enter_context(LoadGenerator(spec))
        load.start()
        ramp = load.wait_ramped(timeout=connections / options.rate + options.open_timeout + 60)
        time.sleep(options.settle + 2 * options.interval)
        before = load.census()
        b_started = time.monotonic()
        b = stack.enter_context(
            _started(
                start_wstime,
                name="bench-b",
                interval=options.interval,
                redis_url=redis.extra["url"],
                data_dir=data_dir,
                ws_port=b_port,
                env={"WSTIME_AGENT_PORT": str(agents["bench-b"])},
            )
        )
        b_ready = time.monotonic() - b_started
        half, margin = connections / 2, connections / 2 * within_pct / 100
        timeline: list[tuple[float, int, int]] = []
        balanced_after = None
        while time.monotonic() - b_started < observe:
            census = load.census()
            at = time.monotonic() - b_started
            timeline.append((round(at, 1), census.get("bench-a", 0), census.get("bench-b", 0)))
            if (
                balanced_after is None
                and abs(census.get("bench-a", 0) - half) <= margin
                and abs(census.get("bench-b", 0) - half) <= margin
            ):
                balanced_after = at
            if balanced_after is not None and at - balanced_after >= after_balanced:
                break
            time.sleep(0.5)
        moves = load.moves(CLOSE_SERVICE_RESTART)
        node_metrics = {
            name: _rebalance_metrics(node.ws_port)
            for name, node in (("bench-a", a), ("bench-b", b))
        }
        load.stop(window=None)
        problems = {
            name: log_problems(node.managed.log())
            for name, node in (("bench-a", a), ("bench-b", b))
        }
    return {
        "connections": connections,
        "interval_s": options.interval,
        "within_pct": within_pct,
        "ramp": {"established": ramp.established, "failed": ramp.failed},
        "before": dict(before),
        "node_b_serving_after_s": round(b_ready, 2),
        "balanced_after_s": None if balanced_after is None else round(balanced_after, 1),
        "final": {"bench-a": timeline[-1][1], "bench-b": timeline[-1][2]} if timeline else {},
        "timeline": timeline,
        "moves": move_figures(moves, start=b_started),
        "metrics": node_metrics,
        "log_problems": problems,
    }


def move_figures(moves: list[tuple], *, start: float) -> dict[str, Any]:
    """Figures of the 1012 reconnects: exactness, repeats, and their spread over 100 ms slots."""
    if not moves:
        return {"moved": 0}
    deltas = Counter("unresumed" if m[3] is None else m[3] for m in moves)
    per_client = Counter(m[0] for m in moves)
    slots = Counter(int((m[2] - start) / SLOT) for m in moves)
    span = range(min(slots), max(slots) + 1)
    counts = sorted(slots.get(s, 0) for s in span)
    reconnects = sorted(m[2] - start for m in moves)
    return {
        "moved": len(moves),
        "resumed_exactly": deltas.get(1, 0),
        "first_frame_minus_last": {str(k): v for k, v in sorted(deltas.items(), key=str)},
        "clients_moved_twice": sum(1 for n in per_client.values() if n > 1),
        "landed_on": dict(Counter(m[5] for m in moves)),
        "reconnects_first_s": round(reconnects[0], 2),
        "reconnects_last_s": round(reconnects[-1], 2),
        "busiest_slot": counts[-1],
        "p99_slot": counts[min(len(counts) - 1, math.ceil(0.99 * len(counts)) - 1)],
        "mean_per_slot": round(len(moves) / len(counts), 2),
    }


def _rebalance_metrics(port: int) -> dict[str, float]:
    status, body = http_get(f"http://{LOOPBACK}:{port}/metrics", 5.0)
    out: dict[str, float] = {}
    for line in body.splitlines() if status == 200 else []:
        if line.startswith(
            ("wstime_rebalance_moved_total", "wstime_rebalance_share", "wstime_open_connections")
        ):
            name, _, value = line.rpartition(" ")
            out[name.split("{")[0]] = float(value)
    return out


def render(result: dict[str, Any]) -> str:
    """The run as a short Markdown report."""
    moves = result["moves"]
    lines = [
        f"# Rebalancing onto a new node: {result['connections']:,} clients",
        "",
        f"Command: `{result['command']}`; started {result['started_utc']}; load average "
        f"{result['load_average']}.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| before node B | {result['before']} |",
        f"| node B serving after its start | {result['node_b_serving_after_s']} s |",
        f"| split within {result['within_pct']:g} % of even after B's start | "
        f"{result['balanced_after_s']} s |",
        f"| final split | {result['final']} |",
        f"| moved (1012 + hint) | {moves['moved']:,} |",
    ]
    if moves["moved"]:
        lines += [
            f"| resumed exactly (first frame = last + 1) | {moves['resumed_exactly']:,} "
            f"({moves['first_frame_minus_last']}) |",
            f"| clients moved twice | {moves['clients_moved_twice']} |",
            f"| reconnects from / to (s after B's start) | {moves['reconnects_first_s']} / "
            f"{moves['reconnects_last_s']} |",
            f"| reconnects per 100 ms slot: mean / p99 / busiest | {moves['mean_per_slot']} / "
            f"{moves['p99_slot']} / {moves['busiest_slot']} |",
        ]
    lines += [
        "",
        "Split over time (s after B's start, clients on A, on B):",
        "",
        "    " + "  ".join(f"{t:g}:{a}/{b}" for t, a, b in result["timeline"][::4]),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr
    )
    parser = argparse.ArgumentParser(
        prog="python -m bench.rebalance",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clients", type=int, default=5000, help="clients (5000)")
    parser.add_argument("--rate", type=float, default=500.0, help="new connections/s (500)")
    parser.add_argument("--interval", type=float, default=1.0, help="tick interval, s (1)")
    parser.add_argument(
        "--within",
        type=float,
        default=10.0,
        help="balanced when each node is within this %% of even (10)",
    )
    parser.add_argument(
        "--observe", type=float, default=180.0, help="longest wait for the balance, s (180)"
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not 2 <= args.clients <= MAX_CONNECTIONS:
        parser.error(f"--clients must be within 2..{MAX_CONNECTIONS}")
    started = datetime.datetime.now(datetime.UTC)
    stamp = started.strftime("%Y-%m-%dT%H-%M-%SZ")
    raise_nofile_limit(3 * args.clients + 1024)
    options = Options(rate=args.rate, interval=args.interval, run_id=stamp)
    load_average = [round(x, 2) for x in os.getloadavg()]
    result = rebalance(args.clients, options, within_pct=args.within, observe=args.observe)
    result.update(
        started_utc=started.isoformat(timespec="seconds"),
        command="python -m bench.rebalance " + " ".join(sys.argv[1:] if argv is None else argv),
        load_average=load_average,
    )
    args.results_dir.mkdir(parents=True, exist_ok=True)
    base = args.results_dir / f"{stamp}-rebalance"
    base.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    markdown = render(result)
    base.with_suffix(".md").write_text(markdown)
    sys.stdout.write(markdown)
    logger.info("wrote %s and %s", base.with_suffix(".json"), base.with_suffix(".md"))


if __name__ == "__main__":
    main()
