"""The patches of daphne, autobahn and Twisted, exercised without a running server."""

import pprint

import pytest

from timer import server
from timer.server import close_frames, eager_writes, lazy_pformat, message_limit, send_errors


def test_lazy_pformat__formats_only_when_written():
    """The stand-in formats like pformat, on demand."""
    value = {"b": [1, 2, 3], "a": "x" * 100}
    assert str(lazy_pformat.LazyPformat(value)) == pprint.pformat(value)


def test_install__idempotent_and_keeps_timings_printable():
    """Installing twice changes nothing; autobahn's Timings still print as text."""
    server.install()
    server.install()
    import autobahn.websocket.protocol as autobahn_protocol

    timings = autobahn_protocol.Timings()
    timings.track("open")
    assert str(timings).startswith("{'open': ")
    assert isinstance(autobahn_protocol.pformat([1]), lazy_pformat.LazyPformat)


def test_sendable_close_codes__registered_and_private_ranges_only():
    """1012, 1013, 1009 and 4001 may be sent; 1005/1006/1015 never appear on the wire."""
    assert {1000, 1009, 1012, 1013, 4001} <= close_frames.SENDABLE_CLOSE_CODES
    assert not {1004, 1005, 1006, 1015, 999, 5000} & close_frames.SENDABLE_CLOSE_CODES


def test_install_eager_writes__idempotent():
    """Twisted's TCP write is wrapped once, however often it is installed."""
    from twisted.internet import tcp

    eager_writes.install()
    wrapped = tcp.Connection.write
    eager_writes.install()
    assert tcp.Connection.write is wrapped and wrapped.wstime_patch == eager_writes.NAME


def test_install_send_errors__idempotent_and_an_oserror():
    """daphne's reply path raises for a frame it would drop, as ASGI 2.4 asks: an OSError."""
    from daphne.server import Server

    send_errors.install()
    wrapped = Server.handle_reply
    send_errors.install()
    assert Server.handle_reply is wrapped and wrapped.wstime_patch == send_errors.NAME
    assert issubclass(server.ClientDisconnected, OSError)


def test_handle_reply__close_while_closing_does_nothing():
    """A second close (the first is in flight) sends nothing and raises nothing, whatever code."""
    from daphne.ws_protocol import WebSocketProtocol

    server.install()
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

    message_limit.install_limit(1024)
    factory = WebSocketFactory(None)
    # The call daphne.server.Server.run makes when it starts.
    factory.setProtocolOptions(autoPingTimeout=30, allowNullOrigin=True, openHandshakeTimeout=5,
                               maxMessagePayloadSize=daphne_limit,
                               maxFramePayloadSize=daphne_limit)
    assert (factory.maxMessagePayloadSize, factory.maxFramePayloadSize) == (expected, expected)
    assert factory.failByDrop is False
    assert factory.autoPingTimeout == 30 and factory.openHandshakeTimeout == 5


def test_install__wraps_each_method_once_however_often_it_runs():
    """Two patches share daphne's handle_reply: each wraps it exactly once."""
    from daphne.ws_protocol import WebSocketProtocol

    server.install()
    server.install()
    names = []
    function = WebSocketProtocol.handle_reply
    while hasattr(function, "wstime_patch"):
        names.append(function.wstime_patch)
        function = function.__wrapped__
    assert sorted(names) == ["close codes", "denial response"]
