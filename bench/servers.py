"""Start the servers a benchmark compares: a wstime node and the two baselines.

All listen on free loopback ports with a listen backlog of :data:`BACKLOG`; each is a
:class:`localcluster.processes.Managed` with its own folder and log, stopped by PID.
"""

from __future__ import annotations

import os
import shutil
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
    port_open,
    start_node,
)
from wstime.serve import LISTEN_BACKLOG

BACKLOG = LISTEN_BACKLOG  # Twisted's default is 50: a ramp of 500 connections/s overflows it
NODE_BASELINE = REPO / "bench" / "baselines" / "node"

WSTIME = "wstime"
NODE_WS = "node-ws"
PYTHON_WEBSOCKETS = "python-websockets"
KINDS = (NODE_WS, PYTHON_WEBSOCKETS, WSTIME)


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
    env = dict(os.environ, PORT=str(port), NAME=NODE_WS, TICK_MS=str(round(interval * 1000)),
               BACKLOG=str(BACKLOG))
    managed = _spawn(NODE_WS, [shutil.which("node") or "node", "server.js"], env=env,
                     cwd=NODE_BASELINE, port=port)
    return Server(NODE_WS, _wait_started(managed, lambda: port_open(port), timeout), port)


def start_python_websockets(*, interval: float, timeout: float = 15.0) -> Server:
    """Start the Python ``websockets`` baseline (bench/baselines/python_websockets.py)."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.baselines.python_websockets", "--port", str(port),
            "--name", PYTHON_WEBSOCKETS, "--interval", str(interval), "--backlog", str(BACKLOG)]
    managed = _spawn(PYTHON_WEBSOCKETS, argv, env=dict(os.environ, PYTHONPATH=str(REPO)),
                     cwd=REPO, port=port)
    return Server(PYTHON_WEBSOCKETS, _wait_started(managed, lambda: port_open(port), timeout),
                  port)


def start_wstime(*, name: str, interval: float, redis_url: str, data_dir: Path,
                 timeout: float = 60.0, ws_port: int | None = None,
                 env: Mapping[str, str] | None = None) -> Server:
    """Start a wstime node (``wstime-node``, backlog :data:`BACKLOG`) with the Redis layer on.

    ``ws_port`` picks its port in advance (a load balancer configured before it starts).
    """
    managed = start_node(
        name=name, timeout=timeout, port=ws_port,
        env={"WSTIME_REDIS_URL": redis_url, "WSTIME_TICK_INTERVAL": str(interval),
             "WSTIME_DATA_DIR": str(data_dir), **(env or {})},
    )
    return Server(WSTIME, managed, managed.port)
