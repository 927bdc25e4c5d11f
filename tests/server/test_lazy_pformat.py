"""autobahn's debug formatting, deferred until a line is written."""

import pprint

from timer import server
from timer.server import lazy_pformat


def test_lazy_pformat__formats_only_when_written():
    """The stand-in formats like pformat, on demand."""
    value = {"b": [1, 2, 3], "a": "x" * 100}
    assert str(lazy_pformat.LazyPformat(value)) == pprint.pformat(value)


def test_install__idempotent_and_keeps_timings_printable():
    """Installing twice changes nothing; autobahn's Timings still print as text."""
    server.install()
    server.install()
    import autobahn.websocket.protocol as autobahn_protocol

    timings = autobahn_protocol.Timings()
    timings.track("open")
    assert str(timings).startswith("{'open': ")
    assert isinstance(autobahn_protocol.pformat([1]), lazy_pformat.LazyPformat)
