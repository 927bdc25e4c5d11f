"""ASGI WebSocket features that daphne 4.2 leaves out, and limits it leaves open, added to its
classes.

- Close codes and reasons: daphne passes ``websocket.close`` to autobahn's ``sendClose``, which
  accepts only 1000 and 3000-4999 (the codes an *application* may pick) and drops the reason the
  ASGI spec allows. A server may also send RFC 6455's registered codes, and a node needs 1009
  (message too big), 1012 (restarting) and 1013 (try again later), with its reconnect hint in
  the reason. A close while the connection is already closing or closed does nothing: daphne
  would hand it to ``sendClose``, which raises for 1009 and kills the application instance.
- Message size: daphne lets a client send 1 MiB messages by default, in fragments it buffers
  until the message ends, and drops the TCP connection without a close frame when one is too
  big. :func:`install_message_limit` caps autobahn's ``maxMessagePayloadSize`` and
  ``maxFramePayloadSize`` at ``WSTIME_MAX_CLIENT_FRAME`` (checked against each frame's header,
  so nothing past the limit is buffered) and turns ``failByDrop`` off, so the client gets a
  1009 close frame (RFC 6455 §7.1.7). It wraps ``setProtocolOptions`` of daphne's public
  ``daphne.ws_protocol.WebSocketFactory``, which ``daphne.server.Server.run`` calls once with
  its ``--websocket_max_message_size`` / ``--websocket_max_frame_size`` (the smaller of the two
  limits wins); the three option names are autobahn's documented options, checked at install.
  With ``failByDrop`` off, every failure autobahn detects (protocol errors, invalid UTF-8, ping
  timeouts) is answered with its close frame too, and the TCP connection goes at most
  ``closeHandshakeTimeout`` (autobahn's default, 1 s) later.
- The HTTP denial response (``websocket.http.response.start`` / ``.body``, ASGI's
  ``websocket.http.response`` extension): daphne can only refuse a handshake with 403, but a
  full node must answer 503 with ``Retry-After``.

- ``send()`` on a closed connection: ASGI 2.4 says it raises a server-specific ``OSError``;
  daphne drops the frame silently, so an application cannot tell a frame its client never got
  from one it did. A node counts the frames each client has seen, to resume it at exactly the
  next one, and a frame sent while the client's close frame is in flight must not count.

And one cost it pays on every connection: autobahn formats its configuration with ``pformat``
for a debug log line even when debug logging is off, which a profile showed at 16-21 % of the
node's CPU during a burst of handshakes. :func:`install` makes that formatting lazy.

And one cost Twisted pays on every write: a transport buffers each write and registers the
socket with the event loop for writability (``add_writer``, then ``remove_writer`` once sent),
even when the socket could take the bytes at once. With a frame per connection per second,
that registration dance was about a quarter of a busy node's CPU in a profile. Eager writes send
straight away when nothing is buffered, and fall back to Twisted's path for whatever is left.

All are applied once, by :func:`install`, from ``wstime/asgi.py``. Everything else goes through
daphne's own code; when daphne gains these features this module can go.
"""

from __future__ import annotations

import logging
import pprint
from http import HTTPStatus

from .conf import config

logger = logging.getLogger(__name__)

MAX_REASON_BYTES = 123  # RFC 6455: a close frame's payload is at most 125 bytes, 2 for the code
# Codes a server may send: RFC 6455 / IANA registered ones (not 1004-1006 and 1015, which must
# never be sent), and the 3000-4999 ranges.
SENDABLE_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015)}) | frozenset(
    range(3000, 5000))

_installed = False


class ClientDisconnected(OSError):
    """``websocket.send`` after the peer's close frame or disconnect: the frame was not sent."""


class LazyPformat:
    """Stands in for ``pformat(obj)`` in a log call: formats only if the line is written."""

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj

    def __str__(self) -> str:
        return pprint.pformat(self.obj)

    __repr__ = __str__


def install_eager_writes() -> None:
    """Make Twisted TCP transports send at once when their buffer is empty (idempotent)."""
    from twisted.internet import tcp

    if getattr(tcp.Connection.write, "eager", False):
        return
    buffered_write = tcp.Connection.write

    def write(self, data):
        if (data and type(data) is bytes and self.connected and not self._writeDisconnected
                and not self.disconnecting and not self._tempDataBuffer
                and self.offset >= len(self.dataBuffer)):
            try:
                sent = self.socket.send(data)
            except OSError:
                sent = 0  # EAGAIN, or a broken socket that Twisted's own write path reports
            if sent == len(data):
                return
            data = data[sent:]
        buffered_write(self, data)

    write.eager = True
    tcp.Connection.write = write


