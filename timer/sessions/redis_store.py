"""Sessions in Redis, shared by every node, with a constant command rate per node.

Two kinds of keys:

- Claims, in hashes bucketed by wall-clock time (``wstime:sessions:<bucket>``): which connection
  holds a session, and its exact count once closed. A session's newest record is in the newest
  bucket that holds its id; buckets expire ``ttl`` after their last write, so abandoned sessions
  vanish with them and Redis memory follows the sessions of the last ``ttl`` seconds, not every
  session ever seen. Opening and closing a session are one script call each.
- Live counts, one hash per node (``wstime:live:<node channel>``, client id ->
  ``<count>|<token sequence>``), replaced every interval by one MULTI (DEL, HSET of every
  connection, PEXPIRE, and the node's entry in the registry ``wstime:nodes``): the steady
  command rate of a node is the same for ten connections or ten thousand. A node's checkpoint
  touches only its own hash, so it can never overwrite a session another node has just taken
  over. The live hashes also keep a session whose claim is gone: a connection held longer than
  the TTL, or one whose claim a Redis restart lost (the next checkpoint writes it back).

When Redis cannot be reached (connection refused) the store answers from this process's memory
and keeps what it could not write; when it is reachable but slow, opening a session raises
:class:`~timer.sessions.store.SessionStoreBusy` rather than guess a count. The next successful
checkpoint writes the live sessions back, and the closed ones are written back by
:meth:`flush_pending`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .memory import MemorySessionStore
from .records import CLOSED, LIVE, SessionRecord, resume_last
from .redis_scripts import CLOSE, OPEN
from .store import Opening, SessionStoreBusy

logger = logging.getLogger(__name__)

KEY_PREFIX = "wstime:sessions:"
LIVE_PREFIX = "wstime:live:"
NODES_KEY = "wstime:nodes"  # sorted set: node channel -> wall time of its last checkpoint


class RedisSessionStore:
    """The shared session store; see the module docstring for the layout."""

    shared = True

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        ttl: float,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.ttl = ttl
        self._redis = client
        self._wall_clock = wall_clock
        # A bucket of a quarter of the lifetime keeps the read of an open at a handful of HGETs.
        self.bucket_seconds = max(1.0, ttl / 4)
        self.buckets_to_read = math.ceil(ttl / self.bucket_seconds) + 2
        self.local = MemorySessionStore(ttl=ttl)
        self._pending_closes: dict[str, tuple[str, int]] = {}
        self._open = self._redis.register_script(OPEN)
        self._close = self._redis.register_script(CLOSE)
        self.available = True
        self.errors = 0  # failed Redis calls since start, for /metrics

    @classmethod
    def from_url(cls, url: str, *, ttl: float, pool_size: int,
                 socket_timeout: float = 5.0) -> RedisSessionStore:
        # A blocking pool waits for a free connection under bursts (a failover's handshakes)
        # instead of raising MaxConnectionsError. An unreachable Redis fails fast at connect
        # (1 s, tried twice), which frees the pool; a reply slower than socket_timeout is
        # SessionStoreBusy. A pooled connection that Redis dropped (a restart) fails its next
        # command, which is retried once on a fresh connection, so a restart is not an outage;
        # a timed-out command, which may have run, is never retried.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=pool_size,
            timeout=30,
            socket_connect_timeout=1,
            socket_timeout=socket_timeout,
            health_check_interval=15,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        return cls(aioredis.Redis(connection_pool=pool), ttl=ttl)

    def _keys(self) -> list[str]:
        newest = int(self._wall_clock() // self.bucket_seconds)
        return [f"{KEY_PREFIX}{newest - age}" for age in range(self.buckets_to_read)]

    def _expiry_ms(self) -> int:
        return int((self.ttl + self.bucket_seconds) * 1000)

    def _oldest_live_checkpoint(self) -> float:
        """Wall time before which a node that has not checkpointed since holds no session."""
        return self._wall_clock() - self._expiry_ms() / 1000

    def _mark(self, ok: bool, action: str, exc: Exception | None = None) -> None:
        if not ok:
            self.errors += 1
        if ok and not self.available:
            logger.warning("Redis reachable again; session state is being written back")
        elif not ok and self.available:
            logger.error("Redis unreachable (%s: %s); sessions continue from this node's memory",
                         action, type(exc).__name__)
        self.available = ok

    async def open(self, client_id: str, token: str) -> Opening:
        local_record = self.local.get(client_id)
        try:
            raw, live = await self._open(keys=self._keys(), args=[
                client_id, token, self._expiry_ms(), LIVE_PREFIX, NODES_KEY,
                self._oldest_live_checkpoint()])
        except RedisTimeoutError as exc:
            # Redis (or this busy process) is slow, not gone: the claim may even have been
            # made. Starting the count from memory could repeat or reset it, so refuse.
            raise SessionStoreBusy("the session store did not answer in time") from exc
        except RedisError as exc:
            self._mark(False, "open", exc)
            opening = await self.local.open(client_id, token)
            return Opening(last_n=opening.last_n, previous=opening.previous, stored=False)
        self._mark(True, "open")
        previous = SessionRecord.decode(raw)
        if previous is not None and previous.state == LIVE and live:
            # The owner's live count is newer than its claim; the script resumed from it too.
            previous = SessionRecord(max(previous.last_n, int(live)), LIVE, previous.token)
        # Memory may know a newer count than Redis for a session closed here during an outage.
        if local_record is not None and (previous is None or local_record.last_n > previous.last_n):
            previous = local_record
        await self.local.open(client_id, token)
        return Opening(last_n=resume_last(previous), previous=previous)

    def live_key(self, owner_channel: str) -> str:
        return f"{LIVE_PREFIX}{owner_channel}"

    async def checkpoint(self, owner_channel: str,
                         entries: Iterable[tuple[str, str, int]]) -> None:
        """Replace this node's live counts with ``entries`` (client id, token, last count)."""
        key = self.live_key(owner_channel)
        mapping = {client_id: f"{last_n}|{token.rpartition('#')[2]}"
                   for client_id, token, last_n in entries}
        expiry_ms = self._expiry_ms()
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                if mapping:
                    pipe.hset(key, mapping=mapping)
                    pipe.pexpire(key, expiry_ms)
                pipe.zadd(NODES_KEY, {owner_channel: self._wall_clock()})
                pipe.zremrangebyscore(NODES_KEY, "-inf", f"({self._oldest_live_checkpoint()}")
                pipe.pexpire(NODES_KEY, expiry_ms)
                await pipe.execute()
        except RedisError as exc:
            self._mark(False, "checkpoint", exc)
            return
        self._mark(True, "checkpoint")

    async def close(self, client_id: str, token: str, last_n: int) -> None:
        await self.local.close(client_id, token, last_n)
        try:
            await self._write_close(client_id, token, last_n)
        except RedisError as exc:
            self._mark(False, "close", exc)
            self._pending_closes[client_id] = (token, last_n)
            return
        self._mark(True, "close")

    async def close_many(self, entries: Iterable[tuple[str, str, int]]) -> None:
        """Record several exact closes in one round trip (a drain's batch)."""
        entries = list(entries)
        if not entries:
            return
        await self.local.close_many(entries)
        keys, expiry = self._keys(), self._expiry_ms()
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for client_id, token, last_n in entries:
                    record = SessionRecord(last_n, CLOSED, token).encode()
                    await self._close(keys=keys, args=[client_id, token, record, expiry],
                                      client=pipe)
                await pipe.execute()
        except RedisError as exc:
            self._mark(False, "close", exc)
            for client_id, token, last_n in entries:
                self._pending_closes[client_id] = (token, last_n)
            return
        self._mark(True, "close")

    async def _write_close(self, client_id: str, token: str, last_n: int) -> None:
        record = SessionRecord(last_n, CLOSED, token).encode()
        await self._close(keys=self._keys(), args=[client_id, token, record, self._expiry_ms()])

    async def flush_pending(self) -> int:
        """Write back the closes that failed during an outage; return how many were written."""
        written = 0
        for client_id, (token, last_n) in list(self._pending_closes.items()):
            try:
                await self._write_close(client_id, token, last_n)
            except RedisError as exc:
                self._mark(False, "write-back", exc)
                break
            del self._pending_closes[client_id]
            written += 1
        return written

    @property
    def pending_closes(self) -> int:
        """Closes held back by an outage, waiting to be written."""
        return len(self._pending_closes)

    def expire(self) -> int:
        """Forget expired sessions from this process's memory (the fallback)."""
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
        await self._redis.aclose()

