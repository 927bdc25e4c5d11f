"""daphne's timeout and keepalive checks, a slice of the connections at a time."""

import asyncio
import time

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
    """daphne's two checkers are replaced once, however often it is installed."""
    sliced_checks.install()
    replaced = (daphne.server.Server.timeout_checker, daphne.server.Server.application_checker)
    sliced_checks.install()
    assert (daphne.server.Server.timeout_checker, daphne.server.Server.application_checker) == (
        replaced
    )
    assert {function.wstime_patch for function in replaced} == {sliced_checks.NAME}


def bare_server(connections: dict) -> daphne.server.Server:
    server = daphne.server.Server.__new__(daphne.server.Server)
    server.connections = connections
    server.application_close_timeout = 10
    return server


def test_sliced_checks__each_connection_once_per_period_and_none_that_left(monkeypatch):
    """One pass (period / step calls) checks every connection once; one that left is skipped."""
    sliced_checks.install()
    reactor = FakeReactor()
    monkeypatch.setattr(daphne.server, "reactor", reactor)
    checked: list = []
    server = bare_server({FakeProtocol(checked): {} for _ in range(1000)})
    gone = list(server.connections)[-1]
    steps = round(sliced_checks.PERIOD / sliced_checks.STEP)

    server.timeout_checker()
    assert len(checked) == 1000 / steps
    del server.connections[gone]
    for _ in range(steps - 1):
        server.timeout_checker()

    assert checked == list(server.connections)
    assert len(reactor.calls) == steps
    assert {delay for delay, _ in reactor.calls} == {sliced_checks.STEP}


class Failing:
    def __init__(self) -> None:
        self.handled: list[BaseException] = []

    def handle_exception(self, exception: BaseException) -> None:
        self.handled.append(exception)


def test_sliced_checks__applications_reaped_as_daphne_does_within_one_period(monkeypatch):
    """Over one period's slices: a finished application is reaped (its error reported to its
    open connection), a disconnected connection without one is forgotten, a running one kept,
    and one that has not shut down within ``application_close_timeout`` is cancelled."""
    sliced_checks.install()
    reactor = FakeReactor()
    monkeypatch.setattr(daphne.server, "reactor", reactor)
    loop = asyncio.new_event_loop()
    try:

        def future(error: BaseException | None = None, done: bool = True) -> asyncio.Future:
            result = loop.create_future()
            if done:
                result.set_exception(error) if error else result.set_result(None)
            return result

        failing, left, running, stuck = Failing(), object(), object(), object()
        boom = RuntimeError("boom")
        stuck_application = future(done=False)
        server = bare_server(
            {
                failing: {"application_instance": future(boom)},
                left: {"disconnected": time.time()},
                running: {"application_instance": future(done=False)},
                stuck: {
                    "disconnected": time.time() - 11,
                    "application_instance": stuck_application,
                },
            }
        )
        steps = round(sliced_checks.APPLICATION_PERIOD / sliced_checks.STEP)
        for _ in range(steps):
            server.application_checker()

        assert failing.handled == [boom] and server.connections[failing] == {}
        assert left not in server.connections
        assert not server.connections[running]["application_instance"].done()
        assert stuck_application.cancelled() and stuck not in server.connections
        assert len(reactor.calls) == steps
    finally:
        loop.close()
