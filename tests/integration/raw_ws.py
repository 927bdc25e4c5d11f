"""A WebSocket client on a bare socket, for frames no well-behaved library would send.

It writes whatever frames a test builds (several in one TCP write, fragments never finished,
empty close frames) and reads the server's frames back. Blocking, small and loopback only.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import time
from dataclasses import dataclass

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE = 0x0, 0x1, 0x2, 0x8


@dataclass(frozen=True)
class Frame:
    opcode: int
    payload: bytes

    @property
    def close_code(self) -> int | None:
        """The status code of a close frame, ``None`` when it carries none."""
        if self.opcode != OP_CLOSE or len(self.payload) < 2:
            return None
        return struct.unpack("!H", self.payload[:2])[0]


def frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """Encode one masked client frame."""
    first = (0x80 if fin else 0) | opcode
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", first, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, length)
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


class RawClient:
    """One handshake-completed connection on a plain socket."""

    def __init__(self, port: int, path: str, *, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self.buffer = b""
        self.answered_close = False
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"closed during the handshake: {self.buffer!r}")
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        self.status = int(head.split(b" ", 2)[1])

    def send(self, data: bytes) -> None:
        """Write ``data`` in one call (one TCP segment on loopback for small writes)."""
        self.sock.sendall(data)

    def _read(self, count: int, deadline: float) -> bytes | None:
        while len(self.buffer) < count:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                return None
            if not chunk:
                return None
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def frames(self, timeout: float = 5.0) -> list[Frame]:
        """Read server frames until the connection ends or ``timeout`` passes.

        A close frame is answered with one (its code echoed), as RFC 6455 asks, so the server
        ends the connection at once and any further frame it sends is seen here.
        """
        deadline = time.monotonic() + timeout
        result: list[Frame] = []
        while time.monotonic() < deadline:
            head = self._read(2, deadline)
            if head is None:
                break
            length = head[1] & 0x7F
            if length == 126:
                length = struct.unpack("!H", self._read(2, deadline) or b"\0\0")[0]
            elif length == 127:
                length = struct.unpack("!Q", self._read(8, deadline) or b"\0" * 8)[0]
            payload = self._read(length, deadline) if length else b""
            if payload is None:
                break
            result.append(Frame(head[0] & 0x0F, payload))
            if result[-1].opcode == OP_CLOSE and not self.answered_close:
                self.answered_close = True
                try:
                    self.send(frame(OP_CLOSE, payload[:2]))
                except OSError:
                    break
        return result

    def close(self) -> None:
        self.sock.close()
