"""Sessions in Redis, shared by every node, with a constant command rate per node.

Two kinds of keys:

- Claims, in hashes bucketed by Redis's clock (``wstime:sessions:<bucket>``): which connection
  holds a session, and its exact count once closed. A session's newest record is in the newest
  bucket that holds its id; buckets expire ``ttl`` after their last write, so abandoned sessions
  vanish with them and Redis memory follows the sessions of the last ``ttl`` seconds, not every
  session ever seen. Opening and closing a session are one script call each.
- Live counts, one hash per node (``wstime:live:<node channel>``, client id ->
  ``<count>|<token sequence>``), replaced every interval by one script call (its entry in the
  registry ``wstime:nodes`` included): the steady command rate of a node is the same for ten
  connections or ten thousand. A node's checkpoint touches only its own hash, so it can never
  overwrite a session another node has just taken over. The live hashes also keep a session
  whose claim is gone: a connection held longer than the TTL, or one whose claim a Redis restart
  lost (the next checkpoint writes it back).

Consistent rather than available. What Redis holds for a live connection (its claim, then each
checkpoint that succeeded) is the *lease* of that connection: the hub never sends it a frame more
than one past it (:meth:`checkpoint` returns whether it succeeded, and the node raises the leases
only then). So whatever happens to the node, the next connection resumes at the stored count + 1
(records.resume_last) and its first frame is the last one seen + 1 or + 2, never a repeat.
A claim also *revokes* every other connection that may still hold the session (the newest
claim if live, every live entry not closed): the next checkpoint of each one's node leaves it out
and names it in :attr:`~timer.sessions.store.Checkpoint.revoked`, so its lease is never raised
again (the node closes it: see :meth:`timer.node.node.Node.revoked`). Two connections of one
session never both get a lease, even when the takeover message sent over the channel layer comes
late or not at all.
While Redis is unreachable or too slow, :meth:`open` raises
:class:`~timer.sessions.store.SessionStoreBusy` (the handshake gets 503 + Retry-After) instead of
guessing a count from memory, and connected clients pause after at most one frame.

Closes that fail are kept and written back by :meth:`flush_pending` ("max wins": a write-back
never lowers a count; one that Redis refuses because a newer connection holds the session at an
equal or higher count is logged and counted in :attr:`refused_writes`). They are bounded: once
``pending_max`` are held, :meth:`open` refuses too, so at most ``pending_max`` plus the node's
open connections are ever held (each connection closes once, and none opens meanwhile).
Nothing is dropped: a dropped close would leave only the connection's claim in Redis once the
node's next checkpoint replaced its live hash, and the next connection could repeat counts.

When Redis comes back empty (restarted without persistence), the node notices at its next
checkpoint (the epoch key changed), which writes its live sessions back, and
:meth:`checkpoint` then replays the sessions closed on this node within the TTL (kept in this
process's memory) with "max wins". Opens are refused meanwhile: by a node until its own
checkpoint saw the new epoch, and by every node for ``recovery_grace`` seconds after it, the
time the other nodes take to write theirs back.

Under a burst of handshakes (a failover sends every client of a dead node to the survivors at
once) the claims of concurrent handshakes go to Redis together: one pipeline per batch, sent as
soon as the previous one is answered, so a lone handshake waits for nothing and a thousand
share a few round trips (:class:`ClaimBatcher`). Checkpoints and write-backs, which the leases
of every open connection wait for, have a connection of their own and never queue behind
claims.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgpack
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .memory import MemorySessionStore
from .records import CLOSED, LIVE, SessionRecord, token_sequence
from .redis_scripts import CHECKPOINT, CLOSE, OPEN
from .store import Checkpoint, Opening, SessionStoreBusy

logger = logging.getLogger(__name__)

KEY_PREFIX = "wstime:sessions:"
LIVE_PREFIX = "wstime:live:"
REVOKED_PREFIX = "wstime:revoked:"  # per node channel: its connections newer claims revoked
NODES_KEY = "wstime:nodes"  # sorted set: node channel -> Redis time of its last checkpoint
EPOCH_KEY = "wstime:epoch"  # "<Redis time ms>:<N or R>"; missing after Redis lost its data
PENDING_MAX = 100_000  # closes held back by an outage before new handshakes are refused
FLUSH_BATCH = 500  # held closes written back per round trip
CLAIM_BATCH = 200  # claims sent per round trip at most
LEASE_POOL_SIZE = 2  # connections for checkpoints and write-backs, apart from the claims'

WRITTEN, RAISED, REFUSED = 1, 2, 0  # replies of the CLOSE script


class ClaimBatcher:
    """Sends the claims of concurrent handshakes in pipelines, one batch in flight at a time.

    A claim waits only for the batch in flight, if any: alone, it goes at once. The one task
    that sends is started on the first claim and stopped by :meth:`aclose`.
    """

    def __init__(self, send: Callable[[list[list[Any]]], Any], *, batch: int = CLAIM_BATCH) -> None:
        self._send = send  # args of each claim -> replies, or raises for the whole batch
        self._batch = batch
        self._waiting: list[tuple[list[Any], asyncio.Future[Any]]] = []
        self._ready: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def claim(self, args: list[Any]) -> Any:
        """Send ``args`` with the next batch; return its reply or raise its error."""
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._waiting = []  # a stopped loop's claims are gone with it
            self._ready = asyncio.Event()
            self._task = loop.create_task(self._run(self._ready), name="wstime:claims")
        future: asyncio.Future[Any] = loop.create_future()
        self._waiting.append((args, future))
        assert self._ready is not None
        self._ready.set()
        return await future

    async def _run(self, ready: asyncio.Event) -> None:
        while True:
            await ready.wait()
            ready.clear()
            while self._waiting:
                batch = [
                    (args, future)
                    for args, future in self._waiting[: self._batch]
                    if not future.done()
                ]  # a handshake cancelled meanwhile claims nothing
                del self._waiting[: self._batch]
                if batch:
                    await self._deliver(batch)

    async def _deliver(self, batch: list[tuple[list[Any], asyncio.Future[Any]]]) -> None:
        try:
            replies = await self._send([args for args, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - the batch's error is each claim's error
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def aclose(self) -> None:
        """Stop the sending task; claims still waiting fail with CancelledError."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        waiting, self._waiting = self._waiting, []
        for _, future in waiting:
            future.cancel()


