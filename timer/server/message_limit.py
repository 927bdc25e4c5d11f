"""A message and frame size limit checked before buffering, answered with a 1009 close.

Why: daphne lets a client send 1 MiB messages by default, in fragments it buffers until the
message ends, and drops the TCP connection without a close frame when one is too big.
:func:`install_limit` caps autobahn's ``maxMessagePayloadSize`` and ``maxFramePayloadSize`` at
``WSTIME_MAX_CLIENT_FRAME`` (checked against each frame's header, so nothing past the limit is
buffered) and turns ``failByDrop`` off, so the client gets a 1009 close frame (RFC 6455
§7.1.7). It wraps ``setProtocolOptions`` of daphne's ``daphne.ws_protocol.WebSocketFactory``,
which ``daphne.server.Server.run`` calls once with its ``--websocket_max_message_size`` /
``--websocket_max_frame_size`` (the smaller of the two limits wins). With ``failByDrop`` off,
every failure autobahn detects (protocol errors, invalid UTF-8, ping timeouts) is answered with
its close frame too, and the TCP connection goes at most ``closeHandshakeTimeout`` (autobahn's
default, 1 s) later.

Retired by: a daphne release that answers an oversized message with a close frame by itself
(no upstream issue found), together with launching every node with the size flags
(``wstime/serve.py``); the limit would then need no code.

Required: without it a client can park 1 MiB per connection in unfinished fragments.
"""

from __future__ import annotations

from typing import Any

from ..config.loader import config
from .patching import Need, Patch, attribute, calls, parameter

NAME = "message size limit"
VERSIONS = {"daphne": ">=4.2.2,<4.3", "autobahn": ">=26.10,<27"}
LIMIT_OPTIONS = ("maxMessagePayloadSize", "maxFramePayloadSize")


def needs() -> list[Need]:
    from autobahn.twisted.websocket import WebSocketServerFactory
    from daphne import ws_protocol
    from daphne.server import Server

    options = WebSocketServerFactory.setProtocolOptions
    return [
        attribute(ws_protocol, "WebSocketFactory"),
        calls(Server.run, "setProtocolOptions"),  # where daphne sets its own limits
        attribute(WebSocketServerFactory, "setProtocolOptions"),
        *(parameter(options, name) for name in (*LIMIT_OPTIONS, "failByDrop")),
    ]


def install_limit(limit: int) -> None:
    """Cap daphne's message and frame sizes at ``limit`` bytes, answered with a 1009 close.

    Applies to every factory whose options are set afterwards (daphne sets them when its server
    starts). Installing again replaces the limit.
    """
    from autobahn.twisted.websocket import WebSocketServerFactory
    from daphne.ws_protocol import WebSocketFactory

    def set_protocol_options(self: Any, **options: Any) -> None:
        for name in LIMIT_OPTIONS:
            given = options.get(name)
            # daphne's 0 means "no limit", which the node's limit replaces.
            options[name] = limit if not given else min(given, limit)
        # Fail a connection with a close frame (the client learns why), not a dropped socket.
        options["failByDrop"] = False
        WebSocketServerFactory.setProtocolOptions(self, **options)

    WebSocketFactory.setProtocolOptions = set_protocol_options


PATCH = Patch(
    name=NAME,
    check_id="timer.E014",
    required=True,
    versions=VERSIONS,
    needs=needs,
    install=lambda: install_limit(config().max_client_frame),
    module=__name__,
)
