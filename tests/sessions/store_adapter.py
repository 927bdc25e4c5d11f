"""How the model-based test drives a session store, and the Redis process it runs against.

Every call into a store goes through :class:`StoreAdapter`: when the store's signatures change,
this is the one place to adjust. The adapter answers in the model's terms only: was the handshake
refused, and was a write persisted (the "lease" of a connection counts from persisted writes).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import redis

from localcluster.processes import Managed, start_redis
from timer.sessions.memory import MemorySessionStore
from timer.sessions.redis_store import RedisSessionStore
from timer.sessions.store import SessionStoreBusy

TTL = 60.0  # seconds: far beyond one example, so nothing expires while the model runs
SOCKET_TIMEOUT = 0.05  # how long a paused (SIGSTOP) Redis holds up each call

# The exceptions by which ``open`` refuses a handshake (the node answers HTTP 503).
REFUSALS: tuple[type[Exception], ...] = (SessionStoreBusy,)

Entry = tuple[str, str, int]  # client id, token, last count sent


class StoreAdapter:
    """One node's session store, called exactly as the node calls it."""

    def __init__(self, store: MemorySessionStore | RedisSessionStore) -> None:
        self.store = store

    @classmethod
    def memory(cls) -> StoreAdapter:
        return cls(MemorySessionStore(ttl=TTL))

    @classmethod
    def redis(cls, url: str, wall_clock: Callable[[], float]) -> StoreAdapter:
        store = RedisSessionStore.from_url(url, ttl=TTL, pool_size=4, socket_timeout=SOCKET_TIMEOUT)
        store._wall_clock = wall_clock  # from_url takes no clock
        return cls(store)

    @property
    def shared(self) -> bool:
        return self.store.shared

    async def open(self, client_id: str, token: str) -> int | None:
        """Claim the session; return the count treated as shown, or None when refused."""
        try:
            opening = await self.store.open(client_id, token)
        except REFUSALS:
            return None
        return opening.last_n

    async def close(self, client_id: str, token: str, last_n: int) -> bool:
        """Record a connection's exact last count; return whether the store reached Redis."""
        await self.store.close(client_id, token, last_n)
        return self._persisted()

    async def close_many(self, entries: list[Entry]) -> bool:
        """Record several exact closes at once (a drain); return whether they reached Redis."""
        await self.store.close_many(entries)
        return self._persisted()

    async def housekeeping(
        self, channel: str, entries: list[Entry], handshake_floor: int
    ) -> tuple[bool, set[str]]:
        """Run one interval of the node's housekeeping; return whether the checkpoint persisted,
        and the tokens of the listed connections it revoked (their leases are not raised).

        Mirrors ``timer.node.housekeeping``: a shared store checkpoints every live connection,
        then writes back what an outage held; every store forgets expired records.
        """
        persisted, revoked = True, set()
        if self.shared:
            store = self.store
            result = await store.checkpoint(channel, entries, handshake_floor=handshake_floor)
            persisted = result.stored
            revoked = {token for _, token in result.revoked}
            if store.available and store.pending_closes:
                await store.flush_pending()
        self.store.expire()
        return persisted, revoked

    async def shutdown(self) -> None:
        await self.store.aclose()

    async def crash(self) -> None:
        """Lose the process: drop its sockets without writing anything."""
        if isinstance(self.store, RedisSessionStore):
            await self.store._redis.connection_pool.disconnect()

    def _persisted(self) -> bool:
        return not self.shared or self.store.available


class RedisControl:
    """A real redis-server that can be stopped, restarted with or without its data, and paused."""

    def __init__(self) -> None:
        self.server: Managed | None = start_redis()
        self.port = self.server.port
        self.url = self.server.extra["url"]
        self.paused = False
        self._saved: list[tuple[bytes, int, bytes]] = []

    @property
    def running(self) -> bool:
        return self.server is not None

    def _client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def stop(self) -> None:
        """Stop Redis, keeping a copy of its data for a restart "with data" (as AOF would)."""
        assert self.server is not None and not self.paused
        client = self._client()
        try:
            self._saved = [
                (key, max(0, client.pttl(key)), client.dump(key)) for key in client.scan_iter()
            ]
        finally:
            client.close()
        self.server.stop()
        self.server = None

    def start(self, *, with_data: bool) -> None:
        assert self.server is None
        self.server = start_redis(self.port)
        if with_data:
            client = self._client()
            try:
                for key, pttl, value in self._saved:
                    client.restore(key, pttl, value, replace=True)
            finally:
                client.close()
        self._saved = []

    def pause(self) -> None:
        assert self.server is not None and not self.paused
        os.kill(self.server.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        assert self.server is not None and self.paused
        os.kill(self.server.pid, signal.SIGCONT)
        self.paused = False

    def reset(self) -> None:
        """Running, not paused, empty: the state every example starts from."""
        if self.paused:
            self.resume()
        if self.server is None:
            self.start(with_data=False)
        client = self._client()
        try:
            client.flushall()
        finally:
            client.close()

    def shutdown(self) -> None:
        if self.paused:
            self.resume()
        if self.server is not None:
            self.server.stop()
            self.server = None
