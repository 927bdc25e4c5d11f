"""Handshakes in progress at this node, by client id: one at a time per id.

A handshake reserves its client id synchronously, before its first ``await``, and releases it
once its connection is attached to the hub (or the handshake has failed). Handshakes with one
id therefore run one after the other: a later one finds the earlier connection attached and
takes it over normally (4001, exact count recorded), and its claim in the session store is the
last one written, so the store names the connection that survives.

A reservation is *superseded* as soon as a newer handshake with the same id reserves: it will
be taken over anyway, so it gives up (4001) instead of being attached. A *taken over* one is
named by another node's ``session.takeover`` message, which arrived before the connection was
attached; it also gives up when its turn ends. Pure bookkeeping: no I/O, no clock.
"""

from __future__ import annotations

import asyncio


class Reservation:
    """One handshake's hold on its client id; see the module docstring."""

    __slots__ = ("client_id", "token", "superseded", "taken_over", "_earlier", "_done", "_owner")

    def __init__(self, client_id: str, earlier: list[Reservation], owner: Reservations) -> None:
        self.client_id = client_id
        self.token: str | None = None  # set before the session is claimed in the store
        self.superseded = False
        self.taken_over = False
        self._earlier = earlier
        self._done = asyncio.Event()
        self._owner = owner

    @property
    def gives_up(self) -> bool:
        """Whether the connection must not be attached: a newer one holds the session."""
        return self.superseded or self.taken_over

    async def turn(self) -> None:
        """Wait until every earlier handshake with this id has attached or failed."""
        for earlier in self._earlier:
            # An Event, not a Future: cancelling this wait must not cancel the other's.
            await earlier._done.wait()
        self._earlier = []

    def release(self) -> None:
        """End this handshake's hold (idempotent); the next one with the id may go on."""
        if self._done.is_set():
            return
        self._done.set()
        self._owner._forget(self)


class Reservations:
    """Pending handshakes by client id, oldest first."""

    def __init__(self) -> None:
        self._pending: dict[str, list[Reservation]] = {}

    def __len__(self) -> int:
        """Client ids with a handshake in progress."""
        return len(self._pending)

    def reserve(self, client_id: str) -> Reservation:
        """Hold ``client_id`` for a new handshake; earlier pending ones are superseded."""
        queue = self._pending.setdefault(client_id, [])
        for earlier in queue:
            earlier.superseded = True
        reservation = Reservation(client_id, list(queue), self)
        queue.append(reservation)
        return reservation

    def tokens(self) -> list[str]:
        """The tokens of the pending handshakes that have one (they claim, or have claimed)."""
        return [
            reservation.token
            for queue in self._pending.values()
            for reservation in queue
            if reservation.token is not None
        ]

    def take_over(self, client_id: str, token: object) -> bool:
        """Mark the pending handshake that claimed the session as ``token``; False if none."""
        for reservation in self._pending.get(client_id, ()):
            if reservation.token is not None and reservation.token == token:
                reservation.taken_over = True
                return True
        return False

    def _forget(self, reservation: Reservation) -> None:
        queue = self._pending.get(reservation.client_id)
        if queue is None:
            return
        queue.remove(reservation)
        if not queue:
            del self._pending[reservation.client_id]
