"""Real loopback traffic for tests and benchmarks: measured, and generated at a paced rate."""

from __future__ import annotations

import socket
import threading
import time

import psutil


def loopback_bits_per_second(seconds: float = 0.5) -> float:
    before = psutil.net_io_counters(pernic=True)["lo"]
    time.sleep(seconds)  # measuring the background needs real time to pass
    after = psutil.net_io_counters(pernic=True)["lo"]
    return (
        max(after.bytes_recv - before.bytes_recv, after.bytes_sent - before.bytes_sent)
        * 8
        / seconds
    )


class LoopbackFlood:
    """Sends bytes from one 127.0.0.1 socket to another at a paced rate, within a byte budget."""

    def __init__(self, bytes_per_second: int, budget: int) -> None:
        self.bytes_per_second = bytes_per_second
        self.budget = budget
        self.sent = 0
        self._stop = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._threads = [
            threading.Thread(target=self._receive, daemon=True),
            threading.Thread(target=self._send, daemon=True),
        ]

    def __enter__(self) -> LoopbackFlood:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self._server.close()

    def _receive(self) -> None:
        self._server.settimeout(5)
        connection, _ = self._server.accept()
        with connection:
            while connection.recv(1 << 16):
                pass

    def _send(self) -> None:
        chunk = b"\0" * (1 << 16)
        start = time.monotonic()
        with socket.create_connection(self._server.getsockname()) as connection:
            while not self._stop.is_set() and self.sent < self.budget:
                ahead = self.sent / self.bytes_per_second - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(min(ahead, 0.01))
                    continue
                connection.sendall(chunk)
                self.sent += len(chunk)
