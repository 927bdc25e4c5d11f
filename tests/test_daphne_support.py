"""The daphne/autobahn adjustments that do not need a running server."""

import pprint

import pytest

from timer import daphne_support


def test_lazy_pformat__formats_only_when_written():
    """The stand-in formats like pformat, on demand."""
    value = {"b": [1, 2, 3], "a": "x" * 100}
    assert str(daphne_support.LazyPformat(value)) == pprint.pformat(value)


def test_install__idempotent_and_keeps_timings_printable():
    """Installing twice changes nothing; autobahn's Timings still print as text."""
    daphne_support.install()
    daphne_support.install()
    import autobahn.websocket.protocol as autobahn_protocol

    timings = autobahn_protocol.Timings()
    timings.track("open")
    assert str(timings).startswith("{'open': ")
    assert isinstance(autobahn_protocol.pformat([1]), daphne_support.LazyPformat)


def test_sendable_close_codes__registered_and_private_ranges_only():
    """1012, 1013, 1009 and 4001 may be sent; 1005/1006/1015 never appear on the wire."""
    assert {1000, 1009, 1012, 1013, 4001} <= daphne_support.SENDABLE_CLOSE_CODES
    assert not {1004, 1005, 1006, 1015, 999, 5000} & daphne_support.SENDABLE_CLOSE_CODES


def test_install_eager_writes__idempotent():
    """Twisted's TCP write is wrapped once, however often it is installed."""
    from twisted.internet import tcp

    daphne_support.install_eager_writes()
    wrapped = tcp.Connection.write
    daphne_support.install_eager_writes()
    assert tcp.Connection.write is wrapped and wrapped.eager


def test_install_send_errors__idempotent_and_an_oserror():
    """daphne's reply path raises for a frame it would drop, as ASGI 2.4 asks: an OSError."""
    from daphne.server import Server

    daphne_support.install_send_errors()
    wrapped = Server.handle_reply
    daphne_support.install_send_errors()
    assert Server.handle_reply is wrapped and wrapped.raises_on_closed
    assert issubclass(daphne_support.ClientDisconnected, OSError)


def test_handle_reply__close_while_closing_does_nothing():
    """A second close (the first is in flight) sends nothing and raises nothing, whatever code."""
    from daphne.ws_protocol import WebSocketProtocol

    daphne_support.install()
    protocol = WebSocketProtocol()
    sent = []
    protocol.sendCloseFrame = lambda **frame: sent.append(frame)
    for state in (protocol.STATE_CLOSING, protocol.STATE_CLOSED):
        protocol.state = state
        for code in (1009, 1000, 4001, None):
            assert protocol.handle_reply({"type": "websocket.close", "code": code}) is None
    assert sent == []


@pytest.mark.parametrize("daphne_limit, expected", [
    (1024 * 1024, 1024),  # daphne's default: the node's limit wins
    (512, 512),  # a smaller --websocket_max_message_size is kept
    (0, 1024),  # 0 (no limit) is not honoured
])
def test_install_message_limit__caps_daphne_factory_and_closes_instead_of_dropping(
        daphne_limit, expected):
    """daphne's own option call ends with the smaller limit, and failing sends a close frame."""
    from daphne.ws_protocol import WebSocketFactory

    daphne_support.install_message_limit(1024)
    factory = WebSocketFactory(None)
    # The call daphne.server.Server.run makes when it starts.
    factory.setProtocolOptions(autoPingTimeout=30, allowNullOrigin=True, openHandshakeTimeout=5,
                               maxMessagePayloadSize=daphne_limit,
                               maxFramePayloadSize=daphne_limit)
    assert (factory.maxMessagePayloadSize, factory.maxFramePayloadSize) == (expected, expected)
    assert factory.failByDrop is False
    assert factory.autoPingTimeout == 30 and factory.openHandshakeTimeout == 5
