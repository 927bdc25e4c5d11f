"""CPU per WebSocket handshake, wstime beside the baselines, in one run.

A failover or a ramp is a burst of handshakes, and that is what saturates a node first: one
core divided by the CPU a handshake costs is the most connections per second a process can
take. Each server gets ``--connections`` clients at ``--rate`` per second, below saturation so
that every handshake completes, with a tick interval longer than the ramp so that no frame
flows: the server's CPU time during the ramp, less its idle rate, divided by the handshakes
made, is the cost of one handshake (for wstime: routing, checks, the session claim in Redis).

    .venv/bin/python -m bench.handshake_cost --connections 3000 --rate 250
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
    NODE_WS,
    PYTHON_WEBSOCKETS,
    WSTIME,
    Server,
    node_available,
    start_node_ws,
    start_python_websockets,
    start_wstime,
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
    spec = LoadSpec(url=server.ws_url, connections=connections, rate=rate, interval=interval,
                    workers=1, id_prefix=f"handshake-{server.kind}",
                    max_duration=connections / rate + 120)
    with LoadGenerator(spec) as load:
        started = load.start()
        ramp_cpu_start = cpu_seconds(process)
        ramp = load.wait_ramped(timeout=connections / rate + 60)
        ramp_cpu = cpu_seconds(process) - ramp_cpu_start
        ramp_seconds = time.monotonic() - started
        load.stop(window=None)
    busy = max(0.0, ramp_cpu - idle_rate * ramp_seconds)
    made = max(1, ramp.established)
    return {"established": ramp.established, "failed": ramp.failed,
            "ms_per_handshake": 1000 * busy / made, "idle_core": idle_rate}


def run(connections: int, rate: float, skip_node: bool) -> list[tuple[str, dict[str, float]]]:
    # Longer than the ramp: the first frame of every connection comes after the measurement.
    interval = connections / rate + 30
    results: list[tuple[str, dict[str, float]]] = []
    starters = []
    if not skip_node:
        starters.append((NODE_WS, lambda: start_node_ws(interval=interval)))
    starters.append((PYTHON_WEBSOCKETS, lambda: start_python_websockets(interval=interval)))
    starters.append((WSTIME, None))
    for kind, start in starters:
        with contextlib.ExitStack() as stack:
            if kind == WSTIME:
                redis = start_redis()
                stack.callback(redis.stop)
                data_dir = stack.enter_context(tempfile.TemporaryDirectory())
                server = start_wstime(name="handshake-node", interval=interval,
                                      redis_url=redis.extra["url"], data_dir=Path(data_dir))
            else:
                server = start()
            stack.callback(server.stop)
            logger.info("%s: %d clients at %.0f/s", kind, connections, rate)
            results.append((kind, measure(server, connections, rate, interval)))
    return results


def report(results: list[tuple[str, dict[str, float]]], connections: int, rate: float) -> str:
    baseline = dict(results).get(NODE_WS)
    lines = [f"{connections:,} clients at {rate:.0f} new connections/s, no frames during the ramp",
             "",
             "| server | established | failed | CPU ms per handshake | ÷ Node ws | handshakes/s "
             "per core |",
             "|---|---|---|---|---|---|"]
    for kind, figures in results:
        ms = figures["ms_per_handshake"]
        ratio = f"{ms / baseline['ms_per_handshake']:.1f}x" if baseline else "–"
        per_core = f"{1000 / ms:,.0f}" if ms > 0 else "–"
        lines.append(f"| {kind} | {figures['established']:,} | {figures['failed']:,} | "
                     f"{ms:.2f} | {ratio} | {per_core} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=250.0, help="new connections/s")
    parser.add_argument("--skip-node", action="store_true", help="leave out the Node baseline")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    skip_node = args.skip_node or node_available() is not None
    if skip_node and not args.skip_node:
        logger.warning("Node baseline left out: %s", node_available())
    print(report(run(args.connections, args.rate, skip_node), args.connections, args.rate))


if __name__ == "__main__":
    main()
