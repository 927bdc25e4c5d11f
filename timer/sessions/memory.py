"""Sessions in this process's memory: the embedded store, and the Redis store's fallback."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from .records import CLOSED, LIVE, SessionRecord, resume_last
from .store import Opening


class MemorySessionStore:
    """Records in a dict, each forgotten ``ttl`` seconds after it was last written."""

    shared = False

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

    def expire(self) -> int:
        """Forget every record past its lifetime; return how many went."""
        now = self._clock()
        stale = [key for key, (deadline, _) in self._records.items() if deadline <= now]
        for key in stale:
            del self._records[key]
        return len(stale)

    async def open(self, client_id: str, token: str) -> Opening:
        previous = self.get(client_id)
        last_n = resume_last(previous)
        self.put(client_id, SessionRecord(last_n, LIVE, token))
        return Opening(last_n=last_n, previous=previous)

    async def checkpoint(self, owner_channel: str,
                         entries: Iterable[tuple[str, str, int]]) -> None:
        for client_id, token, last_n in entries:
            current = self.get(client_id)
            if current is None or current.token == token:
                self.put(client_id, SessionRecord(last_n, LIVE, token))

    async def close(self, client_id: str, token: str, last_n: int) -> None:
        current = self.get(client_id)
        if current is None or current.token == token:
            self.put(client_id, SessionRecord(last_n, CLOSED, token))

    async def close_many(self, entries: Iterable[tuple[str, str, int]]) -> None:
        for client_id, token, last_n in entries:
            await self.close(client_id, token, last_n)

    async def aclose(self) -> None:
        self._records.clear()
