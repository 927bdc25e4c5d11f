"""A client that behaves like the page (static/timer/app.js) and records everything it sees.

Like the page: full-jitter exponential backoff (a random delay in [0, min(30 s, 0.5 s x
2^attempt))), the attempt count reset by a connection that stayed open 10 s, the hint of a 1012
or 1013 close ("reconnect in N ms") honoured, no reconnect after 4001, a connection with no frame
for 3.5 ticks closed and replaced, a refused handshake (HTTP 503 and the like) retried with
backoff, at most 50 attempts. Every connection becomes one :class:`Connection` record.
"""

from __future__ import annotations

import asyncio
import random
import re
from dataclasses import asdict, dataclass, field

import websockets
from websockets.protocol import State

MAX_RETRIES = 50
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
STABLE_AFTER = 10.0
SILENCE_TICKS = 3.5
HINT_CAP = 60.0
CLOSE_SESSION_TAKEN_OVER = 4001
HINTED_CLOSES = (1012, 1013)
FRAME = re.compile(r"^(?P<node>[A-Za-z0-9._-]+): you have been connected for (?P<n>\d+) seconds$")
HINT = re.compile(r"reconnect in (\d+) ms")


def backoff_delay(attempt: int, rng: random.Random) -> float:
    """Full jitter: a random delay in [0, min(cap, base * 2^attempt)), as the page."""
    return rng.random() * min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)


def reconnect_hint(code: int | None, reason: str) -> float | None:
    """The delay (seconds) a 1012 or 1013 close asks for, or None."""
    if code not in HINTED_CLOSES:
        return None
    match = HINT.search(reason or "")
    return min(HINT_CAP, int(match[1]) / 1000) if match else None


@dataclass
class Connection:
    """One connection attempt of one client, as JSON: what it received and how it ended.

    Times are seconds on the run's monotonic clock. ``end`` is ``close`` (a close frame came:
    ``code``, ``reason``), ``lost`` (no close frame: 1006), ``silence`` (the client gave up on it
    after 3.5 ticks without a frame), ``refused`` (the handshake failed: ``status`` if HTTP
    answered, ``error`` otherwise), ``stopped`` (the harness closed it at the end), or ``open``.
    """

    id: str
    client: str
    attempt: int
    started: float
    opened: float | None = None
    frames: list[tuple[str, int, float]] = field(default_factory=list)
    end: str = "open"
    ended: float | None = None
    code: int | None = None
    reason: str = ""
    status: int | None = None
    error: str = ""
    bad_frames: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return asdict(self)


class PageClient:
    """One browser tab: connects to ``url`` as ``client_id`` and reconnects like the page."""

    def __init__(
        self,
        url: str,
        client_id: str,
        label: str,
        *,
        tick: float,
        clock,
        rng: random.Random,
        history: list[Connection],
    ) -> None:
        self.url = f"{url.rstrip('/')}/?id={client_id}"
        self.id = client_id
        self.label = label
        self.tick = tick
        self.clock = clock
        self.rng = rng
        self.history = history
        self.current: Connection | None = None
        self.outcome = "running"  # then: taken-over, gave-up, stopped, or crashed: <error>
        self._stop = asyncio.Event()
        self._attempts = 0
        self.last_seen = -1  # sent as ``last``, as the page does

    def live(self, now: float, within: float) -> bool:
        """Whether this client holds an open connection that had a frame within ``within``."""
        conn = self.current
        return (
            conn is not None
            and conn.end == "open"
            and conn.opened is not None
            and bool(conn.frames)
            and now - conn.frames[-1][2] <= within
        )

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Connect and reconnect like the page until stopped, taken over, or out of retries."""
        try:
            await self._loop()
        except Exception as exc:
            # A fault of the harness, not of the cluster: the run reports it and fails.
            self.outcome = f"crashed: {type(exc).__name__}: {exc}"[:200]
            raise

    async def _loop(self) -> None:
        retries = 0
        while retries < MAX_RETRIES and not self._stop.is_set():
            conn = await self._session()
            if self._stop.is_set():
                break
            if conn.end == "close" and conn.code == CLOSE_SESSION_TAKEN_OVER:
                self.outcome = "taken-over"
                return
            if conn.opened is not None and (conn.ended or 0) - conn.opened >= STABLE_AFTER:
                retries = 0
            hint = reconnect_hint(conn.code, conn.reason) if conn.end == "close" else None
            delay = hint if hint is not None else backoff_delay(retries, self.rng)
            try:
                await asyncio.wait_for(self._stop.wait(), delay)
            except TimeoutError:
                pass
            retries += 1
        self.outcome = "stopped" if self._stop.is_set() else "gave-up"

    async def _session(self) -> Connection:
        conn = Connection(
            id=self.id, client=self.label, attempt=self._attempts, started=self.clock()
        )
        self._attempts += 1
        self.history.append(conn)
        self.current = conn
        try:
            url = self.url if self.last_seen < 0 else f"{self.url}&last={self.last_seen}"
            ws = await websockets.connect(
                url, open_timeout=10, close_timeout=2, ping_interval=None, max_size=2**16
            )
        except websockets.InvalidStatus as exc:
            self._ended(conn, "refused", status=exc.response.status_code)
            return conn
        except (
            OSError,
            TimeoutError,
            websockets.InvalidHandshake,
            websockets.ConnectionClosed,
            EOFError,
        ) as exc:
            self._ended(conn, "refused", error=type(exc).__name__)
            return conn
        conn.opened = self.clock()
        stop = asyncio.create_task(self._stop.wait())
        try:
            while True:
                recv = asyncio.ensure_future(ws.recv())
                done, _ = await asyncio.wait(
                    {recv, stop},
                    timeout=SILENCE_TICKS * self.tick,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if recv in done:
                    self._record(conn, recv.result())
                    continue
                recv.cancel()
                await asyncio.gather(recv, return_exceptions=True)
                if stop in done:
                    await ws.close()
                    self._ended(conn, "stopped", code=1000)
                else:
                    await ws.close()
                    self._ended(conn, "silence")
                return conn
        except websockets.ConnectionClosed as closed:
            if closed.rcvd is not None:
                self._ended(conn, "close", code=closed.rcvd.code, reason=closed.rcvd.reason)
            else:
                self._ended(conn, "lost", code=1006)
            return conn
        finally:
            stop.cancel()
            if ws.state is not State.CLOSED:
                ws.transport.abort()

    def _record(self, conn: Connection, text) -> None:
        match = FRAME.match(text) if isinstance(text, str) else None
        if match is None:
            conn.bad_frames.append(repr(text)[:200])
            return
        conn.frames.append((match["node"], int(match["n"]), self.clock()))
        self.last_seen = int(match["n"])

    def _ended(
        self,
        conn: Connection,
        end: str,
        *,
        code: int | None = None,
        reason: str = "",
        status: int | None = None,
        error: str = "",
    ) -> None:
        conn.end, conn.ended, conn.code, conn.reason = end, self.clock(), code, reason
        conn.status, conn.error = status, error
