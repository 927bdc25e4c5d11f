"""The message and frame size limit, set on daphne's own factory."""

import pytest

from timer.server import message_limit


@pytest.mark.parametrize(
    "daphne_limit, expected",
    [
        (1024 * 1024, 1024),  # daphne's default: the node's limit wins
        (512, 512),  # a smaller --websocket_max_message_size is kept
        (0, 1024),  # 0 (no limit) is not honoured
    ],
)
def test_install_limit__caps_daphne_factory_and_closes_instead_of_dropping(daphne_limit, expected):
    """daphne's own option call ends with the smaller limit, and failing sends a close frame."""
    from daphne.ws_protocol import WebSocketFactory

    message_limit.install_limit(1024)
    factory = WebSocketFactory(None)
    # The call daphne.server.Server.run makes when it starts.
    factory.setProtocolOptions(
        autoPingTimeout=30,
        allowNullOrigin=True,
        openHandshakeTimeout=5,
        maxMessagePayloadSize=daphne_limit,
        maxFramePayloadSize=daphne_limit,
    )
    assert (factory.maxMessagePayloadSize, factory.maxFramePayloadSize) == (expected, expected)
    assert factory.failByDrop is False
    assert factory.autoPingTimeout == 30 and factory.openHandshakeTimeout == 5
