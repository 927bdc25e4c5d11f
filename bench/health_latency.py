#!/usr/bin/env python
"""Measure ``/healthcheck`` latency (p50/p99) while a node holds many ticking WebSockets.

Starts its own ``daphne wstime.asgi:application`` on a free loopback port (own data folder),
opens ``--connections`` ticking WebSocket connections to it from a child process (so the
clients' work does not skew the timing), then times ``--requests`` sequential health checks,
each on a new TCP connection as HAProxy's ``option httpchk`` makes them. Everything stops by
itself: the clients after ``--hold`` seconds, the whole run after ``--deadline`` seconds.

    .venv/bin/python bench/health_latency.py --connections 1000
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import logging
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
logger = logging.getLogger("bench.health_latency")

OPEN_AT_ONCE = 50  # handshakes in flight at a time while the clients connect


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{what} within {timeout:.0f}s")


def raise_open_files_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --- the child: hold N ticking connections


async def hold_clients(port: int, count: int, seconds: float) -> None:
    from websockets.asyncio.client import connect

    frames = 0
    gate = asyncio.Semaphore(OPEN_AT_ONCE)

    async def client(number: int) -> None:
        nonlocal frames
        async with gate:
            websocket = await connect(
                f"ws://127.0.0.1:{port}/?id=bench{number:06d}", open_timeout=30, ping_interval=None
            )
        async with websocket:
            async for _ in websocket:
                frames += 1

    tasks = [asyncio.create_task(client(n)) for n in range(count)]
    await asyncio.wait(tasks, timeout=seconds)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    logger.info("clients: %d frames received in %.0fs", frames, seconds)


# --- the parent: node, clients, timing


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(port: int, requests: int, pause: float) -> list[float]:
    latencies = []
    for _ in range(requests):
        start = time.perf_counter()
        status, _ = get(port, "/healthcheck")
        latencies.append((time.perf_counter() - start) * 1000)
        if status not in (200, 503):
            raise RuntimeError(f"/healthcheck answered {status}")
        time.sleep(pause)
    return latencies


def run(args: argparse.Namespace) -> dict:
    port = free_port()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="wstime-bench-") as data_dir:
        env = {
            **os.environ,
            "WSTIME_DATA_DIR": data_dir,
            "WSTIME_NODE_NAME": "bench",
            "WSTIME_LOG_LEVEL": "WARNING",
            "WSTIME_LINK_CAPACITY": "1G",
            "DJANGO_SECRET_KEY": "bench-" + "x" * 44,
        }
        node = subprocess.Popen(
            [sys.executable, "-m", "wstime.serve", "--bind", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        clients = None
        try:
            wait_until(lambda: get(port, "/livez")[0] == 200, 30, "the node did not start")
            get(port, "/healthcheck")  # starts the node's tasks
            hold = max(10.0, args.deadline - (time.monotonic() - started) - 5)
            clients = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--hold-clients",
                    str(args.connections),
                    "--port",
                    str(port),
                    "--hold",
                    str(hold),
                ],
                cwd=ROOT,
            )

            def connected() -> bool:
                return (
                    json.loads(get(port, "/healthcheck?format=json")[1])["connections"]
                    >= args.connections
                )

            wait_until(connected, min(120, hold), f"{args.connections} clients did not connect")
            time.sleep(2)  # a couple of full tick rounds before timing
            latencies = measure(port, args.requests, args.pause)
            detail = json.loads(get(port, "/healthcheck?format=json")[1])
        finally:
            for process in (clients, node):
                if process is not None and process.poll() is None:
                    process.terminate()
                    try:
                        process.wait(10)
                    except subprocess.TimeoutExpired:
                        process.kill()
    return {
        "date": time.strftime("%Y-%m-%d"),
        "connections": detail["connections"],
        "requests": len(latencies),
        "p50_ms": round(statistics.median(latencies), 3),
        "p90_ms": round(percentile(latencies, 0.90), 3),
        "p99_ms": round(percentile(latencies, 0.99), 3),
        "max_ms": round(max(latencies), 3),
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--connections",
        type=int,
        default=2000,
        help="ticking WebSocket connections held open (default 2000)",
    )
    parser.add_argument(
        "--requests", type=int, default=500, help="health checks timed (default 500)"
    )
    parser.add_argument(
        "--pause", type=float, default=0.01, help="seconds between two health checks (default 0.01)"
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=180,
        help="seconds after which the run stops in any case (default 180)",
    )
    parser.add_argument(
        "--save",
        action="store_true",
        help="also write the figures to bench/results/<date>-health-latency.json",
    )
    parser.add_argument("--hold-clients", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--hold", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    raise_open_files_limit()
    if args.hold_clients is not None:
        asyncio.run(hold_clients(args.port, args.hold_clients, args.hold))
        return
    figures = run(args)
    logger.info(
        "/healthcheck with %d open connections, %d requests: p50 %.2f ms, p90 %.2f ms, "
        "p99 %.2f ms, max %.2f ms",
        figures["connections"],
        figures["requests"],
        figures["p50_ms"],
        figures["p90_ms"],
        figures["p99_ms"],
        figures["max_ms"],
    )
    if args.save:
        target = ROOT / "bench" / "results" / f"{figures['date']}-health-latency.json"
        target.parent.mkdir(exist_ok=True)
        target.write_text(json.dumps(figures, indent=2) + "\n")
        logger.info("saved %s", target.relative_to(ROOT))


if __name__ == "__main__":
    main()
