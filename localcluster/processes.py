"""Start Redis, wstime nodes and HAProxy on free loopback ports, and stop them by PID.

Used by ``make demo``, the integration tests and the benchmarks. Every process gets its own
temporary folder for data and logs; :meth:`Managed.stop` ends it (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HAPROXY_CFG = REPO / "deploy" / "haproxy" / "haproxy.cfg"
LOOPBACK = "127.0.0.1"


class StartError(RuntimeError):
    """A process did not come up; the message carries the tail of its log."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def wait_for(predicate, *, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; raise TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def port_open(port: int, host: str = LOOPBACK) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    """GET ``url``; return (status, body) for any HTTP answer, (0, reason) when none came."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except OSError as exc:
        return 0, str(exc)


@dataclass
class Managed:
    """A started process with its log file."""

    name: str
    process: subprocess.Popen
    log_path: Path
    workdir: Path
    port: int
    extra: dict = field(default_factory=dict)
    stop_signal: int = signal.SIGTERM  # what stop() sends first

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the process (kill -9 by default) and reap it if it ends."""
        if self.alive():
            os.kill(self.pid, sig)
            if sig == signal.SIGKILL:
                self.process.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        """End the process (``stop_signal``, then SIGKILL after ``timeout``); remove its folder."""
        if self.alive():
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.workdir, ignore_errors=True)
        if self.extra.get("config_dir"):
            shutil.rmtree(self.extra["config_dir"], ignore_errors=True)


def _spawn(
    name: str,
    argv: list[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    port: int,
) -> Managed:
    workdir = Path(tempfile.mkdtemp(prefix=f"wstime-{name}-"))
    log_path = workdir / f"{name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=str(cwd or workdir),
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
    return Managed(name=name, process=process, log_path=log_path, workdir=workdir, port=port)


def _wait_started(managed: Managed, ready, timeout: float) -> Managed:
    try:
        wait_for(lambda: ready() or not managed.alive(), timeout=timeout, what=managed.name)
    except TimeoutError:
        managed.stop()
        raise StartError(
            f"{managed.name} did not start in {timeout}s:\n{managed.log()[-3000:]}"
        ) from None
    if not managed.alive():
        log = managed.log()
        managed.stop()
        raise StartError(f"{managed.name} exited at start:\n{log[-3000:]}")
    return managed


def start_redis(
    port: int | None = None,
    timeout: float = 10.0,
    *,
    data_dir: str | os.PathLike | None = None,
    bind: str = LOOPBACK,
) -> Managed:
    """Start a throwaway redis-server on loopback (no persistence).

    With ``data_dir``, Redis keeps an append-only file there (fsync on every write), so a
    restart on the same folder comes back with its data. ``bind`` is a space-separated list of
    addresses (a network namespace's own, for instance); with any but loopback, protected
    mode is off, since it refuses every other address when Redis has no password.
    """
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = port or free_port()
    persistence = ["--appendonly", "no"]
    if data_dir is not None:
        persistence = ["--dir", str(data_dir), "--appendonly", "yes", "--appendfsync", "always"]
    managed = _spawn(
        "redis",
        [
            binary,
            "--port",
            str(port),
            "--bind",
            *bind.split(),
            "--save",
            "",
            *persistence,
            "--protected-mode",
            "yes" if bind == LOOPBACK else "no",
        ],
        port=port,
    )
    managed.extra["url"] = f"redis://{LOOPBACK}:{port}/0"
    managed.extra["data_dir"] = data_dir
    return _wait_started(managed, lambda: port_open(port), timeout)


def restart_redis(managed: Managed, timeout: float = 10.0) -> Managed:
    """Start Redis again on the same port (and data folder, if any) after ``managed`` ended."""
    return start_redis(managed.port, timeout, data_dir=managed.extra.get("data_dir"))


def node_env(**overrides: str) -> dict[str, str]:
    """The environment of a node process: this one's, with test-friendly defaults."""
    env = dict(os.environ)
    env.setdefault(
        "DJANGO_SECRET_KEY", "local-cluster-secret-key-not-for-production-use-0123456789"
    )
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(overrides)
    return env


def start_node(
    *,
    name: str,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    timeout: float = 30.0,
    daphne_args: tuple[str, ...] = (),
    python: str = sys.executable,
    cwd: Path = REPO,
    host: str = LOOPBACK,
    wrapper: tuple[str, ...] = (),
) -> Managed:
    """Start a node through the production launcher and wait until it serves HTTP.

    The launcher (:mod:`wstime.serve`) adds the production daphne flags; ``daphne_args`` go to
    daphne after them. ``python`` and ``cwd`` run it elsewhere than this checkout (an installed
    wheel in its own virtualenv). ``host`` is the address it binds; ``wrapper`` is a command
    prefix, such as ``("ip", "netns", "exec", NAME)`` to run the node in a network namespace (it
    must exec, so that the process's PID stays the node's).
    """
    port = port or free_port()
    environment = node_env(WSTIME_NODE_NAME=name, **(dict(env or {})))
    managed = _spawn(
        f"node-{name}",
        [
            *wrapper,
            python,
            "-m",
            "wstime.serve",
            "--bind",
            host,
            "--port",
            str(port),
            "--",
            *daphne_args,
        ],
        env=environment,
        cwd=cwd,
        port=port,
    )
    managed.extra["url"] = f"http://{host}:{port}"
    managed.extra["ws_url"] = f"ws://{host}:{port}/"
    # SIGTERM drains a node (seconds); stopping a local cluster uses SIGINT, daphne's fast stop.
    managed.stop_signal = signal.SIGINT
    return _wait_started(
        managed, lambda: http_get(f"http://{host}:{port}/livez", 0.5)[0] == 200, timeout
    )


# Requests per source per 10 s for a local HAProxy: every local client comes from 127.0.0.1,
# and a failover storm of thousands of them must not meet the per-source limit.
LOCAL_RATE_LIMIT = 1_000_000


def start_haproxy(
    node_ports: list[int],
    *,
    agent_ports: list[int] | None = None,
    port: int | None = None,
    timeout: float = 10.0,
    rate_limit: int = LOCAL_RATE_LIMIT,
) -> Managed:
    """Start HAProxy from deploy/haproxy/haproxy.cfg in front of nodes on loopback ports.

    ``agent_ports`` are the nodes' agent-check ports; without them HAProxy is pointed at free
    ports where nothing answers, which it treats as "no agent". ``rate_limit`` is the template's
    WSTIME_LB_RATE_LIMIT (requests per source address per 10 s).
    """
    return start_haproxy_nodes(
        [f"{LOOPBACK}:{node_port}" for node_port in node_ports],
        agent_ports=agent_ports,
        port=port,
        timeout=timeout,
        rate_limit=rate_limit,
    )


def haproxy_config(count: int, template: str | None = None) -> str:
    """deploy/haproxy/haproxy.cfg for ``count`` nodes: each ``server node1`` line once per node.

    Node ``k`` is ``server nodek`` with the addresses of ``WSTIME_NODEk_ADDR`` and
    ``WSTIME_NODEk_AGENT_PORT``; the template's other ``server nodeN`` lines are dropped and
    every other line is kept as it is.
    """
    text = HAPROXY_CFG.read_text() if template is None else template
    first = re.compile(r"^\s*server\s+node1\s")
    other = re.compile(r"^\s*server\s+node\d+\s")
    lines: list[str] = []
    for line in text.splitlines():
        if first.match(line):
            lines.extend(
                line.replace("node1", f"node{k}").replace("NODE1", f"NODE{k}")
                for k in range(1, count + 1)
            )
        elif not other.match(line):
            lines.append(line)
    return "\n".join(lines) + "\n"


def start_haproxy_nodes(
    node_addrs: list[str],
    *,
    agent_ports: list[int] | None = None,
    port: int | None = None,
    timeout: float = 10.0,
    rate_limit: int = LOCAL_RATE_LIMIT,
) -> Managed:
    """Start HAProxy in front of any number of nodes (``host:port`` each), from the template.

    The configuration is :func:`haproxy_config` for that many nodes, written to HAProxy's own
    folder; ``agent_ports`` as for :func:`start_haproxy`.
    """
    agent_ports = agent_ports or [free_port() for _ in node_addrs]
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    port = port or free_port()
    env = dict(
        os.environ, WSTIME_LB_BIND=f"{LOOPBACK}:{port}", WSTIME_LB_RATE_LIMIT=str(rate_limit)
    )
    for k, (addr, agent_port) in enumerate(zip(node_addrs, agent_ports, strict=True), start=1):
        env[f"WSTIME_NODE{k}_ADDR"] = addr
        env[f"WSTIME_NODE{k}_AGENT_PORT"] = str(agent_port)
    config = Path(tempfile.mkdtemp(prefix="wstime-haproxy-cfg-")) / "haproxy.cfg"
    config.write_text(haproxy_config(len(node_addrs)))
    managed = _spawn("haproxy", [binary, "-db", "-f", str(config)], env=env, port=port)
    managed.extra["url"] = f"http://{LOOPBACK}:{port}"
    managed.extra["ws_url"] = f"ws://{LOOPBACK}:{port}/"
    managed.extra["config_dir"] = config.parent
    return _wait_started(managed, lambda: port_open(port), timeout)
