"""The open-file limit: how many connections this process can hold before it runs out.

Every WebSocket is a socket, and the process needs more descriptors besides: its Redis and
database connections, the sockets of handshakes and HTTP requests in flight, the files it
reads (templates, ``/proc`` for the health sampler). A node at its limit fails at random
places: its sampler cannot read ``/proc`` and crash-loops, a request cannot load a template.
So the node raises its soft limit to the hard one when it starts, and refuses handshakes
(503) once its connections would leave fewer than :data:`RESERVE` descriptors.
"""

from __future__ import annotations

import resource

RESERVE = 512  # descriptors kept for everything but the connections themselves


def raise_soft_limit() -> int:
    """Raise this process's soft open-file limit to its hard limit; return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard and (hard == resource.RLIM_INFINITY or soft < hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass  # a hard limit the kernel caps lower (fs.nr_open): keep the soft one
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def connection_limit(soft_limit: int, *, reserve: int = RESERVE) -> int | None:
    """Connections a process with ``soft_limit`` descriptors may hold; None: no limit."""
    if soft_limit == resource.RLIM_INFINITY:
        return None
    return max(1, soft_limit - reserve)


def process_connection_limit() -> int | None:
    """:func:`connection_limit` of this process's current soft limit."""
    return connection_limit(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
