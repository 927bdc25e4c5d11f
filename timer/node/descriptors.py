"""This process's open-file limit, and the connections it leaves room for.

A node at its limit fails at random places: its health sampler cannot read ``/proc`` and
crash-loops, a request cannot load a template. So the node raises its soft limit to the hard
one when it starts, and refuses handshakes (503) past :func:`process_connection_limit`
(:mod:`timer.core.open_files`).
"""

from __future__ import annotations

import resource

from ..core.open_files import connection_limit


def open_file_limits() -> tuple[int | None, int | None]:
    """The soft and hard open-file limits; None: unlimited."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return _finite(soft), _finite(hard)


def _finite(limit: int) -> int | None:
    return None if limit == resource.RLIM_INFINITY else limit


def raise_soft_limit() -> int | None:
    """Raise this process's soft open-file limit to its hard limit; return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass  # a hard limit the kernel caps lower (fs.nr_open): keep the soft one
    return open_file_limits()[0]


def process_connection_limit() -> int | None:
    """Connections this process may hold at its current soft limit; None: no limit."""
    return connection_limit(open_file_limits()[0])
