"""Start the servers a benchmark compares: a wstime node and the two baselines.

``wstime-uvicorn`` is the same ASGI application under uvicorn instead of daphne, for comparing
the ASGI servers; it is not in the default set (:data:`KINDS`) and only ``--servers`` names it.

All listen on free loopback ports with a listen backlog of :data:`BACKLOG`; each is a
:class:`localcluster.processes.Managed` with its own folder and log, stopped by PID.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from localcluster.processes import (
    LOOPBACK,
    REPO,
    Managed,
    _spawn,
    _wait_started,
    free_port,
    http_get,
    node_env,
    port_open,
    start_node,
)
from timer.config.loader import start_value
from wstime.serve import APPLICATION, LISTEN_BACKLOG

BACKLOG = LISTEN_BACKLOG  # Twisted's default is 50: a ramp of 500 connections/s overflows it
NODE_BASELINE = REPO / "bench" / "baselines" / "node"

WSTIME = "wstime"
NODE_WS = "node-ws"
PYTHON_WEBSOCKETS = "python-websockets"
WSTIME_UVICORN = "wstime-uvicorn"
KINDS = (NODE_WS, PYTHON_WEBSOCKETS, WSTIME)  # the default set of a run
ALL_KINDS = (*KINDS, WSTIME_UVICORN)  # what --servers accepts
WSTIME_KINDS = (WSTIME, WSTIME_UVICORN)  # a wstime node: Redis, /healthcheck, /metrics
# uvicorn's sans-I/O implementation on python-websockets: close reasons and the denial
# response (websocket.http.response) without patches.
UVICORN_WS = "websockets-sansio"


def parse_kinds(text: str) -> list[str]:
    """Parse ``--servers`` (comma-separated kinds among :data:`ALL_KINDS`), keeping the order."""
    kinds = [part.strip() for part in text.split(",") if part.strip()]
    unknown = set(kinds) - set(ALL_KINDS)
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"servers are among {', '.join(ALL_KINDS)}; got {text!r}")
    return kinds


@dataclass
class Server:
    """A started server: what it is, its process, and where to send load."""

    kind: str
    managed: Managed
    ws_port: int  # the port the load goes to (raised backlog)

    @property
    def pid(self) -> int:
        return self.managed.pid

    @property
    def ws_url(self) -> str:
        return f"ws://{LOOPBACK}:{self.ws_port}/"

    def stop(self) -> None:
        self.managed.stop()


def node_available() -> str | None:
    """Return why the Node baseline cannot run, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (NODE_BASELINE / "node_modules" / "ws").is_dir():
        return f"ws is not installed: run `npm ci` in {NODE_BASELINE.relative_to(REPO)}"
    return None


def start_node_ws(*, interval: float, timeout: float = 15.0) -> Server:
    """Start the article's Node ``ws`` server (bench/baselines/node/server.js)."""
    problem = node_available()
    if problem:
        raise RuntimeError(problem)
    port = free_port()
    env = dict(
        os.environ,
        PORT=str(port),
        NAME=NODE_WS,
        TICK_MS=str(round(interval * 1000)),
        BACKLOG=str(BACKLOG),
    )
    managed = _spawn(
        NODE_WS,
        [shutil.which("node") or "node", "server.js"],
        env=env,
        cwd=NODE_BASELINE,
        port=port,
    )
    return Server(NODE_WS, _wait_started(managed, lambda: port_open(port), timeout), port)


def start_python_websockets(*, interval: float, timeout: float = 15.0) -> Server:
    """Start the Python ``websockets`` baseline (bench/baselines/python_websockets.py)."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "bench.baselines.python_websockets",
        "--port",
        str(port),
        "--name",
        PYTHON_WEBSOCKETS,
        "--interval",
        str(interval),
        "--backlog",
        str(BACKLOG),
    ]
    managed = _spawn(
        PYTHON_WEBSOCKETS, argv, env=dict(os.environ, PYTHONPATH=str(REPO)), cwd=REPO, port=port
    )
    return Server(PYTHON_WEBSOCKETS, _wait_started(managed, lambda: port_open(port), timeout), port)


def start_wstime(
    *,
    name: str,
    interval: float,
    redis_url: str,
    data_dir: Path,
    timeout: float = 60.0,
    ws_port: int | None = None,
    env: Mapping[str, str] | None = None,
) -> Server:
    """Start a wstime node (``wstime-node``, backlog :data:`BACKLOG`) with the Redis layer on.

    ``ws_port`` picks its port in advance (a load balancer configured before it starts).
    """
    managed = start_node(
        name=name,
        timeout=timeout,
        port=ws_port,
        env={
            "WSTIME_REDIS_URL": redis_url,
            "WSTIME_TICK_INTERVAL": str(interval),
            "WSTIME_DATA_DIR": str(data_dir),
            **(env or {}),
        },
    )
    return Server(WSTIME, managed, managed.port)


def start_wstime_uvicorn(
    *,
    name: str,
    interval: float,
    redis_url: str,
    data_dir: Path,
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
) -> Server:
    """Start ``wstime.asgi:application`` under uvicorn with a node's environment and frame limit.

    Not a production node: the patches in ``timer/server/`` are daphne's and do not apply, and
    the SIGTERM drain is not installed (it waits for daphne's reactor). The node's tasks start
    on first use, so one ``/healthcheck`` starts them before any load comes.
    """
    port = free_port()
    environment = node_env(
        WSTIME_NODE_NAME=name,
        WSTIME_REDIS_URL=redis_url,
        WSTIME_TICK_INTERVAL=str(interval),
        WSTIME_DATA_DIR=str(data_dir),
        PYTHONPATH=str(REPO),
        **dict(env or {}),
    )
    max_frame = start_value("WSTIME_MAX_CLIENT_FRAME", environment)
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        APPLICATION,
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--backlog",
        str(BACKLOG),
        "--ws",
        UVICORN_WS,
        "--ws-max-size",
        str(max_frame),
        "--no-access-log",
        "--lifespan",
        "off",
        # Like daphne's default verbosity: no line per connection from the server itself
        # (uvicorn logs "connection open" at INFO); the application's own logs are kept.
        "--log-level",
        "warning",
        # The application reads forwarded headers itself (WSTIME_TRUSTED_PROXIES).
        "--no-proxy-headers",
        "--timeout-graceful-shutdown",
        "5",
    ]
    managed = _spawn(f"uvicorn-{name}", argv, env=environment, cwd=REPO, port=port)
    managed.stop_signal = signal.SIGINT
    url = f"http://{LOOPBACK}:{port}"
    _wait_started(managed, lambda: http_get(f"{url}/livez", 0.5)[0] == 200, timeout)
    http_get(f"{url}/healthcheck", 5.0)  # starts the sampler, ticker and agent
    managed.extra.update(url=url, ws_url=f"ws://{LOOPBACK}:{port}/")
    return Server(WSTIME_UVICORN, managed, port)


def start_wstime_kind(kind: str, **options) -> Server:
    """Start a wstime node of ``kind`` (:data:`WSTIME_KINDS`) with :func:`start_wstime`'s options."""
    if kind == WSTIME:
        return start_wstime(**options)
    if kind == WSTIME_UVICORN:
        return start_wstime_uvicorn(**options)
    raise ValueError(f"not a wstime server kind: {kind!r}")
