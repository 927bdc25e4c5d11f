"""A deadline for a client's request headers, enforced by the node itself.

HAProxy's ``timeout http-request`` protects only the traffic that goes through it. At the node,
Twisted's ``HTTPChannel`` has only an idle timeout (``timeOut``, 60 s by default, set by
``twisted.web.http.HTTPFactory``), which every received byte restarts: a client that sends one
header byte every 50 s holds a socket for days, and a few thousand of them hold every
descriptor. daphne offers nothing for this (its ``--http-timeout`` counts from the end of the
headers, and autobahn's opening-handshake timeout starts after the upgrade).

:func:`install` gives every HTTP connection daphne accepts a total deadline,
``WSTIME_HEADER_TIMEOUT`` seconds, for its request headers: from the connection's start, and
again from the end of each response on a kept-alive connection. Once the headers are complete
the deadline no longer applies, so a slow response, or a WebSocket after its upgrade, is never
cut. A connection past its deadline is aborted (no response, like an idle timeout).

Cost: a handshake pays an attribute and a dictionary entry, not a timer; one sweep every
``min(1 s, deadline / 4)`` looks at the connections still in HTTP, so a connection is cut
between the deadline and one sweep interval after it.

It relies on these names, checked before install (:func:`needs`) against the release range it
was written for (:data:`VERSIONS`): ``daphne.http_protocol.HTTPFactory.buildProtocol``
(wrapped), the factory's ``reactor``, the ``_channel`` that Twisted's
``_GenericHTTPChannelProtocol`` wraps (private), and ``HTTPChannel.allHeadersReceived``,
``requestDone`` and ``connectionLost`` (wrapped on the class: daphne is the only Twisted HTTP
server in a node's process).

Retired by: a header timeout in daphne or in Twisted's ``HTTPChannel`` (a total deadline, not
an idle timeout); no upstream issue found.

Required: security (a slow-header client would otherwise hold a socket indefinitely).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from ..config.loader import config
from .patching import Need, Patch, assigned_in, attribute, mark, marked

logger = logging.getLogger(__name__)

_SINCE = "_wstime_headers_since"  # on a channel: when its current header phase began, or None
_CLOSED = object()  # _SINCE of a channel whose connection is gone
_CHANNEL_METHODS = ("allHeadersReceived", "requestDone", "connectionLost")


class Clock(Protocol):
    """What the deadlines need from Twisted's reactor (or ``twisted.internet.task.Clock``)."""

    def seconds(self) -> float: ...

    def callLater(self, delay: float, f: Any, *args: Any) -> Any: ...


class HeaderDeadlines:
    """The HTTP connections of a process that may still be sending request headers."""

    def __init__(self, seconds: float, clock: Clock) -> None:
        self.seconds = seconds
        self.every = min(1.0, seconds / 4)
        self.clock = clock
        self._tracked: dict[Any, Any] = {}  # protocol the transport delivers to -> its channel
        self._sweeping = False

    def track(self, protocol: Any) -> None:
        """Start the deadline of a new connection (``protocol`` wraps an ``HTTPChannel``)."""
        channel = getattr(protocol, "_channel", protocol)
        setattr(channel, _SINCE, self.clock.seconds())
        self._tracked[protocol] = channel
        if not self._sweeping:
            self._sweeping = True
            self.clock.callLater(self.every, self.sweep)

    def sweep(self) -> None:
        """Abort the connections past their deadline; forget those closed or upgraded."""
        now = self.clock.seconds()
        for protocol, channel in list(self._tracked.items()):
            transport = channel.transport
            since = getattr(channel, _SINCE, None)
            # The protocol the transport delivers to (TLS wraps it; an upgrade replaces it).
            receiver = getattr(
                transport, "wrappedProtocol", getattr(transport, "protocol", protocol)
            )
            if since is _CLOSED or transport is None or receiver is not protocol:
                del self._tracked[protocol]  # closed, or handed over to a WebSocket protocol
                continue
            if since is not None and now - since >= self.seconds:
                logger.info(
                    "closing a connection from %s: request headers not complete after %ss",
                    _peer(transport),
                    self.seconds,
                )
                del self._tracked[protocol]
                transport.abortConnection()
        if self._tracked:
            self.clock.callLater(self.every, self.sweep)
        else:
            self._sweeping = False


def _peer(transport: Any) -> str:
    try:
        peer = transport.getPeer()
        return f"{peer.host}:{peer.port}"
    except (AttributeError, OSError):
        return "unknown peer"


NAME = "header deadline"
VERSIONS = {"daphne": ">=4.2.2,<4.3", "twisted": ">=26.10,<27"}


def needs() -> list[Need]:
    from daphne.http_protocol import HTTPFactory
    from twisted.web import http

    wrapper = http._GenericHTTPChannelProtocol(None)  # stores its channel; touches nothing
    return [
        attribute(HTTPFactory, "buildProtocol"),
        assigned_in(http.HTTPFactory.__init__, "reactor"),
        Need(
            "twisted.web.http._GenericHTTPChannelProtocol wraps its channel as _channel",
            hasattr(wrapper, "_channel"),
        ),
        *(attribute(http.HTTPChannel, name) for name in _CHANNEL_METHODS),
    ]


def install_channel_hooks(clock: Clock) -> None:
    """Make ``HTTPChannel`` record when each header phase starts and ends (idempotent)."""
    from twisted.web.http import HTTPChannel

    if marked(HTTPChannel.allHeadersReceived, NAME):
        HTTPChannel.requestDone.clock = clock  # type: ignore[attr-defined]
        return
    headers_done, response_done = HTTPChannel.allHeadersReceived, HTTPChannel.requestDone
    connection_lost = HTTPChannel.connectionLost

    def allHeadersReceived(self):
        setattr(self, _SINCE, None)
        return headers_done(self)

    def requestDone(self, request):
        # Set first: a pipelined request parsed inside requestDone clears it again.
        setattr(self, _SINCE, requestDone.clock.seconds())
        return response_done(self, request)

    def connectionLost(self, reason):
        setattr(self, _SINCE, _CLOSED)
        return connection_lost(self, reason)

    requestDone.clock = clock  # type: ignore[attr-defined]
    HTTPChannel.allHeadersReceived = mark(allHeadersReceived, headers_done, NAME)  # type: ignore[method-assign]
    HTTPChannel.requestDone = mark(requestDone, response_done, NAME)  # type: ignore[method-assign]
    HTTPChannel.connectionLost = mark(connectionLost, connection_lost, NAME)  # type: ignore[method-assign]


def install(seconds: float) -> None:
    """Give every HTTP connection daphne accepts a ``seconds`` deadline for its headers.

    Idempotent; calling it again with another value applies to new connections. The reactor is
    the factory's, taken at the first connection (importing Twisted's reactor here would
    install one before daphne chooses its own).
    """
    from daphne.http_protocol import HTTPFactory

    build = getattr(HTTPFactory.buildProtocol, "original", HTTPFactory.buildProtocol)
    deadlines: HeaderDeadlines | None = None

    def buildProtocol(self, addr):
        nonlocal deadlines
        protocol = build(self, addr)
        if deadlines is None:
            install_channel_hooks(self.reactor)
            deadlines = HeaderDeadlines(seconds, self.reactor)
        deadlines.track(protocol)
        return protocol

    buildProtocol.original = build  # type: ignore[attr-defined]
    HTTPFactory.buildProtocol = mark(buildProtocol, build, NAME)


PATCH = Patch(
    name=NAME,
    check_id="timer.E015",
    required=True,
    versions=VERSIONS,
    needs=needs,
    install=lambda: install(config().header_timeout),
    module=__name__,
)
