"""Supervised background tasks: restarts, backoff and what their state shows."""

from __future__ import annotations

import asyncio

import pytest

from timer.node.supervise import CRASH_LOOP_FAILURES, stop, supervise

MS = 0.001


class FakeClock:
    """A monotonic clock that only moves when a test moves it."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def wait_until(predicate, *, timeout: float = 5.0) -> None:
    """Poll ``predicate`` on the event loop until it holds (bounded)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(MS)


async def test_supervise__crash_loop_shows_in_state():
    """A task that keeps dying is marked crash-looping, with its restarts and last error."""

    async def crash() -> None:
        raise RuntimeError("boom")

    state = supervise("flaky", crash, first_delay=1 * MS, max_delay=4 * MS)
    try:
        await wait_until(lambda: state.restarts >= CRASH_LOOP_FAILURES + 1)
        assert state.crash_looping
        assert state.last_error == "RuntimeError"
        assert state.failures >= CRASH_LOOP_FAILURES
    finally:
        await stop([state])


async def test_supervise__healthy_task_is_running_and_not_crash_looping():
    """A task that runs on is running, with no restarts and no error."""
    started = asyncio.Event()

    async def steady() -> None:
        started.set()
        await asyncio.Event().wait()

    state = supervise("steady", steady)
    try:
        await asyncio.wait_for(started.wait(), timeout=5)
        assert (state.running, state.restarts, state.last_error, state.crash_looping) == (
            True,
            0,
            "",
            False,
        )
    finally:
        await stop([state])
    assert state.running is False


async def test_supervise__delay_resets_after_a_run_longer_than_max_delay():
    """Backoff doubles while runs are short and starts over after a run that lasted."""
    clock = FakeClock()
    runs = 0
    delays_seen: list[float] = []
    state = None

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        delays_seen.append(state.delay)
        if runs == 4:
            clock.now += 10 * MS  # this run lasts longer than max_delay: a healthy run
        raise ValueError("short run")

    state = supervise("flaky", flaky, first_delay=1 * MS, max_delay=4 * MS, clock=clock)
    try:
        await wait_until(lambda: runs >= 6)
    finally:
        await stop([state])
    # The delay slept before each run: none before the first, then doubling up to max_delay;
    # after the long fourth run it starts over at first_delay.
    assert delays_seen[:6] == pytest.approx([0, 1 * MS, 2 * MS, 4 * MS, 1 * MS, 2 * MS])
