"""Once per interval: checkpoint this node's live counts, and write back what an outage held.

A checkpoint that Redis stored raises every connection's lease to the counts it wrote (see
:mod:`timer.node.hub`); one that failed raises nothing, so connections pause at most one frame
past what Redis holds until a later one succeeds. A connection whose session a newer claim
revoked (another node's, whose takeover message has not arrived) gets no lease, and the node
hears of it (:meth:`timer.node.node.Node.revoked`). One store call per node per interval,
whatever the number of connections, and at most ten a second more while resumed sessions
arrive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ..sessions.store import SessionStore
from .hub import Hub
from .loop_lag import LagRecord

SWEEP_EVERY = 30.0  # seconds between two sweeps of expired sessions from this process's memory
EARLY_DELAY = 0.1  # seconds an early checkpoint waits for more resumed sessions to attach


# (client id, token) of the listed connections a newer claim revoked, at every checkpoint
Revoked = Callable[[tuple[tuple[str, str], ...]], Awaitable[None]]


async def run_housekeeping(
    hub: Hub,
    store: SessionStore,
    *,
    channel: Callable[[], str],
    interval: float,
    revoked: Revoked,
    handshake_floor: Callable[[], int],
    durations: LagRecord | None = None,
) -> None:
    """Run until cancelled; ``channel`` names the live hash (this node's channel).

    Besides the checkpoint every interval, one runs :data:`EARLY_DELAY` after a resumed
    session attaches (``hub.checkpoint_wanted``), unless the next is as close: its first frame
    waits for a checkpoint that lists it. Those attaching meanwhile share it, so a failover's
    reconnects cost a few checkpoints a second, not one each.

    ``durations`` records how long each checkpoint took from its snapshot to the raised
    leases: a frame due meanwhile waits for it.
    """
    loop = asyncio.get_running_loop()
    wanted = asyncio.Event()
    hub.checkpoint_wanted = wanted.set

    async def checkpoint() -> None:
        if not store.shared:
            return
        if store.pending_closes:
            await store.flush_pending()
        started = loop.time()
        stored = await checkpoint_once(
            hub, store, channel(), revoked, handshake_floor=handshake_floor()
        )
        if stored and durations is not None:
            durations.add(loop.time() - started)

    swept_at = next_at = loop.time()
    try:
        while True:
            # Deadlines, not sleep(interval): the checkpoint keeps its phase against the frames.
            next_at = max(next_at + interval, loop.time())
            while await _set_before(wanted, next_at - EARLY_DELAY):
                await asyncio.sleep(EARLY_DELAY)
                wanted.clear()
                await checkpoint()
            await asyncio.sleep(next_at - loop.time())
            wanted.clear()  # this one lists them too
            await checkpoint()
            if loop.time() - swept_at >= SWEEP_EVERY:
                store.expire()
                swept_at = loop.time()
    finally:
        if hub.checkpoint_wanted == wanted.set:
            hub.checkpoint_wanted = None


async def _set_before(event: asyncio.Event, deadline: float) -> bool:
    """Wait for ``event`` until the loop's ``deadline``; True if it is set by then."""
    remaining = deadline - asyncio.get_running_loop().time()
    if event.is_set() or remaining <= 0:
        return event.is_set()
    try:
        await asyncio.wait_for(event.wait(), remaining)
    except TimeoutError:
        return False
    return True


async def checkpoint_once(
    hub: Hub, store: SessionStore, channel: str, revoked: Revoked, *, handshake_floor: int
) -> bool:
    """Store the live counts, raise the leases of the stored but not revoked, report the
    revoked; True if stored.

    ``handshake_floor`` must be read with the snapshot, before any await (see
    :meth:`timer.node.node.Node.handshake_floor`).
    """
    snapshot = hub.snapshot()
    result = await store.checkpoint(
        channel,
        [(c.client_id, c.token, n) for c, n in snapshot],
        handshake_floor=handshake_floor,
    )
    if result.stored:
        tokens = {token for _, token in result.revoked}
        await hub.confirm([(c, n) for c, n in snapshot if c.token not in tokens])
    if result.revoked:
        await revoked(result.revoked)
    return result.stored
