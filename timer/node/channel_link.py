"""This node's two tasks on the channel layer: the clock that paces ticks, and the inbox.

- ``clock`` sends one ``clock.tick`` per interval to this node's own channel; the ticker starts
  each round when it arrives, or on its own clock a quarter interval later if it does not
  (:class:`~timer.node.hub.Hub`), so a slow or absent layer never stops the counts.
- ``inbox`` receives this node's channel messages: clock ticks, and session takeovers sent by
  another node whose new connection claimed a session held here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError

from .hub import Hub

logger = logging.getLogger(__name__)

CLOCK_TICK = "clock.tick"
SESSION_TAKEOVER = "session.takeover"


class ChannelLink:
    """The clock and the inbox of one node's channel ``channel`` on ``layer``.

    ``take_over`` is called for a takeover message with the client id and the token of the
    connection that lost the session.
    """

    def __init__(
        self,
        layer: Any,
        channel: str,
        hub: Hub,
        *,
        node_name: str,
        interval: float,
        take_over: Callable[[str, str], Awaitable[None]],
    ) -> None:
        self.layer = layer
        self.channel = channel
        self.hub = hub
        self.node_name = node_name
        self.interval = interval
        self._take_over = take_over

    async def run_clock(self) -> None:
        loop = asyncio.get_running_loop()
        wheel = self.hub.wheel
        round_number = self.hub.round_of(wheel.step_at(loop.time()))
        failing = False
        while True:
            delay = wheel.time_of(round_number * wheel.slots) - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                await self.layer.send(self.channel, {"type": CLOCK_TICK, "round": round_number})
                if failing:
                    logger.warning(
                        "node=%s clock ticks flow through the channel layer again", self.node_name
                    )
                failing = False
            except Exception as exc:  # noqa: BLE001 - the ticker's own clock covers the gap
                if not failing:
                    logger.error(
                        "node=%s channel layer send failed (%s); ticking on the local clock",
                        self.node_name,
                        type(exc).__name__,
                    )
                failing = True
            round_number = max(round_number + 1, self.hub.round_of(wheel.step_at(loop.time())))

    async def run_inbox(self) -> None:
        unreachable = False
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except (RedisError, OSError) as exc:
                # Redis is down: the ticker's local clock covers the ticks, and the session
                # store reports the outage. Wait and subscribe again; no traceback per try.
                if not unreachable:
                    logger.warning(
                        "node=%s channel layer unreachable (%s); inbox retries every %ss",
                        self.node_name,
                        type(exc).__name__,
                        self.interval,
                    )
                unreachable = True
                await asyncio.sleep(self.interval)
                continue
            if unreachable:
                logger.warning("node=%s channel layer reachable again", self.node_name)
                unreachable = False
            await self.handle(message)

    async def handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == CLOCK_TICK:
            self.hub.release_round(int(message["round"]))
        elif kind == SESSION_TAKEOVER:
            await self._take_over(str(message.get("client_id")), str(message.get("token")))
        else:
            logger.warning("node=%s ignoring unknown message type %r", self.node_name, kind)


async def send_takeover(layer: Any, channel: str, client_id: str, token: str) -> None:
    """Ask the node listening on ``channel`` to close its connection ``token`` of ``client_id``."""
    await layer.send(channel, {"type": SESSION_TAKEOVER, "client_id": client_id, "token": token})
