"""Close codes and reasons, and one close frame per connection."""

from timer import server
from timer.server import close_frames


def test_sendable_close_codes__registered_and_private_ranges_only():
    """1012, 1013, 1009 and 4001 may be sent; 1005/1006/1015 never appear on the wire."""
    assert {1000, 1009, 1012, 1013, 4001} <= close_frames.SENDABLE_CLOSE_CODES
    assert not {1004, 1005, 1006, 1015, 999, 5000} & close_frames.SENDABLE_CLOSE_CODES


def protocol_recording_closes(state_name: str) -> tuple[object, list[dict]]:
    from daphne.ws_protocol import WebSocketProtocol

    server.install()
    protocol = WebSocketProtocol()
    sent: list[dict] = []
    protocol.sendCloseFrame = lambda **frame: sent.append(frame)
    protocol.state = getattr(protocol, state_name)
    return protocol, sent


def test_handle_reply__close_while_closing_does_nothing():
    """A second close (the first is in flight) sends nothing and raises nothing, whatever code."""
    for state in ("STATE_CLOSING", "STATE_CLOSED"):
        protocol, sent = protocol_recording_closes(state)
        for code in (1009, 1000, 4001, None):
            assert protocol.handle_reply({"type": "websocket.close", "code": code}) is None
        assert sent == []


def test_handle_reply__open_connection_sends_any_sendable_code_and_its_reason():
    """1013 with a reason goes out as it is; the reason is cut to fit a close frame."""
    protocol, sent = protocol_recording_closes("STATE_OPEN")
    protocol.handle_reply({"type": "websocket.close", "code": 1013, "reason": "r" * 200})
    assert sent == [{"code": 1013, "reasonUtf8": b"r" * close_frames.MAX_REASON_BYTES}]


def test_handle_reply__unsendable_code_becomes_1011():
    """A code no endpoint may send (1006) is replaced by 1011, not passed to the wire."""
    protocol, sent = protocol_recording_closes("STATE_OPEN")
    protocol.handle_reply({"type": "websocket.close", "code": 1006})
    assert sent == [{"code": 1011, "reasonUtf8": b""}]
