"""daphne's connection timeout and keepalive checks, spread over their period.

Why: every 2 s daphne's ``Server.timeout_checker`` calls ``check_timeouts`` on every connection
in one loop (time limits, the opening-handshake timeout, the keepalive ping). At 10,000
connections that loop held the event loop for 30-50 ms every two seconds (measured per event
loop callback), and the frames and ``/healthcheck`` answers due meanwhile waited as long. The
patch checks a slice of the connections every :data:`STEP` seconds
(:class:`timer.core.sweep.SlicedSweep`), each connection still once per :data:`PERIOD` (up to
two for one that connected during a pass), and skips those that left meanwhile.

It relies on ``daphne.server.Server.timeout_checker`` (replaced), the ``connections`` dict that
``Server.run`` sets, the module's ``reactor`` and each protocol's ``check_timeouts``.

Retired by: a daphne release whose checks do not stop the loop in proportion to the number of
connections (no upstream issue found).

Optional: only performance. If it cannot apply, the node runs without it (warning
timer.W013).
"""

from __future__ import annotations

from typing import Any

from ..core.sweep import SlicedSweep
from .patching import Need, Patch, assigned_in, attribute, mark, marked

NAME = "sliced checks"
VERSIONS = {"daphne": ">=4.2.2,<4.3"}
PERIOD = 2.0  # daphne's own period for these checks
STEP = 0.1  # so a pass is 20 slices: 500 connections a slice at 10,000


def needs() -> list[Need]:
    import daphne.http_protocol
    import daphne.server
    import daphne.ws_protocol

    return [
        attribute(daphne.server.Server, "timeout_checker"),
        assigned_in(daphne.server.Server.run, "connections"),
        attribute(daphne.server, "reactor"),
        attribute(daphne.ws_protocol.WebSocketProtocol, "check_timeouts"),
        attribute(daphne.http_protocol.WebRequest, "check_timeouts"),
    ]


def install() -> None:
    """Make daphne's servers check their connections a slice at a time (idempotent)."""
    import daphne.server

    original = daphne.server.Server.timeout_checker
    if marked(original, NAME):
        return

    def timeout_checker(self: Any) -> None:
        sweep = self.__dict__.get("_wstime_sweep")
        if sweep is None:
            sweep = self._wstime_sweep = SlicedSweep(period=PERIOD, step=STEP)
        connections = self.connections
        for protocol in sweep.next_slice(lambda: list(connections)):
            if protocol in connections:  # not one that left since the pass began
                protocol.check_timeouts()
        daphne.server.reactor.callLater(STEP, self.timeout_checker)

    daphne.server.Server.timeout_checker = mark(timeout_checker, original, NAME)  # type: ignore[method-assign]


PATCH = Patch(
    name=NAME,
    check_id="timer.W013",
    required=False,
    versions=VERSIONS,
    needs=needs,
    install=install,
    module=__name__,
)
