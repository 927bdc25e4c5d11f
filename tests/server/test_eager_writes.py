"""Twisted TCP writes sent at once when nothing is buffered."""

from timer.server import eager_writes


def test_eager_writes__install_idempotent():
    """Twisted's TCP write is wrapped once, however often it is installed."""
    from twisted.internet import tcp

    eager_writes.install()
    wrapped = tcp.Connection.write
    eager_writes.install()
    assert tcp.Connection.write is wrapped and wrapped.wstime_patch == eager_writes.NAME
