"""CPU per WebSocket handshake, wstime beside the baselines, in one run.

A failover or a ramp is a burst of handshakes, and that is what saturates a node first: one
core divided by the CPU a handshake costs is the most connections per second a process can
take. Each server gets ``--connections`` clients at ``--rate`` per second, below saturation so
that every handshake completes, with a tick interval longer than the ramp so that no frame
flows: the server's CPU time during the ramp, less its idle rate, divided by the handshakes
made, is the cost of one handshake (for wstime: routing, checks, the session claim in Redis).

    .venv/bin/python -m bench.handshake_cost --connections 3000 --rate 250
    .venv/bin/python -m bench.handshake_cost --servers node-ws,python-websockets,wstime,wstime-uvicorn
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import tempfile
import time
from pathlib import Path

import psutil

from bench.loadgen import LoadGenerator, LoadSpec
from bench.servers import (
    ALL_KINDS,
    KINDS,
    NODE_WS,
    PYTHON_WEBSOCKETS,
    WSTIME_KINDS,
    Server,
    node_available,
    parse_kinds,
    start_node_ws,
    start_python_websockets,
    start_wstime_kind,
)
from localcluster.processes import start_redis

logger = logging.getLogger("bench.handshake_cost")

IDLE_SECONDS = 2.0  # how long the idle CPU rate is measured before the ramp


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def measure(server: Server, connections: int, rate: float, interval: float) -> dict[str, float]:
    """Ramp the clients into ``server``; return the handshakes made and their CPU cost."""
    process = psutil.Process(server.pid)
    before = cpu_seconds(process)
    time.sleep(IDLE_SECONDS)
    idle_rate = (cpu_seconds(process) - before) / IDLE_SECONDS
    spec = LoadSpec(
        url=server.ws_url,
        connections=connections,
        rate=rate,
        interval=interval,
        workers=1,
        id_prefix=f"handshake-{server.kind}",
        max_duration=connections / rate + 120,
    )
    with LoadGenerator(spec) as load:
        started = load.start()
        ramp_cpu_start = cpu_seconds(process)
        ramp = load.wait_ramped(timeout=connections / rate + 60)
        ramp_cpu = cpu_seconds(process) - ramp_cpu_start
        ramp_seconds = time.monotonic() - started
        load.stop(window=None)
    busy = max(0.0, ramp_cpu - idle_rate * ramp_seconds)
    made = max(1, ramp.established)
    return {
        "established": ramp.established,
        "failed": ramp.failed,
        "ms_per_handshake": 1000 * busy / made,
        "idle_core": idle_rate,
    }


def run(connections: int, rate: float, kinds: list[str]) -> list[tuple[str, dict[str, float]]]:
    """Measure each server of ``kinds`` in turn, each fresh (a wstime node with its own Redis)."""
    # Longer than the ramp: the first frame of every connection comes after the measurement.
    interval = connections / rate + 30
    results: list[tuple[str, dict[str, float]]] = []
    for kind in kinds:
        with contextlib.ExitStack() as stack:
            if kind in WSTIME_KINDS:
                redis = start_redis()
                stack.callback(redis.stop)
                data_dir = stack.enter_context(tempfile.TemporaryDirectory())
                server = start_wstime_kind(
                    kind,
                    name="handshake-node",
                    interval=interval,
                    redis_url=redis.extra["url"],
                    data_dir=Path(data_dir),
                )
            elif kind == NODE_WS:
                server = start_node_ws(interval=interval)
            else:
                server = start_python_websockets(interval=interval)
            stack.callback(server.stop)
            logger.info("%s: %d clients at %.0f/s", kind, connections, rate)
            results.append((kind, measure(server, connections, rate, interval)))
    return results


def report(results: list[tuple[str, dict[str, float]]], connections: int, rate: float) -> str:
    by_kind = dict(results)

    def ratio(ms: float, baseline: str) -> str:
        base = by_kind.get(baseline, {}).get("ms_per_handshake")
        return f"{ms / base:.1f}x" if base else "–"

    lines = [
        f"{connections:,} clients at {rate:.0f} new connections/s, no frames during the ramp",
        "",
        "| server | established | failed | CPU ms per handshake | ÷ Node ws "
        "| ÷ Python websockets | handshakes/s per core |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, figures in results:
        ms = figures["ms_per_handshake"]
        per_core = f"{1000 / ms:,.0f}" if ms > 0 else "–"
        lines.append(
            f"| {kind} | {figures['established']:,} | {figures['failed']:,} | "
            f"{ms:.2f} | {ratio(ms, NODE_WS)} | {ratio(ms, PYTHON_WEBSOCKETS)} "
            f"| {per_core} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=250.0, help="new connections/s")
    parser.add_argument(
        "--servers",
        type=parse_kinds,
        default=list(KINDS),
        help=f"among {','.join(ALL_KINDS)}, measured in this order (default {','.join(KINDS)})",
    )
    parser.add_argument("--skip-node", action="store_true", help="leave out the Node baseline")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    kinds = [kind for kind in args.servers if not (kind == NODE_WS and args.skip_node)]
    if NODE_WS in kinds and node_available() is not None:
        logger.warning("Node baseline left out: %s", node_available())
        kinds.remove(NODE_WS)
    print(report(run(args.connections, args.rate, kinds), args.connections, args.rate))


if __name__ == "__main__":
    main()
