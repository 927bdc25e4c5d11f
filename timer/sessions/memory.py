"""Sessions in this process's memory: the one-node store, and the Redis store's recent closes.

With one node there is nothing to lose to a crash that the node itself survives, so this store
gives no lease: :meth:`checkpoint` only keeps the counts, and the hub ticks freely.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from .records import CLOSED, LIVE, SessionRecord, resume_last
from .store import Checkpoint, Opening


class MemorySessionStore:
    """Records in a dict, each forgotten ``ttl`` seconds after it was last written."""

    shared = False
    available = True  # memory never fails a call
    errors = 0
    refused_writes = 0  # closes are exact and never race another node here
    pending_closes = 0  # nothing is ever held back

    def __init__(self, *, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._records: dict[str, tuple[float, SessionRecord]] = {}

    def __len__(self) -> int:
        return len(self._records)

    def get(self, client_id: str) -> SessionRecord | None:
        entry = self._records.get(client_id)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._records[client_id]
            return None
        return entry[1]

    def put(self, client_id: str, record: SessionRecord) -> None:
        self._records[client_id] = (self._clock() + self.ttl, record)

    def records(self) -> list[tuple[str, SessionRecord]]:
        """Every record still within its lifetime, with its client id."""
        now = self._clock()
        return [
            (key, record) for key, (deadline, record) in self._records.items() if deadline > now
        ]

    def expire(self) -> int:
        """Forget every record past its lifetime; return how many went."""
        now = self._clock()
        stale = [key for key, (deadline, _) in self._records.items() if deadline <= now]
        for key in stale:
            del self._records[key]
        return len(stale)

    async def open(self, client_id: str, token: str, *, last_seen: int = -1) -> Opening:
        previous = self.get(client_id)
        last_n = max(resume_last(previous), last_seen)
        self.put(client_id, SessionRecord(last_n, LIVE, token))
        return Opening(last_n=last_n, previous=previous)

    async def checkpoint(
        self,
        owner_channel: str,
        entries: Iterable[tuple[str, str, int]],
        *,
        handshake_floor: int = 0,
    ) -> Checkpoint:
        """Keep each connection's count (client id, token, last count); always stored.

        Nothing is ever revoked: one node's hub holds one connection per client id.
        """
        for client_id, token, last_n in entries:
            current = self.get(client_id)
            if current is None or current.token == token:
                self.put(client_id, SessionRecord(last_n, LIVE, token))
        return Checkpoint(stored=True)

    async def close(self, client_id: str, token: str, last_n: int) -> None:
        """Record an exact close; as in Redis, a lower record of another connection is raised."""
        current = self.get(client_id)
        if current is None or current.token == token:
            self.put(client_id, SessionRecord(last_n, CLOSED, token))
        elif current.last_n < last_n:  # max wins: counts only go up over a session's life
            self.put(client_id, SessionRecord(last_n, current.state, current.token))

    async def close_many(self, entries: Iterable[tuple[str, str, int]]) -> None:
        for client_id, token, last_n in entries:
            await self.close(client_id, token, last_n)

    async def flush_pending(self) -> int:
        return 0

    async def aclose(self) -> None:
        self._records.clear()
