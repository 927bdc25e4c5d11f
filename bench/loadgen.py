"""An asyncio WebSocket load generator for loopback benchmarks, spread over worker processes.

Each worker process owns every ``workers``-th client and runs them on one event loop, each
connection an asyncio protocol driving the ``websockets`` library's sans-I/O client (its
handshake and frame parser, with no task per frame); together they open connections at ``rate``
per second, each with its own ``?id=``, and record every frame (arrival time and count) and
every attempt. The orchestrator
(:class:`LoadGenerator`) picks the steady window after the ramp and gets back mergeable
:class:`~bench.stats.Tally` figures, and with a node kill, one :class:`~bench.stats.Recovery`
per client that was on the killed node.

Limits, by design: loopback addresses only; at most :data:`MAX_CONNECTIONS` connections; every
worker ends by itself ``max_duration`` seconds after its start, whatever the orchestrator does.
Clients send nothing after the handshake and offer no permessage-deflate. With ``reconnect``
on, a client behaves like the browser page (its first attempt to ``url``, the later ones to
``reconnect_url`` when set): it reconnects after a close or ``silence`` seconds
without a frame, after the close's reconnect hint when it carries one (1012, 1013), else after
a full-jitter backoff delay (``bench.stats.full_jitter_delay``), and counts its retries from 0
again after a connection that lasted 10 s.
"""

from __future__ import annotations

import asyncio
import errno
import math
import multiprocessing
import random
import resource
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection as Pipe
from multiprocessing.connection import wait as wait_pipes
from typing import Any
from urllib.parse import urlsplit

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.uri import WebSocketURI, parse_uri

from timer.core.drain_plan import hint_from_reason

from .stats import Attempt, Recovery, Tally, full_jitter_delay, parse_frame, recoveries, tally

MAX_CONNECTIONS = 20_000
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
STABLE_AFTER = 10.0  # seconds; as the browser client's STABLE_AFTER_MS
SILENCE_CLOSE = -2  # close_code recorded when our silence timer ended a connection
LAG_PROBE_PERIOD = 0.05


class LoadError(RuntimeError):
    """The load generator could not run as asked; the message says what to change."""


@dataclass(frozen=True)
class LoadSpec:
    """What to run. Times in seconds."""

    url: str  # ws://127.0.0.1:PORT/ ; each client adds ?id=<id_prefix>-<index>
    connections: int
    rate: float = 500.0  # new connections per second, all workers together
    interval: float = 1.0  # the server's tick interval
    workers: int = 1
    id_prefix: str = "bench"
    open_timeout: float = 10.0
    reconnect: bool = False
    # With reconnect: where the attempts after the first go (None: ``url``), as a client that
    # first landed on one node and comes back through the load balancer.
    reconnect_url: str | None = None
    silence: float | None = None  # with reconnect: close after this long without a frame
    max_duration: float = 600.0
    seed: int = 0

    def validate(self) -> None:
        for url in (self.url, self.reconnect_url or self.url):
            host = urlsplit(url).hostname or ""
            if host not in LOOPBACK_HOSTS:
                raise LoadError(
                    f"refusing to load {host!r}: the load generator targets loopback only"
                )
        if not 0 < self.connections <= MAX_CONNECTIONS:
            raise LoadError(f"connections must be in 1..{MAX_CONNECTIONS}, got {self.connections}")
        if self.rate <= 0 or self.interval <= 0 or self.max_duration <= 0:
            raise LoadError("rate, interval and max_duration must be positive")
        if not 1 <= self.workers <= self.connections:
            raise LoadError(f"workers must be in 1..connections, got {self.workers}")


@dataclass(frozen=True)
class Ramp:
    """How the ramp went, from every worker's first attempts."""

    established: int
    failed: int
    first_start: float
    last_start: float
    resolved_at: float  # when the last first attempt opened or failed

    @property
    def achieved_rate(self) -> float:
        span = self.last_start - self.first_start
        return (self.established + self.failed) / span if span > 0 else math.inf


