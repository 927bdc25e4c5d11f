"""daphne's periodic connection checks, spread over their periods.

Why: daphne walks every connection in one loop twice over: ``Server.timeout_checker`` every 2 s
(time limits, the opening-handshake timeout, the keepalive ping) and
``Server.application_checker`` every second (reaping finished application instances and
disconnected connections). At 10,000 connections a per-callback timer in the node showed the
first holding the event loop for 30-50 ms and the second for about 10 ms, and the frames and
``/healthcheck`` answers due meanwhile waited as long. The patch runs both a slice of the
connections every :data:`STEP` seconds (:class:`timer.core.sweep.SlicedSweep`), each
connection still once per period (up to two for one that connected during a pass), and skips
those that left meanwhile. The application check's body per connection is daphne's own.

It relies on ``daphne.server.Server.timeout_checker`` and ``application_checker`` (replaced),
the ``connections`` dict that ``Server.run`` sets and its per-connection keys
(``disconnected``, ``application_instance``), ``application_close_timeout``, the module's
``reactor`` and each protocol's ``check_timeouts`` and ``handle_exception``.

Retired by: a daphne release whose checks do not stop the loop in proportion to the number of
connections (no upstream issue found).

Optional: only performance. If it cannot apply, the node runs without it (warning
timer.W013).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from concurrent.futures import CancelledError
from typing import Any

from ..core.sweep import SlicedSweep
from .patching import Need, Patch, assigned_in, attribute, key_in, mark, marked

logger = logging.getLogger("daphne.server")  # daphne's own logger: the lines are its lines

NAME = "sliced checks"
VERSIONS = {"daphne": ">=4.2.2,<4.3"}
PERIOD = 2.0  # daphne's own period for the timeout checks
APPLICATION_PERIOD = 1.0  # and for the application checks
# A timeout pass is 100 slices: 100 connections a slice at 10,000. Not fewer: the keepalive
# pings of connections opened together fall due together, and each costs ~25 µs to send.
STEP = 0.02


def needs() -> list[Need]:
    import daphne.http_protocol
    import daphne.server
    import daphne.ws_protocol

    # daphne's own, whether or not this process has installed the patch
    daphne_checker = inspect.unwrap(daphne.server.Server.application_checker)
    return [
        attribute(daphne.server.Server, "timeout_checker"),
        attribute(daphne.server.Server, "application_checker"),
        assigned_in(daphne.server.Server.run, "connections"),
        key_in(daphne_checker, "disconnected"),
        key_in(daphne_checker, "application_instance"),
        assigned_in(daphne.server.Server.__init__, "application_close_timeout"),
        attribute(daphne.ws_protocol.WebSocketProtocol, "handle_exception"),
        attribute(daphne.http_protocol.WebRequest, "handle_exception"),
        attribute(daphne.server, "reactor"),
        attribute(daphne.ws_protocol.WebSocketProtocol, "check_timeouts"),
        attribute(daphne.http_protocol.WebRequest, "check_timeouts"),
    ]


def install() -> None:
    """Make daphne's servers check their connections a slice at a time (idempotent)."""
    import daphne.server

    server_class = daphne.server.Server
    if marked(server_class.timeout_checker, NAME):
        return

    def timeout_checker(self: Any) -> None:
        connections = self.connections
        for protocol in _sweep(self, "_wstime_timeouts", PERIOD).next_slice(
            lambda: list(connections)
        ):
            if protocol in connections:  # not one that left since the pass began
                protocol.check_timeouts()
        daphne.server.reactor.callLater(STEP, self.timeout_checker)

    def application_checker(self: Any) -> None:
        connections = self.connections
        for protocol in _sweep(self, "_wstime_applications", APPLICATION_PERIOD).next_slice(
            lambda: list(connections)
        ):
            if protocol in connections:
                check_application(self, protocol, connections[protocol])
        daphne.server.reactor.callLater(STEP, self.application_checker)

    server_class.application_checker = mark(  # type: ignore[method-assign]
        application_checker, server_class.application_checker, NAME
    )
    server_class.timeout_checker = mark(timeout_checker, server_class.timeout_checker, NAME)  # type: ignore[method-assign]


def _sweep(server: Any, attribute_name: str, period: float) -> SlicedSweep[Any]:
    sweep = server.__dict__.get(attribute_name)
    if sweep is None:
        sweep = SlicedSweep(period=period, step=STEP)
        setattr(server, attribute_name, sweep)
    return sweep


def check_application(server: Any, protocol: Any, details: dict[str, Any]) -> None:
    """daphne 4.2's ``application_checker`` for one connection, as it is there."""
    disconnected = details.get("disconnected", None)
    application_instance = details.get("application_instance", None)
    # First, see if the protocol disconnected and the app has taken too long to close up
    if disconnected and time.time() - disconnected > server.application_close_timeout:
        if application_instance and not application_instance.done():
            logger.warning(
                "Application instance %r for connection %s took too long to shut down and was "
                "killed.",
                application_instance,
                repr(protocol),
            )
            application_instance.cancel()
    # Then see if the app is done and we should reap it
    if application_instance and application_instance.done():
        try:
            exception = application_instance.exception()
        except (CancelledError, asyncio.CancelledError):
            pass  # Future cancellation. We can ignore this.
        else:
            if exception:
                if isinstance(exception, KeyboardInterrupt):
                    server.stop()  # the protocol asks the server to exit (likely in a test)
                else:
                    logger.error("Exception inside application: %s", exception, exc_info=exception)
                    if not disconnected:
                        protocol.handle_exception(exception)
        del server.connections[protocol]["application_instance"]
        application_instance = None
    # Check to see if protocol is closed and app is closed so we can remove it
    if not application_instance and disconnected:
        del server.connections[protocol]


PATCH = Patch(
    name=NAME,
    check_id="timer.W013",
    required=False,
    versions=VERSIONS,
    needs=needs,
    install=install,
    module=__name__,
)
