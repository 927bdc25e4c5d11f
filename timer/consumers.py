"""The WebSocket endpoint: checks the client id, opens the session, hands ticking to the hub."""

from __future__ import annotations

import logging
from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer

from .client_ids import InvalidClientId, client_id_from_query, new_client_id
from .close_codes import CLOSE_MESSAGE_TOO_BIG
from .hub import Connection
from .node import get_node
from .sessions.store import SessionStoreBusy

logger = logging.getLogger(__name__)


class TimerConsumer(AsyncWebsocketConsumer):
    """One client connection. It holds no task or timer of its own: the node's ticker sends."""

    # No per-connection channel: with a Redis layer that would cost a subscription and a
    # listening task per connection. Messages for a connection go to its node's channel.
    channel_layer_alias = "wstime.none"

    connection: Connection | None = None

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
        try:
            client_id = client_id_from_query(self.scope.get("query_string", b""))
        except InvalidClientId as exc:
            logger.warning("node=%s refused a connection from %s: bad client id (%s)",
                           node.name, _peer(self.scope), exc)
            node.counters.refused("bad_client_id")
            await self.close()
            return
        assigned = client_id is None
        client_id = client_id or new_client_id()
        await node.ensure_started()
        refusal = self._refusal(node)
        if refusal is not None:
            logger.warning("node=%s client=%s refused: %s (HTTP 503)", node.name, client_id,
                           refusal)
            node.counters.refused(refusal.replace(" ", "_"))
            await self._deny(503, refusal, node.config.retry_after)
            return
        token = node.new_token()
        try:
            opening = await node.open_session(client_id, token)
        except SessionStoreBusy:
            logger.warning("node=%s client=%s refused: session store busy (HTTP 503)", node.name,
                           client_id)
            node.counters.refused("session_store_busy")
            await self._deny(503, "session store busy", 1)
            return
        await self.accept()
        self.connection = Connection(
            client_id=client_id,
            token=token,
            last_n=opening.last_n,
            send_text=self._send_text,
            close=self._close_with,
        )
        node.hub.attach(self.connection)
        logger.info("Client connected with ID: %s", client_id)
        logger.info("node=%s client=%s event=connect resumed=%s next=%d assigned_id=%s "
                    "stored=%s", node.name, client_id, opening.previous is not None,
                    opening.last_n + 1, assigned, opening.stored)

    @staticmethod
    def _refusal(node) -> str | None:
        """Why a new connection cannot be taken now, or None."""
        if node.draining:
            return "node draining"
        cap = node.config.connection_cap
        if cap is not None and len(node.hub) >= cap:
            return "node full"
        return None

    async def _deny(self, status: int, text: str, retry_after: int) -> None:
        """Refuse the handshake with an HTTP response (ASGI websocket.http.response)."""
        await self.base_send({
            "type": "websocket.http.response.start",
            "status": status,
            "headers": [(b"retry-after", str(retry_after).encode()),
                        (b"content-type", b"text/plain; charset=utf-8")],
        })
        await self.base_send({"type": "websocket.http.response.body", "body": text.encode()})

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # Client frames carry nothing we use; only their size matters.
        size = len(bytes_data) if bytes_data is not None else len((text_data or "").encode())
        limit = get_node().config.max_client_frame
        if size > limit and self.connection is not None:
            logger.warning("node=%s client=%s sent a %d-byte frame (limit %d); closing with %d",
                           get_node().name, self.connection.client_id, size, limit,
                           CLOSE_MESSAGE_TOO_BIG)
            await self.close(code=CLOSE_MESSAGE_TOO_BIG)

    async def disconnect(self, code: int) -> None:
        connection = self.connection
        if connection is None:
            return
        node = get_node()
        node.counters.closed(code)
        if node.hub is not None and node.hub.detach(connection):
            # Detached here means no takeover did it: this connection still owns the session.
            await node.store.close(connection.client_id, connection.token, connection.last_n)
        logger.info("node=%s client=%s event=disconnect code=%s last=%d", node.name,
                    connection.client_id, code, connection.last_n)
        self.connection = None

    async def _send_text(self, text: str) -> None:
        await self.base_send({"type": "websocket.send", "text": text})

    async def _close_with(self, code: int, reason: str) -> None:
        await self.close(code=code, reason=reason)


def _peer(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "unknown peer"
