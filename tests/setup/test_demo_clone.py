"""``make demo`` from a fresh clone of this repository's HEAD, used as the README says."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest
import websockets

from localcluster.processes import REPO, free_port, http_get, wait_for

from ..integration.ticks import FRAME

# The page links its script by a content-hashed name (README: Static files).
HASHED_APP_JS = re.compile(r"/static/timer/app\.[0-9a-f]{12}\.js")

pytestmark = pytest.mark.integration

# Installing the clone's .venv from the lock takes most of it; pip's cache (filled by the
# checkout's own `make test` or `make venv`) keeps that to tens of seconds on a loaded machine.
START_TIMEOUT = 420
NODE_LINE = re.compile(r"^\s*node\s+(?P<url>http://\S+)\s+name (?P<name>\S+)\s+pid (?P<pid>\d+)")
PID = re.compile(r"\bpid (\d+)")


class Output:
    """Collects a process's output lines in a thread, so that its pipe never fills."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        return "\n".join(self.lines)


def clean_environment(port: int) -> dict[str, str]:
    """A shell's environment: none of this test run's Python, Django or make settings."""
    dropped = {
        "PYTHONPATH",
        "VIRTUAL_ENV",
        "DJANGO_SETTINGS_MODULE",
        "MAKEFLAGS",
        "MAKELEVEL",
        "MFLAGS",
        "PIP_NO_CACHE_DIR",
    }
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in dropped and not key.startswith("WSTIME_")
    }
    env["WSTIME_DEMO_PORT"] = str(port)
    return env


def clone_head(destination: Path) -> Path:
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    subprocess.run(
        ["git", "clone", "--quiet", "--no-checkout", str(REPO), str(destination)],
        check=True,
        timeout=120,
    )
    subprocess.run(["git", "checkout", "--quiet", head], cwd=destination, check=True, timeout=60)
    return destination


def processes_of(clone: Path) -> list[psutil.Process]:
    """Live processes that run from the clone (its .venv's Python, make in it)."""
    found = []
    for process in psutil.process_iter(["cmdline", "cwd", "status"]):
        info = process.info
        if info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if str(clone) in " ".join(info["cmdline"] or ()) or str(clone) == (info["cwd"] or ""):
            found.append(process)
    return found


def parse(text: str) -> tuple[str, int]:
    match = FRAME.match(text)
    return match["node"], int(match["n"])


async def frames(url: str, count: int) -> list[tuple[str, int]]:
    """Connect as the page does (same id across reconnects) and take ``count`` frames."""
    async with websockets.connect(url, origin=None, open_timeout=10) as ws:
        return [parse(await asyncio.wait_for(ws.recv(), 10)) for _ in range(count)]


async def kill_the_serving_node(url: str, pids: dict[str, int]) -> list[tuple[str, int]]:
    """Take two frames, kill -9 the node that sent them, and read until the connection drops."""
    async with websockets.connect(url, origin=None, open_timeout=10) as ws:
        seen = [parse(await asyncio.wait_for(ws.recv(), 10)) for _ in range(2)]
        os.kill(pids[seen[-1][0]], signal.SIGKILL)
        try:
            while True:
                seen.append(parse(await asyncio.wait_for(ws.recv(), 10)))
        except websockets.ConnectionClosed:
            return seen


async def frames_after_failover(url: str, count: int, timeout: float) -> list[tuple[str, int]]:
    """Reconnect until the load balancer hands the client to a live node."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await frames(url, count)
        except (TimeoutError, OSError, websockets.WebSocketException):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


@pytest.mark.timeout(START_TIMEOUT + 180)
def test_make_demo__from_a_fresh_clone_fails_over_and_stops_on_ctrl_c(tmp_path):
    """A fresh clone's ``make demo`` serves through HAProxy, survives kill -9, and Ctrl-C ends all.

    The clone builds its own .venv from the lock file (pip's cache and the machine's wheels
    left on) and migrates before its nodes start. The client is connected when its node is
    killed; it resumes on the other node one or two past the last frame it saw, never less.
    """
    clone = clone_head(tmp_path / "wstime")
    port = free_port()
    make = subprocess.Popen(
        ["make", "demo"],
        cwd=clone,
        env=clean_environment(port),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = Output(make.stdout)
    started: list[int] = []
    try:
        wait_for(
            lambda: (
                "wstime demo is running" in output.text()
                and "haproxy" in output.text()
                or make.poll() is not None
            ),
            timeout=START_TIMEOUT,
            interval=0.5,
            what="make demo to start",
        )
        assert make.poll() is None, f"make demo exited {make.returncode}:\n{output.text()[-4000:]}"
        wait_for(
            lambda: re.search(r"^\s*haproxy .*pid \d+", output.text(), re.M),
            timeout=10,
            what="the demo's process list",
        )
        started = [int(pid) for pid in PID.findall(output.text())]
        nodes = {m["name"]: int(m["pid"]) for m in map(NODE_LINE.match, output.lines) if m}
        assert len(nodes) == 2, output.text()

        status, page = http_get(f"http://127.0.0.1:{port}/", timeout=10)
        assert status == 200 and HASHED_APP_JS.search(page), page

        url = f"ws://127.0.0.1:{port}/?id=fresh-clone"
        before = asyncio.run(kill_the_serving_node(url, nodes))
        serving, last = before[-1]
        after = asyncio.run(frames_after_failover(url, 2, timeout=30))
        other = next(name for name in nodes if name != serving)
        assert after[0][0] == other, (before, after)
        assert last < after[0][1] <= last + 2, (before, after)
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGINT)  # Ctrl-C in the demo's terminal
        try:
            code = make.wait(timeout=60)
        finally:
            if make.poll() is None:
                os.killpg(make.pid, signal.SIGKILL)
                make.wait(timeout=10)
    assert "stopping ..." in output.text(), f"make exited {code}:\n{output.text()[-3000:]}"
    wait_for(
        lambda: (
            not [
                pid
                for pid in started
                if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
            ]
            and not processes_of(clone)
        ),
        timeout=30,
        what="every demo process to end",
    )
