"""Once per interval: checkpoint this node's live counts, and write back what an outage held.

A checkpoint that Redis stored raises every connection's lease to the counts it wrote (see
:mod:`timer.node.hub`); one that failed raises nothing, so connections pause at most one frame
past what Redis holds until a later one succeeds. One store call per node per interval,
whatever the number of connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..sessions.store import SessionStore
from .hub import Hub
from .loop_lag import LagRecord

SWEEP_EVERY = 30.0  # seconds between two sweeps of expired sessions from this process's memory


async def run_housekeeping(
    hub: Hub,
    store: SessionStore,
    *,
    channel: Callable[[], str],
    interval: float,
    durations: LagRecord | None = None,
) -> None:
    """Run until cancelled; ``channel`` names the live hash (this node's channel).

    ``durations`` records how long each checkpoint took from its snapshot to the raised
    leases: a frame due meanwhile waits for it.
    """
    loop = asyncio.get_running_loop()
    swept_at = next_at = loop.time()
    while True:
        # Deadlines, not sleep(interval): the checkpoint keeps its phase against the frames.
        next_at = max(next_at + interval, loop.time())
        await asyncio.sleep(next_at - loop.time())
        if store.shared:
            if store.pending_closes:
                await store.flush_pending()
            started = loop.time()
            snapshot = hub.snapshot()
            stored = await store.checkpoint(
                channel(), [(c.client_id, c.token, n) for c, n in snapshot]
            )
            if stored:
                await hub.confirm(snapshot)
                if durations is not None:
                    durations.add(loop.time() - started)
        if loop.time() - swept_at >= SWEEP_EVERY:
            store.expire()
            swept_at = loop.time()
