"""Background tasks that are noticed when they die, logged, and restarted with backoff."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)


@dataclass
class TaskState:
    """What a supervised task is doing, for the health JSON and the logs."""

    name: str
    restarts: int = 0
    last_error: str = ""
    running: bool = False
    task: asyncio.Task | None = field(default=None, repr=False)


def supervise(
    name: str,
    run: Callable[[], Awaitable[None]],
    *,
    first_delay: float = 0.1,
    max_delay: float = 10.0,
) -> TaskState:
    """Start ``run()`` in a task that restarts it whenever it raises or returns.

    Cancelling ``state.task`` stops it for good; ``CancelledError`` is never swallowed.
    """
    state = TaskState(name=name)

    async def loop() -> None:
        delay = first_delay
        while True:
            state.running = True
            try:
                await run()
                logger.error("background task %s returned; restarting it", name)
                state.last_error = "returned"
            except asyncio.CancelledError:
                state.running = False
                raise
            except Exception as exc:  # noqa: BLE001 - this is the one place that catches them
                logger.exception("background task %s died; restarting it in %.1fs", name, delay)
                state.last_error = type(exc).__name__
            state.running = False
            state.restarts += 1
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(max_delay, delay * 2)

    state.task = asyncio.get_running_loop().create_task(loop(), name=f"wstime:{name}")
    return state


async def stop(states: list[TaskState]) -> None:
    """Cancel the tasks and wait for them to finish."""
    tasks = [s.task for s in states if s.task is not None]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
