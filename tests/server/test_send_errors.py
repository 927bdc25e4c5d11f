"""``websocket.send`` on a closed connection raises an OSError (ASGI 2.4)."""

from timer import server
from timer.server import send_errors


def test_send_errors__install_idempotent_and_an_oserror():
    """daphne's reply path raises for a frame it would drop, as ASGI 2.4 asks: an OSError."""
    from daphne.server import Server

    send_errors.install()
    wrapped = Server.handle_reply
    send_errors.install()
    assert Server.handle_reply is wrapped and wrapped.wstime_patch == send_errors.NAME
    assert issubclass(server.ClientDisconnected, OSError)
