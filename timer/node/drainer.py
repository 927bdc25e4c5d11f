"""Drains: close every connection of this node in paced batches, after a notice period.

A drain comes from SIGTERM (``signal``: final, the process exits after it) or from the health
policy's draining flag (``policy``: the admin or ``manage.py drain``, reversible). The plan's
arithmetic is :class:`~timer.core.drain_plan.DrainPlan`; this module owns the one task that
carries it out, and hands the connections to ``close``, which records each exact count first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from ..core.close_codes import CLOSE_SERVICE_RESTART
from ..core.drain_plan import DrainPlan

logger = logging.getLogger(__name__)

SIGNAL = "signal"
POLICY = "policy"

C = TypeVar("C")


@dataclass
class DrainState:
    """A drain in progress: where it came from and how far it got."""

    source: str  # SIGNAL (final) or POLICY (reversible)
    started_at: float  # event loop time
    total: int = 0  # connections it set out to close
    closed: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def final(self) -> bool:
        return self.source == SIGNAL


class Drainer:
    """Starts, replaces and cancels this node's drain; at most one runs at a time.

    ``connections`` lists the connections still attached when the notice ends; ``close``
    closes a batch with a code and a kind of reason, and returns how many it closed.
    """

    def __init__(
        self,
        plan: DrainPlan,
        *,
        node_name: str,
        connections: Callable[[], Sequence[C]],
        close: Callable[[list[C], int, str], Awaitable[int]],
    ) -> None:
        self.plan = plan
        self.node_name = node_name
        self._connections = connections
        self._close = close
        self.state: DrainState | None = None
        self._cancelled: list[asyncio.Task[None]] = []  # replaced drains, awaited by stop()

    @property
    def draining(self) -> bool:
        return self.state is not None

    def start(self, source: str) -> DrainState:
        """Begin a drain (idempotent); a signal drain replaces a policy drain, never the reverse."""
        state = self.state
        if state is not None and (state.final or source != SIGNAL):
            return state
        if state is not None:
            self._cancel_task(state)
        loop = asyncio.get_running_loop()
        state = DrainState(source=source, started_at=loop.time())
        self.state = state
        state.task = loop.create_task(self._run(state), name=f"wstime:drain:{source}")
        logger.warning(
            "node=%s event=drain-start source=%s notice=%ss window=%ss",
            self.node_name,
            source,
            self.plan.notice,
            self.plan.window,
        )
        return state

    def cancel(self) -> bool:
        """Stop a policy drain (the admin undid it); a signal drain cannot be undone."""
        state = self.state
        if state is None or state.final:
            return False
        self._cancel_task(state)
        self.state = None
        logger.warning("node=%s event=drain-cancelled closed=%d", self.node_name, state.closed)
        return True

    async def stop(self) -> None:
        """Cancel the running drain, if any, and await every drain task started."""
        if self.state is not None:
            self._cancel_task(self.state)
        tasks, self._cancelled = self._cancelled, []
        await asyncio.gather(*tasks, return_exceptions=True)

    def _cancel_task(self, state: DrainState) -> None:
        if state.task is not None:
            state.task.cancel()
            self._cancelled.append(state.task)
            self._cancelled = [task for task in self._cancelled if not task.done()]

    async def _run(self, state: DrainState) -> None:
        """Keep serving for the notice period, then close every connection in paced batches."""
        plan = self.plan
        await asyncio.sleep(plan.notice)
        connections = list(self._connections())
        state.total = len(connections)
        for size in plan.batches(len(connections)):
            batch, connections = connections[:size], connections[size:]
            await self._close(batch, CLOSE_SERVICE_RESTART, "node restarting")
            state.closed += len(batch)
            await asyncio.sleep(plan.batch_every)
        logger.warning(
            "node=%s event=drain-done source=%s closed=%d",
            self.node_name,
            state.source,
            state.closed,
        )
