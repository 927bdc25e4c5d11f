"""Close codes and reasons in ``websocket.close``, and one close frame per connection.

Why: daphne 4.2 passes ``websocket.close`` to autobahn's ``sendClose``, which accepts only 1000
and 3000-4999 (the codes an *application* may pick, as in a browser) and drops the reason the
ASGI spec allows. A server may also send RFC 6455's registered codes, and a node needs 1009
(message too big), 1012 (restarting) and 1013 (try again later), with its reconnect hint in the
reason. A close while the connection is already closing or closed does nothing: daphne would
hand it to ``sendClose``, which raises for 1009 and kills the application instance (its
``disconnect`` would never run, and the connection's slot would leak).

Retired by: a daphne release that sends the close reason and any sendable code itself
(django/daphne#374 "Websocket Close reason", open) — the code filter is autobahn's
(crossbario/autobahn-python#1642 "Allign websocket close codes with RFC", open).

Required: without it 1012/1013/1009 closes raise inside daphne and reasons are lost.
"""

from __future__ import annotations

import logging
from typing import Any

from .patching import Need, Patch, assigned_in, attribute, mark, marked

logger = logging.getLogger(__name__)

NAME = "close codes"
VERSIONS = {"daphne": ">=4.2.2,<4.3", "autobahn": ">=26.10,<27"}
MAX_REASON_BYTES = 123  # RFC 6455: a close frame's payload is at most 125 bytes, 2 for the code
# Codes a server may send: RFC 6455 / IANA registered ones (not 1004-1006 and 1015, which must
# never be sent), and the 3000-4999 ranges.
SENDABLE_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015)}) | frozenset(
    range(3000, 5000)
)


def needs() -> list[Need]:
    from autobahn.websocket.protocol import WebSocketProtocol as Autobahn
    from daphne.ws_protocol import WebSocketProtocol

    return [
        attribute(WebSocketProtocol, "handle_reply"),
        attribute(WebSocketProtocol, "sendCloseFrame"),
        attribute(Autobahn, "STATE_OPEN"),
        attribute(Autobahn, "STATE_CLOSING"),
        attribute(Autobahn, "STATE_CLOSED"),
        assigned_in(Autobahn._connectionMade, "state"),
    ]


def install() -> None:
    """Send any sendable code and the reason; ignore a close while closing (idempotent)."""
    from daphne.ws_protocol import WebSocketProtocol

    original = WebSocketProtocol.handle_reply
    if marked(original, NAME):
        return

    def handle_reply(self: Any, message: dict[str, Any]) -> Any:
        if message.get("type") != "websocket.close":
            return original(self, message)
        if self.state in (self.STATE_CLOSING, self.STATE_CLOSED):
            return None  # already closing: one close frame per connection
        if self.state != self.STATE_OPEN:
            return original(self, message)  # before the handshake: daphne's 403 refusal
        code = message.get("code") or 1000
        if code not in SENDABLE_CLOSE_CODES:
            logger.error("refusing to send close code %s; sending 1011 instead", code)
            code = 1011
        reason = (message.get("reason") or "").encode("utf-8")[:MAX_REASON_BYTES]
        # sendCloseFrame is autobahn's own path under sendClose, minus its code filter.
        self.sendCloseFrame(code=code, reasonUtf8=reason.decode("utf-8", "ignore").encode())
        return None

    WebSocketProtocol.handle_reply = mark(handle_reply, original, NAME)


PATCH = Patch(
    name=NAME,
    check_id="timer.E011",
    required=True,
    versions=VERSIONS,
    needs=needs,
    install=install,
    module=__name__,
)
