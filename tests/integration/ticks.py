"""A WebSocket client for integration tests: records every frame, reconnects when told to."""

from __future__ import annotations

import asyncio
import random
import re
import time
from dataclasses import dataclass, field

import websockets

FRAME = re.compile(r"^(?P<node>[a-z0-9-]+): you have been connected for (?P<n>\d+) seconds$")


@dataclass(frozen=True)
class Frame:
    node: str
    n: int
    at: float


@dataclass
class TickClient:
    """Connects to ``url`` with ``client_id`` and keeps every frame it receives."""

    url: str
    client_id: str
    frames: list[Frame] = field(default_factory=list)
    closes: list[int | None] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # of the closes, same order
    connects: int = 0

    def _target(self) -> str:
        return f"{self.url.rstrip('/')}/?id={self.client_id}"

    async def run_once(self, stop: asyncio.Event | None = None) -> int | None:
        """Hold one connection until it closes (or ``stop`` is set); return its close code."""
        async with websockets.connect(self._target(), open_timeout=5, close_timeout=2) as ws:
            self.connects += 1
            try:
                while stop is None or not stop.is_set():
                    try:
                        text = await asyncio.wait_for(ws.recv(), timeout=0.2)
                    except TimeoutError:
                        continue
                    self._record(text)
            except websockets.ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
                self.closes.append(code)
                self.reasons.append(closed.rcvd.reason if closed.rcvd else "")
                return code
            await ws.close()
            # Frames that arrived before the close handshake were sent to this client too:
            # the server's recorded count includes them.
            async for text in ws:
                self._record(text)
        self.closes.append(1000)
        self.reasons.append("")
        return 1000

    def _record(self, text: str) -> None:
        match = FRAME.match(text)
        assert match, f"unexpected frame {text!r}"
        self.frames.append(Frame(match["node"], int(match["n"]), time.monotonic()))

    async def run(self, stop: asyncio.Event, *, max_delay: float = 1.0) -> None:
        """Stay connected until ``stop``: reconnect with full-jitter backoff like the page."""
        attempt = 0
        while not stop.is_set():
            before = len(self.frames)
            try:
                await self.run_once(stop)
            except (
                OSError,
                websockets.InvalidHandshake,
                TimeoutError,
                websockets.ConnectionClosed,
            ):
                pass
            if len(self.frames) > before:
                attempt = 0
            if stop.is_set():
                return
            await asyncio.sleep(random.uniform(0, min(max_delay, 0.05 * 2**attempt)))
            attempt += 1

    async def wait_frames(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.frames) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.client_id}: {len(self.frames)} of {count} frames")
            await asyncio.sleep(0.02)

    def counts(self) -> list[int]:
        return [frame.n for frame in self.frames]


async def frames_from(url: str, client_id: str, count: int) -> TickClient:
    """Connect, take ``count`` frames, close cleanly; return the client with its frames."""
    client = TickClient(url, client_id)
    stop = asyncio.Event()
    run = asyncio.create_task(client.run_once(stop))
    try:
        await client.wait_frames(count)
    finally:
        stop.set()
        await run
    return client
