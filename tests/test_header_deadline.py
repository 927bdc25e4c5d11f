"""The request header deadline on a real Twisted HTTPChannel, with Twisted's own fake clock."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web.http import HTTPChannel, Request

from timer.header_deadline import HeaderDeadline

DEADLINE = 2.0


class Answering(Request):
    """A request that answers at once (keeps the connection alive)."""

    def process(self) -> None:
        self.write(b"ok")
        self.finish()


def channel_with_deadline() -> tuple[HTTPChannel, StringTransport, Clock]:
    clock = Clock()
    channel = HTTPChannel()
    channel.requestFactory = Answering
    channel.callLater = clock.callLater
    channel.timeOut = None  # only the deadline under test
    transport = StringTransport()
    HeaderDeadline(channel, channel, DEADLINE, clock.callLater).arm()
    channel.makeConnection(transport)
    return channel, transport, clock


def test_header_deadline__dribbling_client_is_aborted_at_the_deadline():
    """Bytes that keep coming do not move the deadline."""
    channel, transport, clock = channel_with_deadline()
    channel.dataReceived(b"GET / HTTP/1.1\r\n")
    for byte in b"X-Slow: a":
        clock.advance(0.2)
        channel.dataReceived(bytes([byte]))
    assert not transport.disconnecting
    clock.advance(DEADLINE)
    assert transport.disconnected


def test_header_deadline__complete_headers_cancel_it_and_the_next_request_rearms_it():
    """Headers in time: served, and the next request on the connection has its own deadline."""
    channel, transport, clock = channel_with_deadline()
    clock.advance(DEADLINE - 0.5)
    channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"200 OK" in transport.value()
    clock.advance(DEADLINE - 0.5)
    assert not transport.disconnecting  # the deadline started again after the response
    clock.advance(1.0)
    assert transport.disconnected