def install_send_errors() -> None:
    """Make daphne raise :class:`ClientDisconnected` for a frame it would drop (idempotent)."""
    from daphne.server import Server

    if getattr(Server.handle_reply, "raises_on_closed", False):
        return
    original_handle_reply = Server.handle_reply

    def handle_reply(self, protocol, message):
        # Returns daphne's own coroutine for the caller to await: no extra coroutine per frame.
        if message.get("type") == "websocket.send":
            details = self.connections.get(protocol)
            if (details is None or details.get("disconnected")
                    or protocol.state in (protocol.STATE_CLOSING, protocol.STATE_CLOSED)):
                raise ClientDisconnected("the client closed the connection")
        return original_handle_reply(self, protocol, message)

    handle_reply.raises_on_closed = True
    Server.handle_reply = handle_reply


LIMIT_OPTIONS = ("maxMessagePayloadSize", "maxFramePayloadSize")


def install_message_limit(limit: int) -> None:
    """Cap daphne's message and frame sizes at ``limit`` bytes, answered with a 1009 close.

    Applies to every factory whose options are set afterwards (daphne sets them when its server
    starts). Installing again replaces the limit.
    """
    import inspect

    from autobahn.twisted.websocket import WebSocketServerFactory
    from daphne.ws_protocol import WebSocketFactory

    accepted = inspect.signature(WebSocketServerFactory.setProtocolOptions).parameters
    missing = [name for name in (*LIMIT_OPTIONS, "failByDrop") if name not in accepted]
    if missing:
        raise RuntimeError(f"autobahn's setProtocolOptions lacks {missing}: this autobahn "
                           "version cannot enforce WSTIME_MAX_CLIENT_FRAME")

    def set_protocol_options(self, **options):
        for name in LIMIT_OPTIONS:
            given = options.get(name)
            # daphne's 0 means "no limit", which the node's limit replaces.
            options[name] = limit if not given else min(given, limit)
        # Fail a connection with a close frame (the client learns why), not a dropped socket.
        options["failByDrop"] = False
        WebSocketServerFactory.setProtocolOptions(self, **options)

    WebSocketFactory.setProtocolOptions = set_protocol_options


def install() -> None:
    """Teach daphne close codes, reasons, denials, send errors and the message limit; lazy
    debug formatting; eager writes."""
    global _installed
    if _installed:
        return
    import autobahn.websocket.protocol as autobahn_protocol
    from autobahn.twisted.websocket import ConnectionDeny, WebSocketServerProtocol
    from daphne.ws_protocol import WebSocketProtocol

    # autobahn passes pformat's result to its debug log calls, and returns it from
    # Timings.__str__, which must stay a real string.
    autobahn_protocol.pformat = LazyPformat
    autobahn_protocol.Timings.__str__ = lambda timings: pprint.pformat(timings._timings)

    original_handle_reply = WebSocketProtocol.handle_reply

    def handle_reply(self, message):
        kind = message.get("type")
        if kind == "websocket.close" and self.state in (self.STATE_CLOSING, self.STATE_CLOSED):
            return None  # already closing: one close frame per connection
        if kind == "websocket.close" and self.state == self.STATE_OPEN:
            code = message.get("code") or 1000
            if code not in SENDABLE_CLOSE_CODES:
                logger.error("refusing to send close code %s; sending 1011 instead", code)
                code = 1011
            reason = (message.get("reason") or "").encode("utf-8")[:MAX_REASON_BYTES]
            # sendCloseFrame is autobahn's own path under sendClose, minus its code filter.
            self.sendCloseFrame(code=code, reasonUtf8=reason.decode("utf-8", "ignore").encode())
            return None
        if kind == "websocket.http.response.start" and hasattr(self, "handshake_deferred"):
            self._denial = (int(message["status"]), [
                (name.decode("latin1"), value.decode("latin1"))
                for name, value in message.get("headers", [])
            ])
            return None
        if kind == "websocket.http.response.body" and getattr(self, "_denial", None):
            status, self._denial_headers = self._denial
            self._denial = None
            deferred = self.handshake_deferred
            del self.handshake_deferred
            deferred.errback(ConnectionDeny(code=status, reason=HTTPStatus(status).phrase))
            self.server.protocol_disconnected(self)
            return None
        return original_handle_reply(self, message)

    def fail_handshake(self, reason, code=400, responseHeaders=None):  # noqa: N803 - autobahn's
        headers = responseHeaders or getattr(self, "_denial_headers", None)
        return WebSocketServerProtocol.failHandshake(self, reason, code, headers)

    WebSocketProtocol.handle_reply = handle_reply
    WebSocketProtocol.failHandshake = fail_handshake
    install_message_limit(config().max_client_frame)
    install_send_errors()
    install_eager_writes()
    _installed = True
