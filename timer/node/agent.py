"""An HAProxy agent-check responder: a graded signal beside the binary health check.

HAProxy connects to the agent port every ``agent-inter`` and reads one line: ``up 40%`` sets the
server's weight to 40 % of its configured weight (with ``balance leastconn`` a node with less
room gets proportionally fewer new connections), ``drain`` sends it no new connection while
keeping the existing ones, ``down#reason`` takes it out. ``drain`` is an administrative state
that HAProxy keeps until the agent says ``ready``, so every serving reply starts with it
(``ready up 40%``): without it a node whose drain was undone would never get a client again.
The reply is computed by :func:`agent_reply` (pure) from the same health report as
``/healthcheck``.
"""

from __future__ import annotations

import asyncio
import logging

from ..health.monitor import Report

logger = logging.getLogger(__name__)

MIN_WEIGHT_PERCENT = 1  # a node with room is never at weight 0, which HAProxy treats as drain


def spare_capacity(report: Report) -> float:
    """Return the node's room for new connections, 0..1, from the tightest signal."""
    spares = [1.0]
    if report.usage is not None and report.threshold > 0:
        spares.append(1.0 - report.usage / report.threshold)
    if report.max_connections:
        spares.append(1.0 - report.connections / report.max_connections)
    return max(0.0, min(spares))


def agent_reply(report: Report, *, draining: bool, stale: bool) -> str:
    """Return the agent protocol line for ``report`` (without the newline)."""
    if draining:
        return "drain"
    if stale:
        return "down#health sampler stale"
    if not report.healthy:
        return f"ready up {MIN_WEIGHT_PERCENT}%"
    return f"ready up {max(MIN_WEIGHT_PERCENT, round(100 * spare_capacity(report)))}%"


async def serve_agent(host: str, port: int, reply) -> None:
    """Answer every connection to ``host:port`` with ``reply()`` and close it, forever."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write((reply() + "\n").encode("ascii"))
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, host, port)
    logger.info("HAProxy agent answering on %s:%s", host, port)
    async with server:
        await server.serve_forever()
