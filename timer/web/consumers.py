"""The WebSocket endpoint: checks the client id, opens the session, hands ticking to the hub.

Every way a connection ends (its disconnect, a failed handshake, the application instance
dying or being cancelled) goes through :meth:`TimerConsumer._release`, which takes it off the
hub (and so out of the live checkpoint) before anything else, then records its exact count.
"""

from __future__ import annotations

import logging
from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer

from ..core.client_ids import (
    InvalidClientId,
    client_id_from_query,
    last_seen_from_query,
    new_client_id,
)
from ..core.close_codes import (
    CLOSE_ABNORMAL,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_NO_STATUS_RECEIVED,
    CLOSE_SESSION_TAKEN_OVER,
)
from ..core.log_text import quoted
from ..core.reservations import Reservation
from ..node.hub import Connection
from ..node.node import Node, get_node
from ..sessions.store import SessionStoreBusy

logger = logging.getLogger(__name__)


class TimerConsumer(AsyncWebsocketConsumer):
    """One client connection. It holds no task or timer of its own: the node's ticker sends."""

    # No per-connection channel: with a Redis layer that would cost a subscription and a
    # listening task per connection. Messages for a connection go to its node's channel.
    channel_layer_alias = "wstime.none"

    # Claimed in the session store and not yet released; attached once on the hub.
    connection: Connection | None = None
    attached = False
    accepted = False
    closing = False  # a close was sent: never send another, ignore the client's frames

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # The instance can end without a disconnect: an exception, or daphne cancelling
            # it (shutdown, or too slow to finish after its client left).
            await self._release(CLOSE_ABNORMAL)

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Call the message's handler, without Channels' database clean-up hop.

        Channels runs ``close_old_connections`` in a worker thread before every message, for
        consumers that use the ORM. This one never does, and that thread round trip was the
        largest single cost of a handshake under load.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        node = get_node()
        query = self.scope.get("query_string", b"")
        try:
            client_id = client_id_from_query(query)
            last_seen = last_seen_from_query(query)
        except InvalidClientId as exc:
            logger.warning(
                "node=%s peer=%s refused a connection: bad client id or last count (%s)",
                node.name,
                _peer(self.scope),
                exc,
            )
            node.counters.refused("bad_client_id")
            await self.close()
            return
        assigned = client_id is None
        client_id = client_id or new_client_id()
        # Before the first await: no other handshake with this id can slip in from here on.
        reservation = node.reservations.reserve(client_id)
        try:
            await self._handshake(
                node, client_id, reservation, assigned=assigned, last_seen=last_seen
            )
        except BaseException:
            await self._abandon(node)
            raise
        finally:
            reservation.release()

    async def _handshake(
        self,
        node: Node,
        client_id: str,
        reservation: Reservation,
        *,
        assigned: bool,
        last_seen: int,
    ) -> None:
        await reservation.turn()
        await node.ensure_started()
        if reservation.superseded:
            # A newer handshake with this id is waiting: it would take this connection over
            # at once. Give up before claiming anything.
            await self._give_up(node, client_id, "a newer handshake with the same id")
            return
        refusal = self._refusal(node)
        if refusal is not None:
            logger.warning(
                "node=%s client=%s refused: %s (HTTP 503)", node.name, client_id, refusal
            )
            node.counters.refused(refusal.replace(" ", "_"))
            await self._deny(503, refusal, node.config.retry_after)
            return
        token = node.new_token()
        reservation.token = token
        try:
            opening = await node.open_session(client_id, token, last_seen=last_seen)
        except SessionStoreBusy:
            logger.warning(
                "node=%s client=%s refused: session store busy (HTTP 503)", node.name, client_id
            )
            node.counters.refused("session_store_busy")
            await self._deny(503, "session store busy", 1)
            return
        # From here on the store holds this connection's claim: every way out records it
        # closed at the opening's count (_abandon, _release), so a failed handshake costs the
        # session no count.
        self.connection = Connection(
            client_id=client_id,
            token=token,
            last_n=opening.last_n,
            send_text=self._send_text,
            close=self._close_with,
        )
        await self.accept()
        if reservation.gives_up:
            why = (
                "another node took the session over"
                if reservation.taken_over
                else "a newer handshake with the same id"
            )
            await self._abandon(node)
            await self._give_up(node, client_id, why)
            return
        # A session with a count goes on at once; a new one starts an interval from now.
        node.hub.attach(self.connection, prompt=opening.last_n >= 0)
        self.attached = True
        logger.info("Client connected with ID: %s", client_id)
        logger.info(
            "node=%s client=%s event=connect resumed=%s next=%d assigned_id=%s stored=%s peer=%s",
            node.name,
            client_id,
            opening.previous is not None,
            opening.last_n + 1,
            assigned,
            opening.stored,
            _peer(self.scope),
        )

    async def _give_up(self, node: Node, client_id: str, why: str) -> None:
        """Close a handshake that lost its session to a newer connection with 4001."""
        node.counters.takeovers += 1
        logger.info(
            "node=%s client=%s event=takeover: %s holds the session", node.name, client_id, why
        )
        if not self.accepted:
            await self.accept()
        await self._close_with(CLOSE_SESSION_TAKEN_OVER, "session taken over")

    async def _abandon(self, node: Node) -> None:
        """Record a claimed but never attached connection closed at its opening's count."""
        connection = self.connection
        if connection is None or self.attached:
            return
        self.connection = None
        await node.store.close(connection.client_id, connection.token, connection.last_n)

    @staticmethod
    def _refusal(node) -> str | None:
        """Why a new connection cannot be taken now, or None."""
        if node.draining:
            return "node draining"
        cap = node.config.connection_cap
        if cap is not None and len(node.hub) >= cap:
            return "node full"
        if node.descriptor_limit is not None and len(node.hub) >= node.descriptor_limit:
            return "node out of file descriptors"
        return None

    async def _deny(self, status: int, text: str, retry_after: int) -> None:
        """Refuse the handshake with an HTTP response (ASGI websocket.http.response)."""
        await self.base_send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [
                    (b"retry-after", str(retry_after).encode()),
                    (b"content-type", b"text/plain; charset=utf-8"),
                ],
            }
        )
        await self.base_send({"type": "websocket.http.response.body", "body": text.encode()})

    async def accept(self, subprotocol=None, headers=None) -> None:
        self.accepted = True
        await super().accept(subprotocol, headers)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # Client frames carry nothing we use; only their size matters. The server enforces the
        # limit before buffering (timer.server.message_limit); this covers any other server.
        if self.closing:
            return
        size = len(bytes_data) if bytes_data is not None else len((text_data or "").encode())
        node = get_node()
        limit = node.config.max_client_frame
        if size > limit and self.connection is not None:
            logger.warning(
                "node=%s client=%s sent a %d-byte frame (limit %d); closing with %d",
                node.name,
                self.connection.client_id,
                size,
                limit,
                CLOSE_MESSAGE_TOO_BIG,
            )
            await self._close_with(CLOSE_MESSAGE_TOO_BIG, "")

    async def disconnect(self, code: int | None) -> None:
        # A close frame without a status code arrives as None (RFC 6455: 1005).
        await self._release(CLOSE_NO_STATUS_RECEIVED if code is None else code)

    async def _release(self, code: int) -> None:
        """Take the connection off the hub, count its close and record its count (once)."""
        connection = self.connection
        if connection is None:
            return
        self.connection = None
        connection.closing = True
        node = get_node()
        node.counters.closed(code)
        # Detaching is synchronous: the slot and the live checkpoint entry go before any await.
        detached = node.hub is not None and node.hub.detach(connection)
        if detached or not self.attached:
            # No takeover, drain or shed recorded it: this connection still owns the session.
            await node.store.close(connection.client_id, connection.token, connection.last_n)
        logger.info(
            "node=%s client=%s event=disconnect code=%s last=%d",
            node.name,
            connection.client_id,
            code,
            connection.last_n,
        )

    async def _send_text(self, text: str) -> None:
        await self.base_send({"type": "websocket.send", "text": text})

    async def _close_with(self, code: int, reason: str) -> None:
        """Send one close frame; any later close of this connection does nothing."""
        if self.closing:
            return
        self.closing = True
        if self.connection is not None:
            self.connection.closing = True  # the ticker sends it nothing more
        await self.close(code=code, reason=reason)


def _peer(scope: dict[str, Any]) -> str:
    """The client's address for a log line, quoted: behind a proxy it comes from a header."""
    client = scope.get("client")
    return quoted(f"{client[0]}:{client[1]}" if client else "unknown")
