"""daphne's timeout and keepalive checks, a slice of the connections at a time."""

import daphne.server

from timer.server import sliced_checks


class FakeProtocol:
    def __init__(self, checked: list) -> None:
        self.checked = checked

    def check_timeouts(self) -> None:
        self.checked.append(self)


class FakeReactor:
    def __init__(self) -> None:
        self.calls: list = []

    def callLater(self, delay, function):  # Twisted's name
        self.calls.append((delay, function))


def test_sliced_checks__install_idempotent():
    """daphne's timeout checker is replaced once, however often it is installed."""
    sliced_checks.install()
    replaced = daphne.server.Server.timeout_checker
    sliced_checks.install()
    assert daphne.server.Server.timeout_checker is replaced
    assert replaced.wstime_patch == sliced_checks.NAME


def test_sliced_checks__each_connection_once_per_period_and_none_that_left(monkeypatch):
    """One pass of 20 steps checks every connection once; one that left is skipped."""
    sliced_checks.install()
    reactor = FakeReactor()
    monkeypatch.setattr(daphne.server, "reactor", reactor)
    checked: list = []
    server = daphne.server.Server.__new__(daphne.server.Server)
    server.connections = {FakeProtocol(checked): {} for _ in range(100)}
    gone = list(server.connections)[-1]

    server.timeout_checker()
    assert len(checked) == 5
    del server.connections[gone]
    for _ in range(19):
        server.timeout_checker()

    assert checked == list(server.connections)
    assert len(reactor.calls) == 20
    assert {delay for delay, _ in reactor.calls} == {sliced_checks.STEP}
    assert sliced_checks.STEP * 20 == sliced_checks.PERIOD
