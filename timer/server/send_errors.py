"""``websocket.send`` on a closed connection raises :class:`ClientDisconnected`, an OSError.

Why: ASGI 2.4 says ``send()`` on a closed connection raises a server-specific ``OSError``
("Disconnected Client - send exception"); daphne 4.2 drops the frame silently, so an
application cannot tell a frame its client never got from one it did. A node counts the frames
each client has seen, to resume it at exactly the next one, and a frame sent while the
client's close frame is in flight must not count.

Retired by: a daphne release implementing ASGI spec 2.4's send exception. No daphne issue
found; the spec side is django/asgiref#578 ("consider rolling back 2.4", kept).

Required: without it a reconnect could repeat a count.
"""

from __future__ import annotations

from typing import Any

from .patching import Need, Patch, assigned_in, attribute, key_in, mark, marked

NAME = "send errors"
VERSIONS = {"daphne": ">=4.2.2,<4.3", "autobahn": ">=26.10,<27"}


class ClientDisconnected(OSError):
    """``websocket.send`` after the peer's close frame or disconnect: the frame was not sent."""


def needs() -> list[Need]:
    from autobahn.websocket.protocol import WebSocketProtocol as Autobahn
    from daphne.server import Server

    return [
        attribute(Server, "handle_reply"),
        assigned_in(Server.run, "connections"),
        key_in(Server.protocol_disconnected, "disconnected"),
        attribute(Autobahn, "STATE_CLOSING"),
        attribute(Autobahn, "STATE_CLOSED"),
    ]


def install() -> None:
    """Make daphne raise :class:`ClientDisconnected` for a frame it would drop (idempotent)."""
    from daphne.server import Server

    original = Server.handle_reply
    if marked(original, NAME):
        return

    def handle_reply(self: Any, protocol: Any, message: dict[str, Any]) -> Any:
        # Returns daphne's own coroutine for the caller to await: no extra coroutine per frame.
        if message.get("type") == "websocket.send":
            details = self.connections.get(protocol)
            if (
                details is None
                or details.get("disconnected")
                or protocol.state in (protocol.STATE_CLOSING, protocol.STATE_CLOSED)
            ):
                raise ClientDisconnected("the client closed the connection")
        return original(self, protocol, message)

    Server.handle_reply = mark(handle_reply, original, NAME)


PATCH = Patch(
    name=NAME,
    check_id="timer.E013",
    required=True,
    versions=VERSIONS,
    needs=needs,
    install=install,
    module=__name__,
)
