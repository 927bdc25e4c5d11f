"""Sample a server with py-spy from the start of the load to the end of the window.

py-spy is optional (``pip install -e '.[bench]'``); without it ``--profile`` says so and the run
goes on. It samples with ``--nonblocking`` so the server is not paused at every sample.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from localcluster.processes import REPO

# Where a wstime node's time goes: label -> a piece of frame text; a sample counts for every
# label one of its frames matches (so shares overlap: a handshake's Redis call is in both).
CATEGORIES: tuple[tuple[str, str], ...] = (
    ("socket reads (Twisted doRead, and all they trigger)", "Connection.doRead"),
    ("socket writes (Twisted doWrite)", "FileDescriptor.doWrite"),
    ("HTTP upgrade (Twisted Request.requestReceived)", "Request.requestReceived"),
    ("autobahn handshake (processHandshake)", "processHandshake"),
    (
        "autobahn _connectionMade (pformat of its options, per connection)",
        "WebSocketProtocol._connectionMade",
    ),
    ("channels aclose_old_connections (thread-pool hop per message)", "aclose_old_connections"),
    ("thread-pool threads", "concurrent/futures/thread.py"),
    ("TimerConsumer.connect", "TimerConsumer.connect"),
    ("RedisSessionStore.open", "RedisSessionStore.open"),
    ("TimerConsumer.disconnect", "TimerConsumer.disconnect"),
    ("redis-py", "redis/"),
    ("Hub._fire (the ticker)", "Hub._fire"),
    ("autobahn sendMessage (frames, pings)", "WebSocketProtocol.sendMessage"),
    ("asyncio add_writer (one per write)", "_add_writer"),
    ("daphne check_timeouts (keepalive pings)", "check_timeouts"),
    ("daphne application_checker", "application_checker"),
    ("logging", "Logger._log"),
    ("checkpoint", "checkpoint"),
    ("/healthcheck", "healthcheck"),
)
_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<path>[^():]*)(?::\d+)?\)$")


def py_spy() -> str | None:
    """Return the py-spy executable (the venv's first), or None."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def start_recording(pid: int, *, out: Path, rate: int = 100) -> subprocess.Popen | None:
    """Start ``py-spy record`` on ``pid``, writing folded stacks to ``out`` when finished."""
    binary = py_spy()
    if binary is None:
        return None
    return subprocess.Popen(
        [
            binary,
            "record",
            "--pid",
            str(pid),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def finish_recording(
    process: subprocess.Popen, out: Path, *, timeout: float = 30.0
) -> dict[str, Any]:
    """Stop py-spy (SIGINT makes it write its output) and summarise what it wrote."""
    process.send_signal(signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return {"error": "py-spy did not finish"}
    if not out.exists():
        return {"error": (stderr or b"").decode(errors="replace")[-500:]}
    summary = summarize_folded(out.read_text())
    summary["folded"] = str(out.relative_to(REPO) if out.is_relative_to(REPO) else out)
    return summary


def short_frame(frame: str) -> str:
    """Drop the line number and the path up to the package: ``f (/x/site-packages/a/b.py:12)``
    becomes ``f (a/b.py)``."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match.group("path")
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match.group('function')} ({path})"


def summarize_folded(text: str, *, top: int = 12) -> dict[str, Any]:
    """Return total samples, the ``top`` functions by own samples and the :data:`CATEGORIES`."""
    own: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        match = _LINE.match(line.strip())
        if not match:
            continue
        count = int(match.group("count"))
        stack = match.group("stack")
        frames = [short_frame(f) for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for label, piece in CATEGORIES:
            if piece in stack:
                categories[label] += count

    def share(counter: Counter[str], limit: int | None) -> list[tuple[str, float]]:
        return [(name, round(100 * n / total, 1)) for name, n in counter.most_common(limit)]

    return {
        "samples": total,
        "own_pct": share(own, top) if total else [],
        "categories_pct": share(categories, None) if total else [],
    }
