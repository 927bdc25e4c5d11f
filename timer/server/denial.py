"""The HTTP denial response: refuse a WebSocket handshake with any status and headers.

Why: ASGI's ``websocket.http.response`` extension (``websocket.http.response.start`` /
``.body``) lets an application answer a handshake with an HTTP response of its choosing;
daphne 4.2 does not implement it and can only refuse with 403. A full or draining node must
answer 503 with ``Retry-After``, which HAProxy and the page act on. Without this patch such a
message would be ignored by daphne and the client would wait for its handshake timeout.

Retired by: a daphne release implementing the WebSocket Denial Response extension
(django/daphne#486 "Implement WebSocket Denial Response extension", closed without it;
django/daphne#331 "Allow to accept websocket extensions", open).

Required: a refusal that hangs instead of answering 503 breaks failover and shedding.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from .patching import Need, Patch, assigned_in, attribute, mark, marked, parameter

NAME = "denial response"
VERSIONS = {"daphne": ">=4.2.2,<4.3", "autobahn": ">=26.10,<27"}


def needs() -> list[Need]:
    import autobahn.twisted.websocket as autobahn_twisted
    from daphne.server import Server
    from daphne.ws_protocol import WebSocketProtocol

    return [
        attribute(WebSocketProtocol, "handle_reply"),
        attribute(WebSocketProtocol, "onConnect"),
        assigned_in(WebSocketProtocol.onConnect, "handshake_deferred"),
        assigned_in(WebSocketProtocol.onConnect, "server"),
        attribute(autobahn_twisted, "ConnectionDeny"),
        parameter(autobahn_twisted.ConnectionDeny, "code"),
        parameter(autobahn_twisted.ConnectionDeny, "reason"),
        attribute(autobahn_twisted.WebSocketServerProtocol, "failHandshake"),
        parameter(autobahn_twisted.WebSocketServerProtocol.failHandshake, "responseHeaders"),
        attribute(Server, "protocol_disconnected"),
    ]


def install() -> None:
    """Turn ``websocket.http.response.*`` into autobahn's handshake refusal (idempotent)."""
    from autobahn.twisted.websocket import ConnectionDeny, WebSocketServerProtocol
    from daphne.ws_protocol import WebSocketProtocol

    original = WebSocketProtocol.handle_reply
    if marked(original, NAME):
        return

    def handle_reply(self: Any, message: dict[str, Any]) -> Any:
        kind = message.get("type")
        if kind == "websocket.http.response.start" and hasattr(self, "handshake_deferred"):
            self._denial = (
                int(message["status"]),
                [
                    (name.decode("latin1"), value.decode("latin1"))
                    for name, value in message.get("headers", [])
                ],
            )
            return None
        if kind == "websocket.http.response.body" and getattr(self, "_denial", None):
            status, self._denial_headers = self._denial
            self._denial = None
            deferred = self.handshake_deferred
            del self.handshake_deferred
            deferred.errback(ConnectionDeny(code=status, reason=HTTPStatus(status).phrase))
            self.server.protocol_disconnected(self)
            return None
        return original(self, message)

    def fail_handshake(self: Any, reason: str, code: int = 400, responseHeaders: Any = None) -> Any:
        headers = responseHeaders or getattr(self, "_denial_headers", None)
        return WebSocketServerProtocol.failHandshake(self, reason, code, headers)

    WebSocketProtocol.handle_reply = mark(handle_reply, original, NAME)
    WebSocketProtocol.failHandshake = mark(
        fail_handshake, WebSocketServerProtocol.failHandshake, NAME
    )


PATCH = Patch(
    name=NAME,
    check_id="timer.E012",
    required=True,
    versions=VERSIONS,
    needs=needs,
    install=install,
    module=__name__,
)