@dataclass
class Outcome:
    """Merged results of a run."""

    tally: Tally
    recoveries: list[Recovery]
    stopped_at: float


def source_address(host: str, worker: int) -> tuple[str, int] | None:
    """The address a worker's connections to ``host`` come from: one of 127.0.0.0/8 each.

    Every worker gets its own source address when the target is IPv4 loopback, so each has
    the whole ephemeral port range to itself: 20,000 connections, plus those of the previous
    server still in TIME_WAIT, no longer exhaust one address's 28,000 ports.
    """
    if host != "127.0.0.1":
        return None
    return (f"127.0.{worker // 250}.{worker % 250 + 2}", 0)


def raise_nofile_limit(needed: int) -> int:
    """Raise this process's open-file limit to at least ``needed`` if allowed; return it.

    Children started afterwards (servers, workers) inherit the new limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return soft
    target = needed if hard == resource.RLIM_INFINITY else max(needed, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, max(target, hard)))
    except (ValueError, OSError):  # not root: go as far as the hard limit
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def default_workers(connections: int, *, per_worker: int = 5_000) -> int:
    """One worker per ``per_worker`` connections, at most one per CPU."""
    cpus = multiprocessing.cpu_count()
    return max(1, min(cpus, math.ceil(connections / per_worker)))


class LoadGenerator:
    """Run a :class:`LoadSpec` in worker processes: start, wait for the ramp, stop, merge.

    Use as a context manager, so that workers are ended even when the orchestrator fails.
    """

    def __init__(self, spec: LoadSpec) -> None:
        spec.validate()
        self.spec = spec
        self._pipes: list[Pipe] = []
        self._processes: list[multiprocessing.Process] = []

    def __enter__(self) -> LoadGenerator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes if p.pid is not None]

    def start(self, *, lead: float = 0.3, timeout: float = 30.0) -> float:
        """Start the workers; return the monotonic time at which the ramp begins."""
        raise_nofile_limit(self.spec.connections // self.spec.workers + 256)
        context = multiprocessing.get_context("spawn")
        for index in range(self.spec.workers):
            parent_end, child_end = context.Pipe()
            process = context.Process(
                target=_worker_main,
                args=(self.spec, index, child_end),
                name=f"loadgen-{index}",
                daemon=True,
            )
            process.start()
            child_end.close()
            self._pipes.append(parent_end)
            self._processes.append(process)
        self._collect("ready", timeout)
        start_at = time.monotonic() + lead
        for pipe in self._pipes:
            pipe.send(("go", start_at))
        return start_at

    def wait_ramped(self, timeout: float) -> Ramp:
        """Wait until every client's first attempt opened or failed."""
        reports = self._collect("ramped", timeout)
        return Ramp(
            established=sum(r["established"] for r in reports),
            failed=sum(r["failed"] for r in reports),
            first_start=min(r["first_start"] for r in reports),
            last_start=max(r["last_start"] for r in reports),
            resolved_at=max(r["resolved_at"] for r in reports),
        )

    def census(self, timeout: float = 10.0) -> Counter:
        """Return how many clients are connected to each node, by the name in their frames."""
        for pipe in self._pipes:
            pipe.send(("census",))
        total: Counter = Counter()
        for report in self._collect("census", timeout):
            total.update(report)
        return total

    def moves(self, code: int, timeout: float = 10.0) -> list[tuple]:
        """Every client's reconnects after a close with ``code`` (see ``_Worker._moves``)."""
        for pipe in self._pipes:
            pipe.send(("moves", code))
        return [move for report in self._collect("moves", timeout) for move in report]

    def stop(
        self,
        *,
        window: tuple[float, float] | None,
        killed_node: str | None = None,
        kill_time: float | None = None,
        timeout: float = 60.0,
    ) -> Outcome:
        """Close every connection and return the merged figures for ``window``."""
        for pipe in self._pipes:
            pipe.send(("stop", window, killed_node, kill_time))
        merged = Tally()
        found: list[Recovery] = []
        stopped_at = 0.0
        for report in self._collect("result", timeout):
            merged.merge(report["tally"])
            found.extend(report["recoveries"])
            stopped_at = max(stopped_at, report["stopped_at"])
        return Outcome(tally=merged, recoveries=found, stopped_at=stopped_at)

    def close(self) -> None:
        """End the workers (by their own process objects) and close the pipes."""
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
        for pipe in self._pipes:
            pipe.close()
        self._processes, self._pipes = [], []

    def _collect(self, kind: str, timeout: float) -> list[Any]:
        """Receive one ``kind`` message from every worker, in worker order."""
        replies: dict[int, Any] = {}
        deadline = time.monotonic() + timeout
        while len(replies) < len(self._pipes):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LoadError(f"workers did not answer {kind!r} within {timeout:.0f}s")
            ready = wait_pipes(
                [p for i, p in enumerate(self._pipes) if i not in replies], timeout=remaining
            )
            for pipe in ready:
                index = self._pipes.index(pipe)
                try:
                    message = pipe.recv()
                except EOFError:
                    raise LoadError(
                        f"load worker {index} died (exit code {self._processes[index].exitcode})"
                    ) from None
                if message[0] == "error":
                    raise LoadError(f"load worker {index} failed: {message[1]}")
                if message[0] == "ramped" and kind != "ramped":
                    continue  # a ramp that ended after the orchestrator stopped waiting
                if message[0] != kind:
                    raise LoadError(f"load worker {index} said {message[0]!r}, expected {kind!r}")
                replies[index] = message[1]
        return [replies[i] for i in range(len(self._pipes))]


