"""The request header deadline on a real Twisted HTTPChannel, with Twisted's own fake clock."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web.http import HTTPChannel, Request

from timer.server.header_deadline import HeaderDeadlines, install_channel_hooks

DEADLINE = 2.0
SWEEP = DEADLINE / 4


class Answering(Request):
    """A request that answers at once (keeps the connection alive)."""

    def process(self) -> None:
        self.write(b"ok")
        self.finish()


@pytest.fixture
def clock() -> Clock:
    clock = Clock()
    install_channel_hooks(clock)
    return clock


def connect(clock: Clock) -> tuple[HTTPChannel, StringTransport, HeaderDeadlines]:
    channel = HTTPChannel()
    channel.requestFactory = Answering
    channel.callLater = clock.callLater
    channel.timeOut = None  # only the deadline under test
    transport = StringTransport()
    deadlines = HeaderDeadlines(DEADLINE, clock)
    deadlines.track(channel)
    channel.makeConnection(transport)
    return channel, transport, deadlines


def test_header_deadline__dribbling_client_is_aborted_at_the_deadline(clock):
    """Bytes that keep coming do not move the deadline; the cut comes within one sweep."""
    channel, transport, _ = connect(clock)
    channel.dataReceived(b"GET / HTTP/1.1\r\n")
    for byte in b"X-S":  # one byte per sweep interval, up to just before the deadline
        clock.advance(SWEEP)
        channel.dataReceived(bytes([byte]))
    assert not transport.disconnecting
    clock.advance(SWEEP)
    assert transport.disconnected


def test_header_deadline__complete_headers_end_it_and_the_next_request_starts_another(clock):
    """Headers in time: served; a kept-alive connection's deadline runs from the response."""
    channel, transport, deadlines = connect(clock)
    clock.advance(DEADLINE - SWEEP)
    channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"200 OK" in transport.value()
    clock.advance(DEADLINE - SWEEP)
    assert not transport.disconnecting  # the deadline started again after the response
    clock.advance(2 * SWEEP)
    assert transport.disconnected


def test_header_deadline__forgets_closed_connections_and_stops_sweeping(clock):
    """A closed connection leaves the sweep, and with nothing to watch no sweep is scheduled."""
    channel, transport, deadlines = connect(clock)
    channel.connectionLost(None)
    clock.advance(SWEEP)
    assert clock.getDelayedCalls() == []
