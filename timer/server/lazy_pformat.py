"""autobahn's debug formatting, done only when a debug line is written.

Why: autobahn formats its configuration with ``pformat`` for a debug log line on every
connection, even when debug logging is off; a profile showed it at 16-21 % of the node's CPU
during a burst of handshakes. The patch replaces the module's ``pformat`` with
:class:`LazyPformat`, which formats when the log line is rendered, and keeps
``Timings.__str__`` (which returns ``pformat``'s result and must stay a string) eager.

Retired by: an autobahn release that formats lazily or behind a level check (no upstream
issue found).

Optional: only performance. If it cannot apply, the node runs without it (warning
timer.W011).
"""

from __future__ import annotations

import pprint

from .patching import Need, Patch, assigned_in, attribute, mark

NAME = "lazy pformat"
VERSIONS = {"autobahn": ">=26.10,<27"}


class LazyPformat:
    """Stands in for ``pformat(obj)`` in a log call: formats only if the line is written."""

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj

    def __str__(self) -> str:
        return pprint.pformat(self.obj)

    __repr__ = __str__


def needs() -> list[Need]:
    import autobahn.websocket.protocol as autobahn_protocol

    return [
        attribute(autobahn_protocol, "pformat"),
        attribute(autobahn_protocol, "Timings"),
        attribute(autobahn_protocol.Timings, "__str__"),
        assigned_in(autobahn_protocol.Timings.__init__, "_timings"),
    ]


def _timings_str(timings: object) -> str:
    return pprint.pformat(timings._timings)  # type: ignore[attr-defined]


def install() -> None:
    """Make autobahn's ``pformat`` lazy; keep ``Timings`` printable (idempotent)."""
    import autobahn.websocket.protocol as autobahn_protocol

    if autobahn_protocol.pformat is LazyPformat:
        return
    original_str = autobahn_protocol.Timings.__str__
    autobahn_protocol.pformat = LazyPformat  # type: ignore[assignment]
    autobahn_protocol.Timings.__str__ = mark(_timings_str, original_str, NAME)  # type: ignore[method-assign]


PATCH = Patch(
    name=NAME,
    check_id="timer.W011",
    required=False,
    versions=VERSIONS,
    needs=needs,
    install=install,
    module=__name__,
)
