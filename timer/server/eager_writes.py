"""Twisted TCP writes that go straight to the socket when nothing is buffered.

Why: a Twisted transport buffers each write and registers the socket with the event loop for
writability (``add_writer``, then ``remove_writer`` once sent), even when the socket could take
the bytes at once. With a frame per connection per second, that registration was about a
quarter of a busy node's CPU in a profile. Eager writes send straight away when nothing is
buffered (``_tempDataBuffer`` empty, ``offset`` at the end of ``dataBuffer``), and fall back
to Twisted's path for whatever is left, so ordering and back-pressure stay Twisted's.

Retired by: twisted/twisted#5303 "Default transport implementation doesn't write out bytes
immediately" (open), were it to land.

Optional: only performance. If it cannot apply, the node runs without it (warning
timer.W012).
"""

from __future__ import annotations

from typing import Any

from .patching import Need, Patch, assigned_in, attribute, mark, marked

NAME = "eager writes"
VERSIONS = {"twisted": ">=26.10,<27"}


def needs() -> list[Need]:
    from twisted.internet import abstract, tcp

    return [
        attribute(tcp.Connection, "write"),
        assigned_in(abstract.FileDescriptor.__init__, "_tempDataBuffer"),
        attribute(abstract.FileDescriptor, "dataBuffer"),
        attribute(abstract.FileDescriptor, "offset"),
        attribute(abstract.FileDescriptor, "connected"),
        attribute(abstract.FileDescriptor, "disconnecting"),
        attribute(abstract.FileDescriptor, "_writeDisconnected"),
        assigned_in(tcp.Connection.__init__, "socket"),
    ]


def install() -> None:
    """Make Twisted TCP transports send at once when their buffer is empty (idempotent)."""
    from twisted.internet import tcp

    buffered_write = tcp.Connection.write
    if marked(buffered_write, NAME):
        return

    def write(self: Any, data: bytes) -> None:
        if (
            data
            and type(data) is bytes
            and self.connected
            and not self._writeDisconnected
            and not self.disconnecting
            and not self._tempDataBuffer
            and self.offset >= len(self.dataBuffer)
        ):
            try:
                sent = self.socket.send(data)
            except OSError:
                sent = 0  # EAGAIN, or a broken socket that Twisted's own write path reports
            if sent == len(data):
                return
            data = data[sent:]
        buffered_write(self, data)

    tcp.Connection.write = mark(write, buffered_write, NAME)  # type: ignore[method-assign]


PATCH = Patch(
    name=NAME,
    check_id="timer.W012",
    required=False,
    versions=VERSIONS,
    needs=needs,
    install=install,
    module=__name__,
)
