"""This process's open connections and the one ticker that sends all their frames.

One task drives every connection, stepping a :class:`~timer.core.wheel.TimingWheel`: a connection
costs a dict entry, not a task and a timer, and the per-step work is a tight loop over the
connections due at that step with pre-built frame text.

Rounds (one interval each) can be paced from outside: the node's clock pump sends one
``clock.tick`` per interval through the channel layer and :meth:`Hub.release_round` lets the
round start. When that message is late (Redis down or slow), the ticker's own clock starts the
round after ``grace`` seconds, so clients see no gap.

With a shared store the ticker keeps each connection within its *lease*: frame ``n`` is sent only
if ``n <= persisted + 1``, ``persisted`` being the count a checkpoint that succeeded stored
for the connection (reported by :meth:`Hub.confirm`); before its first checkpoint a connection
sends nothing, so that its claim alone can be resumed exactly. A frame outside the
lease is not sent and not counted: the connection pauses, and resumes when a checkpoint
succeeds. That makes the stored count + 1 an upper bound of what the client saw, whatever
happens to the node. The check is one integer comparison per due connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from ..core.close_codes import CLOSE_INTERNAL_ERROR
from ..core.wheel import TimingWheel

logger = logging.getLogger(__name__)

SendText = Callable[[str], Awaitable[None]]
Close = Callable[[int, str], Awaitable[None]]  # close code, reason

# Seconds from attaching to the first frame of a session that already has a count: a few
# ticker steps, so that the step is still to come.
PROMPT_FIRST_FRAME = 0.05


class Connection:
    """One open WebSocket as the ticker sees it."""

    __slots__ = (
        "client_id",
        "token",
        "last_n",
        "send_text",
        "close",
        "closing",
        "persisted",
        "owed_at",
        "revoked_at",
    )

    def __init__(
        self, *, client_id: str, token: str, last_n: int, send_text: SendText, close: Close
    ) -> None:
        self.client_id = client_id
        self.token = token
        self.last_n = last_n  # the count of the last frame sent; -1 before the first
        self.send_text = send_text
        self.close = close
        self.closing = False
        # The count the store holds for this connection, which may send persisted + 1. Until
        # a checkpoint lists it, only its claim does, and the claim resumes exactly (a
        # handshake that failed after claiming costs no count): no frame before that.
        self.persisted = last_n - 1
        self.owed_at = 0.0  # when its last frame was held back by the lease
        self.revoked_at: float | None = None  # when a checkpoint said a newer claim revoked it

    def __repr__(self) -> str:
        return f"<Connection {self.client_id} n={self.last_n}>"


@dataclass
class TickerStats:
    """Counters the health JSON and the metrics read."""

    frames_sent: int = 0
    send_errors: int = 0
    rounds_by_layer: int = 0
    rounds_by_local_clock: int = 0
    steps_skipped: int = 0
    frames_held: int = 0  # due frames not sent because the store had not confirmed the last one


class Hub:
    """Open connections by client id, on a timing wheel driven by :meth:`run_ticker`."""

    def __init__(
        self,
        *,
        node_name: str,
        interval: float,
        clock: Callable[[], float],
        grace: float | None = None,
    ) -> None:
        self.node_name = node_name
        self.interval = interval
        self._clock = clock
        # Steps of at least 10 ms: finer is wasted wake-ups, coarser is visible jitter.
        slots = max(1, min(100, int(interval / 0.01)))
        self.wheel: TimingWheel[Connection] = TimingWheel(
            interval=interval, slots=slots, start=clock()
        )
        self.grace = interval / 4 if grace is None else grace
        self.by_client: dict[str, Connection] = {}
        self.stats = TickerStats()
        self._frame_prefix = f"{node_name}: you have been connected for "
        self._released_round = -1
        self._round_waiter: asyncio.Future[None] | None = None
        self.paced_by_layer = False
        self.lease = False  # True with a shared store: see the module docstring
        self._owed: set[Connection] = set()  # connections whose due frame the lease held back
        # Asks for an early checkpoint (set by the housekeeping task while it runs)
        self.checkpoint_wanted: Callable[[], None] | None = None

    def __len__(self) -> int:
        return len(self.by_client)

    # --- connections

    def attach(self, connection: Connection, *, prompt: bool = False) -> None:
        """Put a connection on the wheel; its first frame is due one interval from now.

        ``prompt``: a session that already has a count (a reconnect after a failover, a
        drain, a move). Its next frame is due :data:`PROMPT_FIRST_FRAME` from now instead,
        so that the count goes on at once, and the housekeeping task is asked for an early
        checkpoint (``checkpoint_wanted``), since the lease holds the frame until one lists
        the connection.
        """
        if connection.client_id in self.by_client:
            raise KeyError(f"client {connection.client_id} is already attached")
        self.by_client[connection.client_id] = connection
        after = min(self.interval, PROMPT_FIRST_FRAME) if prompt else None
        self.wheel.add(connection.client_id, connection, self._clock(), after=after)
        if prompt and self.checkpoint_wanted is not None:
            self.checkpoint_wanted()

    def detach(self, connection: Connection) -> bool:
        """Take a connection off the wheel; False if it was not (or no longer) attached."""
        if self.by_client.get(connection.client_id) is not connection:
            return False
        del self.by_client[connection.client_id]
        self.wheel.remove(connection.client_id)
        return True

    def get(self, client_id: str) -> Connection | None:
        return self.by_client.get(client_id)

    def checkpoint_entries(self) -> list[tuple[str, str, int]]:
        """Return (client id, token, last count) of every connection, for one batched write."""
        return [(c.client_id, c.token, c.last_n) for c in self.by_client.values()]

    def snapshot(self) -> list[tuple[Connection, int]]:
        """Return every connection with its last count, for a checkpoint and its :meth:`confirm`."""
        return [(c, c.last_n) for c in self.by_client.values()]

    async def confirm(self, snapshot: Iterable[tuple[Connection, int]]) -> None:
        """Raise leases to the counts a checkpoint stored, and release held-back frames.

        A frame held back less than half an interval ago (its checkpoint was in flight when it
        was due) is sent now, a few milliseconds late; an older one waits for its next due step,
        so that after an outage frames keep their phases instead of leaving all at once.

        In one go, as the ticker's steps: yielding between slices let a failover's burst of
        handshakes delay the held frames by hundreds of milliseconds (the survivor's own
        clients lost 1 % of their frames in the storm benchmark).
        """
        for connection, count in snapshot:
            if count > connection.persisted:
                connection.persisted = count
        if not self._owed:
            return
        now = self._clock()
        owed, self._owed = self._owed, set()
        sent = 0
        for connection in owed:
            if connection.closing or self.by_client.get(connection.client_id) is not connection:
                continue
            if connection.last_n > connection.persisted:
                self._owed.add(connection)
            elif now - connection.owed_at < self.interval / 2:
                sent += await self._send(connection)
        self.stats.frames_sent += sent

    def frame(self, n: int) -> str:
        return f"{self._frame_prefix}{n} seconds"

    # --- pacing

    def release_round(self, round_number: int) -> None:
        """Let round ``round_number`` start (called when its clock tick arrives)."""
        if round_number > self._released_round:
            self._released_round = round_number
            if self._round_waiter is not None and not self._round_waiter.done():
                self._round_waiter.set_result(None)

    def round_of(self, step: int) -> int:
        return step // self.wheel.slots

    async def _wait_for_round(self, round_number: int) -> None:
        if self._released_round >= round_number:
            self.stats.rounds_by_layer += 1
            return
        self._round_waiter = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self._round_waiter, self.grace)
            self.stats.rounds_by_layer += 1
        except TimeoutError:
            self.stats.rounds_by_local_clock += 1
        finally:
            self._round_waiter = None

    # --- the ticker

    async def run_ticker(self) -> None:
        """Send every due frame at each step, forever (until cancelled)."""
        wheel = self.wheel
        step = wheel.step_at(self._clock())
        while True:
            deadline = wheel.time_of(step)
            delay = deadline - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
            elif -delay > self.interval:
                # The loop stalled for more than an interval: skip to now rather than burst
                # several frames to each connection at once. Counts still go up by one a frame.
                now_step = wheel.step_at(self._clock())
                self.stats.steps_skipped += now_step - step
                logger.warning(
                    "ticker fell %.2fs behind; skipping %d steps", -delay, now_step - step
                )
                step = now_step
                continue
            # Behind by less than an interval: the due steps go at once, without yielding in
            # between, so that a failover's burst of handshakes does not delay them further.
            if self.paced_by_layer and step % wheel.slots == 0:
                await self._wait_for_round(self.round_of(step))
            await self._fire(step)
            step += 1

    async def _fire(self, step: int) -> None:
        sent = 0
        lease = self.lease
        now = self._clock()
        for connection in self.wheel.due(step):
            if connection.closing:
                continue
            if lease and connection.last_n > connection.persisted:
                connection.owed_at = now
                self._owed.add(connection)
                self.stats.frames_held += 1
                continue
            sent += await self._send(connection)
        self.stats.frames_sent += sent

    async def _send(self, connection: Connection) -> int:
        """Send the connection's next frame; return 1 if sent, 0 if the send failed."""
        connection.last_n += 1
        try:
            await connection.send_text(self.frame(connection.last_n))
        except Exception as exc:  # noqa: BLE001 - one broken socket must not stop the others
            await self._send_failed(connection, exc)
            return 0
        return 1

    async def _send_failed(self, connection: Connection, exc: Exception) -> None:
        """Uncount a frame that was not sent and stop ticking its connection.

        The connection stays attached: its disconnect, which persists the session with the
        corrected count, detaches it. An ``OSError`` is the server saying the client is gone
        (ASGI), so that disconnect is on its way; anything else is closed with 1011 so that it
        comes.
        """
        connection.last_n -= 1
        connection.closing = True
        self.stats.send_errors += 1
        if isinstance(exc, OSError):
            # A client that closed while its frame was due: expected, so one line.
            logger.info(
                "node=%s client=%s event=send-failed error=%s; client is leaving",
                self.node_name,
                connection.client_id,
                type(exc).__name__,
            )
            return
        logger.error(
            "node=%s client=%s event=send-failed error=%r; closing with %d",
            self.node_name,
            connection.client_id,
            exc,
            CLOSE_INTERNAL_ERROR,
        )
        try:
            await connection.close(CLOSE_INTERNAL_ERROR, "")
        except Exception:
            logger.exception(
                "node=%s client=%s: closing after a failed send failed too",
                self.node_name,
                connection.client_id,
            )
