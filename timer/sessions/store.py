"""What every session store offers the node, and what opening a session returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .records import SessionRecord


@dataclass(frozen=True)
class Opening:
    """The outcome of opening a session for a new connection."""

    last_n: int  # the count treated as already shown; the next frame carries last_n + 1
    previous: SessionRecord | None  # what was stored before, if anything
    stored: bool = True  # always True: a store that cannot record the claim raises instead
    # Other connections (tokens) that may still hold the session, revoked by this claim: their
    # nodes stop their leases (see Checkpoint.revoked); the node sends each a takeover message.
    revoked: tuple[str, ...] = ()


@dataclass(frozen=True)
class Checkpoint:
    """The outcome of storing a node's live counts."""

    stored: bool  # the counts are stored: the hub may raise the listed connections' leases
    # Listed connections (client id, token) a newer claim revoked: not stored, so their leases
    # must not be raised (timer.node.node.Node.revoked says what the node does with them).
    revoked: tuple[tuple[str, str], ...] = ()


class SessionStoreBusy(Exception):
    """The shared store cannot record a claim now (slow, unreachable, recovering, or too many
    closes held back); refuse the handshake with 503 and let the client try again later."""


class SessionStore(Protocol):
    """The in-memory store (one node) and the Redis store (a cluster) both look like this.

    Counts only go up over a session's life, so when two records of a session disagree the
    higher count is the newer one ("max wins"): no write ever lowers a stored count, except an
    exact close by the connection that holds the session.
    """

    shared: bool  # True when other nodes see the same sessions; the hub then enforces leases
    available: bool  # False while a shared store's last call failed (always True in memory)
    errors: int  # failed calls since start, for /metrics
    refused_writes: int  # closes and write-backs refused: a newer record held the session

    @property
    def pending_closes(self) -> int:
        """Closes held back by an outage, waiting to be written."""

    async def open(self, client_id: str, token: str, *, last_seen: int = -1) -> Opening:
        """Claim the session for connection ``token``; the claim stores ``Opening.last_n``.

        ``Opening.last_n`` is at least ``last_seen``, the last count the client says it saw.

        Raises :class:`SessionStoreBusy` when the claim cannot be stored now.
        """

    async def checkpoint(
        self,
        owner_channel: str,
        entries: list[tuple[str, str, int]],
        *,
        handshake_floor: int = 0,
    ) -> Checkpoint:
        """Store the live counts (client id, token, last count) of this node's connections.

        Once ``stored``, the hub may raise those connections' leases, except the ``revoked``.
        ``handshake_floor`` is the lowest token sequence a handshake still in progress on the
        node may hold: a revoked one of those must stay known until it is listed.
        """

    async def close(self, client_id: str, token: str, last_n: int) -> None:
        """Record a connection's exact last count ("max wins" against other connections)."""

    async def close_many(self, entries: list[tuple[str, str, int]]) -> None:
        """:meth:`close` for several connections at once (a drain's batch)."""

    async def flush_pending(self) -> int:
        """Write back the closes an outage held back; return how many went."""

    def expire(self) -> int:
        """Forget expired sessions from this process's memory; return how many went."""

    async def aclose(self) -> None:
        """Release the store's resources."""


def store_state(store: SessionStore | None) -> str:
    """The shared store as the health JSON and the cluster page show it."""
    if store is None or not store.shared:
        return "not configured"
    return "up" if store.available else "down"
