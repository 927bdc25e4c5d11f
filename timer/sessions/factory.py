"""The session store a node uses: Redis when the cluster shares one, else this process's memory."""

from __future__ import annotations

from .memory import MemorySessionStore
from .redis_store import RedisSessionStore
from .store import SessionStore


def open_store(
    *, redis_url: str, ttl: float, pool_size: int, recovery_grace: float
) -> SessionStore:
    """Return the store for ``redis_url`` (``""``: a single node keeps its sessions in memory)."""
    if redis_url:
        return RedisSessionStore.from_url(
            redis_url, ttl=ttl, pool_size=pool_size, recovery_grace=recovery_grace
        )
    return MemorySessionStore(ttl=ttl)