class RedisSessionStore:
    """The shared session store; see the module docstring for the layout and the guarantees."""

    shared = True

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        ttl: float,
        recovery_grace: float = 3.0,
        pending_max: int = PENDING_MAX,
        wall_clock: Callable[[], float] = time.time,
        lease_client: aioredis.Redis | None = None,
    ) -> None:
        # wall_clock stamps nothing that another node reads: buckets and registry scores come
        # from Redis's TIME. It is kept so that tests can skew a store and see it change nothing.
        self.ttl = ttl
        self.recovery_grace = recovery_grace
        self.pending_max = pending_max
        self._redis = client
        # Checkpoints and write-backs: the leases wait for them, so they never queue behind
        # a burst of claims for a pooled connection.
        self._lease_redis = lease_client if lease_client is not None else client
        self._claims = ClaimBatcher(self._send_claims)
        self._wall_clock = wall_clock
        # A bucket of a quarter of the lifetime keeps the read of an open at a handful of HGETs.
        self.bucket_seconds = max(0.1, ttl / 4)
        self.buckets_to_read = math.ceil(ttl / self.bucket_seconds) + 2
        self.local = MemorySessionStore(ttl=ttl)
        self._pending_closes: dict[str, tuple[str, int]] = {}
        # Closes sent and not yet answered: a checkpoint keeps their counts meanwhile.
        self._closing: dict[str, tuple[str, int]] = {}
        self._open = self._redis.register_script(OPEN)
        self._close = self._redis.register_script(CLOSE)
        self._checkpoint = self._redis.register_script(CHECKPOINT)
        self._checkpoints = itertools.count()
        self.epoch = ""  # the epoch of Redis's data this store last saw; "" before the first
        self.available = True
        self.errors = 0  # failed Redis calls since start, for /metrics
        self.refused_writes = 0  # closes and write-backs Redis refused (a newer record held)
        self.replayed = 0  # closed sessions written back after Redis lost its data

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        ttl: float,
        pool_size: int,
        socket_timeout: float = 5.0,
        recovery_grace: float = 3.0,
        pending_max: int = PENDING_MAX,
    ) -> RedisSessionStore:
        # A blocking pool waits for a free connection under bursts (a failover's handshakes)
        # instead of raising MaxConnectionsError. An unreachable Redis fails fast at connect
        # (1 s, tried twice), which frees the pool; a reply slower than socket_timeout is
        # SessionStoreBusy. A pooled connection that Redis dropped (a restart) fails its next
        # command, which is retried once on a fresh connection, so a restart is not an outage;
        # a timed-out command, which may have run, is never retried.
        def client(size: int) -> aioredis.Redis:
            pool = aioredis.BlockingConnectionPool.from_url(
                url,
                max_connections=size,
                timeout=30,
                socket_connect_timeout=1,
                socket_timeout=socket_timeout,
                health_check_interval=15,
                retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            )
            return aioredis.Redis(connection_pool=pool)

        return cls(
            client(pool_size),
            ttl=ttl,
            recovery_grace=recovery_grace,
            pending_max=pending_max,
            lease_client=client(LEASE_POOL_SIZE),
        )

    def _bucket_args(self) -> list[str | int]:
        return [KEY_PREFIX, int(self.bucket_seconds * 1000), self.buckets_to_read]

    def _expiry_ms(self) -> int:
        return int((self.ttl + self.bucket_seconds) * 1000)

    def _mark(self, ok: bool, action: str, exc: Exception | None = None) -> None:
        if not ok:
            self.errors += 1
        if ok and not self.available:
            logger.warning("Redis reachable again; session state is being written back")
        elif not ok and self.available:
            logger.error(
                "Redis unreachable (%s: %s); connections pause at their stored count "
                "and handshakes are refused until it answers",
                action,
                type(exc).__name__,
            )
        self.available = ok

    async def open(self, client_id: str, token: str, *, last_seen: int = -1) -> Opening:
        """Claim ``client_id`` for the connection ``token``; raise SessionStoreBusy if unsure.

        The claim persists the returned ``last_n``, the connection's first lease. Refused (busy)
        while Redis is unreachable or slow, while closes held back by an outage are at
        ``pending_max``, and shortly after Redis lost its data (see the module docstring).
        """
        if len(self._pending_closes) >= self.pending_max:
            raise SessionStoreBusy("too many closes wait for the session store")
        local_record = self.local.get(client_id)
        # Memory may know a newer count than Redis: a session closed here whose close is still
        # held back. The claim must store at least that count, or the lease would not hold.
        # Memory's live records are claims only (no checkpoint writes them): exact, as in Redis.
        # And the client may know a newer count than both (Redis lost it): never go below it.
        floor = max(local_record.last_n if local_record is not None else -1, last_seen)
        try:
            raw, epoch, claimed, last, revoked = await self._claims.claim(
                [
                    *self._bucket_args(),
                    client_id,
                    token,
                    self._expiry_ms(),
                    LIVE_PREFIX,
                    NODES_KEY,
                    EPOCH_KEY,
                    self.epoch,
                    int(self.recovery_grace * 1000),
                    floor,
                    REVOKED_PREFIX,
                ]
            )
        except RedisTimeoutError as exc:
            # Redis (or this busy process) is slow, not gone: the claim may even have been
            # made. Starting the count from memory could repeat or reset it, so refuse.
            raise SessionStoreBusy("the session store did not answer in time") from exc
        except RedisError as exc:
            self._mark(False, "open", exc)
            raise SessionStoreBusy("the session store is unreachable") from exc
        self._mark(True, "open")
        if not claimed:
            raise SessionStoreBusy("the session store is being restored after losing its data")
        if not self.epoch and epoch:
            self.epoch = _text(epoch)
        previous = SessionRecord.decode(raw)
        if local_record is not None and (previous is None or local_record.last_n > previous.last_n):
            previous = local_record
        opening = Opening(
            last_n=int(last), previous=previous, revoked=tuple(_text(t) for t in revoked)
        )
        self.local.put(client_id, SessionRecord(opening.last_n, LIVE, token))
        return opening

    async def _send_claims(self, claims: list[list[Any]]) -> list[Any]:
        """One round trip for a batch of OPEN calls; a failed one's reply is its exception."""
        if len(claims) == 1:
            return [await self._open(keys=[], args=claims[0])]
        async with self._redis.pipeline(transaction=False) as pipe:
            for args in claims:
                await self._open(keys=[], args=args, client=pipe)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies

    def live_key(self, owner_channel: str) -> str:
        return f"{LIVE_PREFIX}{owner_channel}"

    async def checkpoint(
        self,
        owner_channel: str,
        entries: Iterable[tuple[str, str, int]],
        *,
        handshake_floor: int = 0,
    ) -> Checkpoint:
        """Replace this node's live counts with ``entries`` (client id, token, last count).

        ``handshake_floor``: the lowest token sequence a handshake still in progress on the
        node may hold (else its next one). A revoked connection at or above it that is not
        listed yet keeps its mark, so that it is revoked once it is; 0 keeps every mark.

        ``stored`` once Redis holds them: only then may the node raise its connections' leases,
        except those of the ``revoked`` (a newer claim took their sessions; they are not
        stored). If Redis lost its data since the last checkpoint, this one also writes back
        the sessions closed on this node within the TTL.
        """
        args: list[str | int | bytes] = [
            self.live_key(owner_channel),
            owner_channel,
            NODES_KEY,
            self._expiry_ms(),
            EPOCH_KEY,
            self.epoch,
            next(self._checkpoints),
            f"{REVOKED_PREFIX}{owner_channel}",
            handshake_floor,
        ]
        fields: list[str] = []
        live = set()
        for client_id, token, last_n in entries:
            live.add(client_id)
            fields += (client_id, f"{last_n}|{token_sequence(token)}")
        # A held close keeps its count in the live hash until it is written: the claim alone
        # is older, and resuming from it could repeat counts. So does a close still on its way:
        # it travels on another connection, and this checkpoint may reach Redis first. Marked
        # closed ("|C"): its count is exact, so opening resumes at it, not one past.
        for client_id, (token, last_n) in {**self._closing, **self._pending_closes}.items():
            if client_id not in live:
                fields += (client_id, f"{last_n}|{token_sequence(token)}|C")
        # One MessagePack argument, not two per connection: redis-py encodes each argument in
        # Python (11 ms of the event loop at 10,000 connections), msgpack all of them in C.
        args.append(msgpack.packb(fields))
        try:
            epoch, applied, revoked = await self._checkpoint(
                keys=[], args=args, client=self._lease_redis
            )
        except RedisError as exc:
            self._mark(False, "checkpoint", exc)
            return Checkpoint(stored=False)
        self._mark(True, "checkpoint")
        epoch = _text(epoch)
        if self.epoch and epoch != self.epoch:
            logger.warning(
                "Redis lost its session data (epoch %s, was %s); live sessions "
                "written back, replaying the recently closed ones",
                epoch,
                self.epoch,
            )
            self.epoch = epoch
            await self._replay_closed()
        self.epoch = epoch
        return Checkpoint(
            stored=bool(applied),
            revoked=tuple(_revoked_connection(owner_channel, member) for member in revoked),
        )

    async def _replay_closed(self) -> None:
        closed = [
            (client_id, record.token, record.last_n)
            for client_id, record in self.local.records()
            if record.state == CLOSED
        ]
        for client_id, token, last_n in closed:
            self._pending_closes.setdefault(client_id, (token, last_n))
        self.replayed += await self.flush_pending()

    async def close(self, client_id: str, token: str, last_n: int) -> None:
        """Record the connection's exact last count; held back and retried if Redis fails."""
        await self.local.close(client_id, token, last_n)
        try:
            with self._on_the_way([(client_id, token, last_n)]):
                reply = await self._write_close(client_id, token, last_n)
        except RedisError as exc:
            self._mark(False, "close", exc)
            self._pending_closes[client_id] = (token, last_n)
            return
        self._mark(True, "close")
        self._check_reply(reply, client_id, token, last_n, "close")

    async def close_many(self, entries: Iterable[tuple[str, str, int]]) -> None:
        """Record several exact closes in one round trip (a drain's batch)."""
        entries = list(entries)
        if not entries:
            return
        await self.local.close_many(entries)
        try:
            with self._on_the_way(entries):
                async with self._redis.pipeline(transaction=False) as pipe:
                    for client_id, token, last_n in entries:
                        await self._write_close(client_id, token, last_n, client=pipe)
                    replies = await pipe.execute()
        except RedisError as exc:
            self._mark(False, "close", exc)
            for client_id, token, last_n in entries:
                self._pending_closes[client_id] = (token, last_n)
            return
        self._mark(True, "close")
        for (client_id, token, last_n), reply in zip(entries, replies, strict=False):
            self._check_reply(reply, client_id, token, last_n, "close")

    @contextlib.contextmanager
    def _on_the_way(self, entries: list[tuple[str, str, int]]) -> Iterator[None]:
        """Keep closes in :attr:`_closing` while their write is on its way to Redis."""
        for client_id, token, last_n in entries:
            self._closing[client_id] = (token, last_n)
        try:
            yield
        finally:
            for client_id, token, last_n in entries:
                if self._closing.get(client_id) == (token, last_n):
                    del self._closing[client_id]

    async def _write_close(
        self, client_id: str, token: str, last_n: int, client: Any = None
    ) -> Any:
        return await self._close(
            keys=[],
            client=client,
            args=[*self._bucket_args(), client_id, token, last_n, self._expiry_ms(), LIVE_PREFIX],
        )

    def _check_reply(
        self, reply: object, client_id: str, token: str, last_n: int, action: str
    ) -> None:
        if reply == REFUSED:
            # Normal after a takeover (the newer connection resumed past this count), so
            # counted and logged, not an error; a write-back's refusal is worth a warning.
            self.refused_writes += 1
            logger.log(
                logging.INFO if action == "close" else logging.WARNING,
                "client=%s event=%s-refused token=%s last=%d: a newer connection "
                "holds the session at this count or higher",
                client_id,
                action,
                token,
                last_n,
            )
        elif reply == RAISED:
            logger.info(
                "client=%s event=%s-raised token=%s last=%d: another connection's "
                "lower record raised to this count (max wins)",
                client_id,
                action,
                token,
                last_n,
            )

    async def flush_pending(self) -> int:
        """Write back the closes held back by an outage ("max wins"); return how many went.

        Batches of :data:`FLUSH_BATCH` closes, one round trip each. A write-back Redis refuses
        (a newer connection holds the session at an equal or higher count) is dropped, logged
        and counted in :attr:`refused_writes`. Stops at the first failure; the rest stay held.
        """
        written = 0
        held = list(self._pending_closes.items())
        for start in range(0, len(held), FLUSH_BATCH):
            batch = held[start : start + FLUSH_BATCH]
            try:
                async with self._lease_redis.pipeline(transaction=False) as pipe:
                    for client_id, (token, last_n) in batch:
                        await self._write_close(client_id, token, last_n, client=pipe)
                    replies = await pipe.execute()
            except RedisError as exc:
                self._mark(False, "write-back", exc)
                break
            self._mark(True, "write-back")
            for (client_id, (token, last_n)), reply in zip(batch, replies, strict=False):
                if self._pending_closes.get(client_id) == (token, last_n):
                    del self._pending_closes[client_id]
                self._check_reply(reply, client_id, token, last_n, "write-back")
                written += reply != REFUSED
        return written

    @property
    def pending_closes(self) -> int:
        """Closes held back by an outage, waiting to be written."""
        return len(self._pending_closes)

    def expire(self) -> int:
        """Forget expired sessions from this process's memory (kept for replays)."""
        return self.local.expire()

    async def ping(self) -> bool:
        """Return whether Redis answers, updating :attr:`available`."""
        try:
            await self._redis.ping()
        except RedisError as exc:
            self._mark(False, "ping", exc)
            return False
        self._mark(True, "ping")
        return True

    async def aclose(self) -> None:
        await self._claims.aclose()
        await self._redis.aclose()
        if self._lease_redis is not self._redis:
            await self._lease_redis.aclose()


def _revoked_connection(owner_channel: str, member: str | bytes) -> tuple[str, str]:
    """(client id, token) of a revocation-set member, ``"<client id>|<token sequence>"``."""
    client_id, _, sequence = _text(member).rpartition("|")
    return client_id, f"{owner_channel}#{sequence}"


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value
