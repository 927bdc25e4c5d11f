"""A deadline for a client's request headers, enforced by the node itself.

HAProxy's ``timeout http-request`` protects only the traffic that goes through it. At the node,
Twisted's ``HTTPChannel`` has only an idle timeout (``timeOut``, 60 s by default, set by
``twisted.web.http.HTTPFactory``), which every received byte restarts: a client that sends one
header byte every 50 s holds a socket for days, and a few thousand of them hold every
descriptor. daphne offers nothing for this (its ``--http-timeout`` counts from the end of the
headers, and autobahn's opening-handshake timeout starts after the upgrade).

:func:`install` gives every HTTP connection daphne accepts a total deadline,
``WSTIME_HEADER_TIMEOUT`` seconds, for its request headers: from the connection's start, and
again from the end of each response on a kept-alive connection. When the headers are complete
(``HTTPChannel.allHeadersReceived``) the deadline is cancelled, so a slow response, or a
WebSocket after its upgrade, is never cut. A connection past its deadline is aborted (no
response, like an idle timeout).

It relies on these names, checked at install against the versions this project pins (daphne
4.2, Twisted 26.10): ``daphne.http_protocol.HTTPFactory.buildProtocol`` (patched), the
``_channel`` that Twisted's ``_GenericHTTPChannelProtocol`` wraps (private), and
``HTTPChannel.allHeadersReceived``, ``requestDone`` and ``connectionLost``, wrapped on each
channel instance, not on the class.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

_CHANNEL_METHODS = ("allHeadersReceived", "requestDone", "connectionLost")


class HeaderDeadline:
    """Aborts ``channel``'s connection if its request headers take more than ``seconds``."""

    __slots__ = ("channel", "wrapper", "seconds", "call_later", "_timer")

    def __init__(self, channel: Any, wrapper: Any, seconds: float,
                 call_later: Callable[..., Any]) -> None:
        self.channel = channel
        self.wrapper = wrapper  # the protocol the transport delivers to, while it is HTTP
        self.seconds = seconds
        self.call_later = call_later
        self._timer: Any = None
        headers_done = channel.allHeadersReceived
        response_done = channel.requestDone
        connection_lost = channel.connectionLost

        def all_headers_received() -> None:
            self.cancel()
            headers_done()

        def request_done(request: Any) -> None:
            # Armed first: a pipelined request parsed inside requestDone cancels it again.
            self.arm()
            response_done(request)

        def lost(reason: Any) -> None:
            self.cancel()
            connection_lost(reason)

        channel.allHeadersReceived = all_headers_received
        channel.requestDone = request_done
        channel.connectionLost = lost

    def arm(self) -> None:
        """Start (or restart) the deadline for the next request's headers."""
        self.cancel()
        self._timer = self.call_later(self.seconds, self._expire)

    def cancel(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _expire(self) -> None:
        self._timer = None
        transport = self.channel.transport
        if transport is None or getattr(transport, "protocol", self.wrapper) is not self.wrapper:
            return  # closed, or handed over to a WebSocket protocol
        logger.info("closing a connection from %s: request headers not complete after %ss",
                    _peer(transport), self.seconds)
        transport.abortConnection()


def _peer(transport: Any) -> str:
    try:
        peer = transport.getPeer()
        return f"{peer.host}:{peer.port}"
    except (AttributeError, OSError):
        return "unknown peer"


def install(seconds: float) -> None:
    """Give every HTTP connection daphne accepts a ``seconds`` deadline for its headers.

    Idempotent; calling it again with another value changes the deadline of new connections.
    """
    from daphne.http_protocol import HTTPFactory
    from twisted.web.http import HTTPChannel

    missing = [name for name in _CHANNEL_METHODS if not hasattr(HTTPChannel, name)]
    if missing:
        raise RuntimeError(f"twisted.web.http.HTTPChannel lacks {', '.join(missing)}; the "
                           "request header deadline needs them (see timer/header_deadline.py)")
    build = getattr(HTTPFactory.buildProtocol, "original", HTTPFactory.buildProtocol)

    def buildProtocol(self, addr):  # noqa: N802 - Twisted's name
        protocol = build(self, addr)
        channel = getattr(protocol, "_channel", protocol)
        HeaderDeadline(channel, protocol, seconds, self.reactor.callLater).arm()
        return protocol

    buildProtocol.original = build
    HTTPFactory.buildProtocol = buildProtocol
