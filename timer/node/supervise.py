"""Background tasks that are noticed when they die, logged, and restarted with backoff.

Each task's :class:`TaskState` is what ``/healthcheck`` (JSON) and ``/metrics`` show: whether
it runs, how often it restarted, the type of its last error, and whether it is crash-looping.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

# Short runs in a row after which a task counts as crash-looping (a run that lasts longer than
# the longest restart delay is not short, and starts the count again).
CRASH_LOOP_FAILURES = 3


@dataclass
class TaskState:
    """What a supervised task is doing, for the health JSON, the metrics and the logs."""

    name: str
    restarts: int = 0
    last_error: str = ""  # the exception's type name (never its text), or "returned"
    running: bool = False
    failures: int = 0  # short runs in a row that ended in an error or a return
    delay: float = 0.0  # the delay slept before the latest restart (0 before any)
    task: asyncio.Task | None = field(default=None, repr=False)

    @property
    def crash_looping(self) -> bool:
        """Whether the task keeps dying soon after each restart."""
        return self.failures >= CRASH_LOOP_FAILURES


def supervise(
    name: str,
    run: Callable[[], Awaitable[None]],
    *,
    first_delay: float = 0.1,
    max_delay: float = 10.0,
    clock: Callable[[], float] = time.monotonic,
) -> TaskState:
    """Start ``run()`` in a task that restarts it whenever it raises or returns.

    Restarts wait ``first_delay``, doubling up to ``max_delay`` (each with jitter: 50-100 % of
    it) while runs keep ending within ``max_delay``; a run that lasted longer than that was a
    healthy one, so the next restart waits ``first_delay`` again and the crash-loop count starts
    over. Cancelling ``state.task`` stops it for good; ``CancelledError`` is never swallowed.
    """
    state = TaskState(name=name)

    def back_off(started: float) -> float:
        """Count the run that just ended; return the delay before the restart."""
        state.running = False
        state.restarts += 1
        if clock() - started > max_delay:  # a healthy run: start over
            state.failures, state.delay = 1, first_delay
        else:
            state.failures += 1
            state.delay = first_delay if state.delay == 0 else min(max_delay, state.delay * 2)
        return state.delay

    async def loop() -> None:
        while True:
            state.running = True
            started = clock()
            try:
                await run()
                state.last_error = "returned"
                logger.error(
                    "background task %s returned; restarting it within %.1fs",
                    name,
                    back_off(started),
                )
            except asyncio.CancelledError:
                state.running = False
                raise
            except Exception as exc:
                state.last_error = type(exc).__name__
                logger.exception(
                    "background task %s died; restarting it within %.1fs", name, back_off(started)
                )
            if state.failures == CRASH_LOOP_FAILURES:
                logger.error(
                    "background task %s is crash-looping (%d short runs in a row, last error %s)",
                    name,
                    state.failures,
                    state.last_error,
                )
            await asyncio.sleep(state.delay * random.uniform(0.5, 1.0))

    state.task = asyncio.get_running_loop().create_task(loop(), name=f"wstime:{name}")
    return state


async def stop(states: list[TaskState]) -> None:
    """Cancel the tasks and wait for them to finish."""
    tasks = [s.task for s in states if s.task is not None]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
