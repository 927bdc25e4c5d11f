"""How many connections an open-file limit leaves room for. Pure.

Every WebSocket is a socket, and a node needs more descriptors besides: its Redis and database
connections, the sockets of handshakes and HTTP requests in flight, the files it reads
(templates, ``/proc`` for the health sampler). :data:`RESERVE` keeps those.
"""

from __future__ import annotations

RESERVE = 512  # descriptors kept for everything but the connections themselves


def connection_limit(open_files: int | None, *, reserve: int = RESERVE) -> int | None:
    """Connections a process allowed ``open_files`` descriptors may hold; None: no limit."""
    if open_files is None:
        return None
    return max(1, open_files - reserve)