# --- inside a worker process


def _worker_main(spec: LoadSpec, index: int, pipe: Pipe) -> None:
    share = len(range(index, spec.connections, spec.workers))
    raise_nofile_limit(share + 256)
    try:
        asyncio.run(_Worker(replace(spec, seed=spec.seed * 1000 + index), index, pipe).run())
    except Exception as exc:
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))
        raise


class _Inbox:
    """The orchestrator's messages, read by a daemon thread and queued for the event loop."""

    def __init__(self, pipe: Pipe, loop: asyncio.AbstractEventLoop) -> None:
        self.queue: asyncio.Queue[tuple] = asyncio.Queue()
        self._pipe, self._loop = pipe, loop
        threading.Thread(target=self._read, name="loadgen-inbox", daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                message = self._pipe.recv()
            except (EOFError, OSError):
                message = ("stop", None, None, None)  # the orchestrator went away
            self._loop.call_soon_threadsafe(self.queue.put_nowait, message)
            if message[0] == "stop":
                return


class _Worker:
    """One worker's share of the clients."""

    def __init__(self, spec: LoadSpec, index: int, pipe: Pipe) -> None:
        self.spec = spec
        self.pipe = pipe
        self.index = index
        self.indexes = range(index, spec.connections, spec.workers)
        self.clients: dict[int, list[Attempt]] = {i: [] for i in self.indexes}
        self.random = random.Random(spec.seed)
        self.live: set[_Session] = set()
        self.stopping = False
        self.stopped_at = math.inf
        self.lag_samples: list[tuple[float, float]] = []
        self._unresolved = len(self.indexes)
        self._established = 0
        self._first_start = math.inf
        self._last_start = 0.0
        self._tasks: set[asyncio.Task] = set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        inbox = _Inbox(self.pipe, loop)
        self.pipe.send(("ready", None))
        message = await asyncio.wait_for(inbox.queue.get(), self.spec.max_duration)
        if message[0] != "go":
            return
        start_at = message[1]
        end_by = start_at + self.spec.max_duration
        background = [
            asyncio.create_task(self._spawn(start_at)),
            asyncio.create_task(self._probe_lag()),
        ]
        if self.spec.reconnect and self.spec.silence:
            background.append(asyncio.create_task(self._watch_silence(self.spec.silence)))
        while True:
            try:
                message = await asyncio.wait_for(inbox.queue.get(), max(0.0, end_by - loop.time()))
            except TimeoutError:
                message = ("stop", None, None, None)  # bounded: stop by ourselves
            if message[0] == "census":
                self.pipe.send(("census", self._census()))
            elif message[0] == "moves":
                self.pipe.send(("moves", self._moves(message[1])))
            elif message[0] == "stop":
                break
        _, window, killed_node, kill_time = message
        await self._stop(background)
        share = [self.clients[i] for i in self.indexes]
        found = (
            recoveries(share, killed_node=killed_node, kill_time=kill_time)
            if killed_node and kill_time is not None
            else []
        )
        result = tally(
            share,
            window=window,
            interval=self.spec.interval,
            stopped_at=self.stopped_at,
            lag_samples=self.lag_samples,
        )
        self.pipe.send(
            ("result", {"tally": result, "recoveries": found, "stopped_at": self.stopped_at})
        )

    async def _spawn(self, start_at: float) -> None:
        loop = asyncio.get_running_loop()
        for i in self.indexes:
            delay = start_at + i / self.spec.rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.stopping:
                return
            task = asyncio.create_task(self._client(i))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _probe_lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(LAG_PROBE_PERIOD)
            self.lag_samples.append((before, loop.time() - before - LAG_PROBE_PERIOD))

    async def _client(self, i: int) -> None:
        loop = asyncio.get_running_loop()
        spec = self.spec
        uri = parse_uri(f"{spec.url}?id={spec.id_prefix}-{i}")
        again = parse_uri(f"{spec.reconnect_url or spec.url}?id={spec.id_prefix}-{i}")
        attempts = self.clients[i]
        retries = 0
        while not self.stopping:
            if attempts:
                uri = again
            attempt = Attempt(started=loop.time())
            attempts.append(attempt)
            if len(attempts) == 1:
                self._first_start = min(self._first_start, attempt.started)
                self._last_start = max(self._last_start, attempt.started)
            session = _Session(uri, attempt, loop)
            try:
                async with asyncio.timeout(spec.open_timeout):
                    await loop.create_connection(
                        lambda: session,  # noqa: B023 - called at once
                        uri.host,
                        uri.port,
                        local_addr=source_address(uri.host, self.index),
                    )
                    attempt.opened = await session.opened
            except asyncio.CancelledError:
                attempt.failure = "stopped"
                session.abort()
                raise
            except Exception as exc:  # noqa: BLE001 - every failure is counted by kind
                attempt.failure = classify_failure(exc)
                session.abort()
            if len(attempts) == 1:
                self._resolved(attempt)
            if attempt.opened is not None:
                self.live.add(session)
                try:
                    await session.closed
                finally:
                    self.live.discard(session)
            if not spec.reconnect or self.stopping:
                return
            if attempt.opened is not None and attempt.closed - attempt.opened >= STABLE_AFTER:
                retries = 0
            if attempt.hint_ms is not None:
                await asyncio.sleep(attempt.hint_ms / 1000)
                continue
            await asyncio.sleep(full_jitter_delay(retries, self.random.random()))
            retries += 1

    async def _watch_silence(self, silence: float) -> None:
        """Close connections that got no frame for ``silence`` seconds, as the page does."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(0.25, silence / 4))
            now = loop.time()
            for session in list(self.live):
                if now - session.last_frame > silence:
                    session.attempt.close_code = SILENCE_CLOSE
                    session.abort()

    def _resolved(self, attempt: Attempt) -> None:
        self._unresolved -= 1
        if attempt.opened is not None:
            self._established += 1
        if self._unresolved == 0:
            self.pipe.send(
                (
                    "ramped",
                    {
                        "established": self._established,
                        "failed": len(self.indexes) - self._established,
                        "first_start": self._first_start,
                        "last_start": self._last_start,
                        "resolved_at": asyncio.get_running_loop().time(),
                    },
                )
            )

    def _census(self) -> Counter:
        counts: Counter = Counter()
        for attempts in self.clients.values():
            if attempts and attempts[-1].opened is not None and attempts[-1].closed is None:
                counts[attempts[-1].node or "?"] += 1
        return counts

    def _moves(self, code: int) -> list[tuple[int, float, float, int | None, str, str]]:
        """Each reconnect after a close with ``code``: (client, closed, reconnect started, first
        frame minus last frame or None before a frame came, from node, to node)."""
        moves = []
        for client, attempts in self.clients.items():
            for k, before in enumerate(attempts[:-1]):
                if before.close_code != code or not before.counts or before.closed is None:
                    continue
                landed = next((a for a in attempts[k + 1 :] if a.counts), None)
                delta = None if landed is None else landed.counts[0] - before.counts[-1]
                moves.append(
                    (
                        client,
                        before.closed,
                        attempts[k + 1].started,
                        delta,
                        before.node,
                        landed.node if landed else "",
                    )
                )
        return moves

    async def _stop(self, background: Iterable[asyncio.Task]) -> None:
        self.stopping = True
        self.stopped_at = asyncio.get_running_loop().time()
        for session in list(self.live):
            session.abort()  # no close handshakes: 10,000 of them take seconds
        pending = [*background, *self._tasks]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


class ClosedInHandshake(ConnectionError):
    """The server closed the connection before answering the WebSocket handshake."""


class _Session(asyncio.Protocol):
    """One connection attempt: websockets' sans-I/O client protocol on an asyncio transport.

    Frames are recorded in ``data_received`` itself, with no task wake-up per frame: the
    client must stay much cheaper than the servers it measures on the same cores.
    """

    def __init__(
        self, uri: WebSocketURI, attempt: Attempt, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.protocol = ClientProtocol(uri)
        self.attempt = attempt
        self.opened: asyncio.Future[float] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.last_frame = 0.0
        self._now = loop.time

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.protocol.send_request(self.protocol.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        now = self._now()
        protocol, attempt = self.protocol, self.attempt
        protocol.receive_data(data)
        for event in protocol.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.TEXT:
                    name, n = parse_frame(event.data.decode())
                    if not attempt.counts:
                        attempt.node = name
                    attempt.times.append(now)
                    attempt.counts.append(n)
                    self.last_frame = now
            elif not self.opened.done():  # the handshake response
                if protocol.handshake_exc is None:
                    self.last_frame = now
                    self.opened.set_result(now)
                else:
                    self.opened.set_exception(protocol.handshake_exc)
        self._flush()

    def eof_received(self) -> None:
        self.protocol.receive_eof()
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ClosedInHandshake())
        if self.attempt.opened is not None and self.attempt.closed is None:
            self.attempt.closed = self._now()
            if self.attempt.close_code is None:
                self.attempt.close_code = self.protocol.close_code or 1006
            if self.protocol.close_rcvd is not None:
                self.attempt.hint_ms = hint_from_reason(self.protocol.close_rcvd.reason)
        if not self.closed.done():
            self.closed.set_result(None)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _flush(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        for data in self.protocol.data_to_send():
            if data:
                self.transport.write(data)
            elif self.transport.can_write_eof():
                self.transport.write_eof()


def classify_failure(exc: BaseException) -> str:
    """Name why a connection attempt failed: refused, timeout, http-503, ECONNRESET, ..."""
    if isinstance(exc, ClosedInHandshake):
        return "closed-in-handshake"
    if isinstance(exc, InvalidStatus):
        return f"http-{exc.response.status_code}"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno.errorcode.get(exc.errno, f"errno-{exc.errno}")
    return type(exc).__name__
