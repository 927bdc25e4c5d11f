"""SIGTERM drains the node, then stops the server, under ``daphne wstime.asgi:application``.

daphne stops its reactor on SIGTERM straight away, dropping every socket without a close frame
(clients see 1006). Once the reactor runs, this replaces that handler: the first SIGTERM starts a
drain (:meth:`timer.node.node.Node.start_drain`) and stops the reactor when it is done, or at
``WSTIME_DRAIN_DEADLINE`` at the latest; a second SIGTERM stops at once. SIGINT (Ctrl-C) keeps
daphne's immediate stop. :mod:`wstime.startup` installs it when daphne's reactor starts.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from .node import Node

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5  # after the last close frame, time for the close handshakes to complete


def install_sigterm_drain(reactor, node: Node) -> list[asyncio.Task[None]]:
    """Replace daphne's SIGTERM handler (call once the reactor runs, in its loop).

    Returns the list that holds the drain task once a SIGTERM started it: the process ends
    with it, and nothing else may drop the last reference to a running task.
    """
    loop = asyncio.get_event_loop()
    drains: list[asyncio.Task[None]] = []

    def on_sigterm() -> None:
        if drains:
            logger.warning("second SIGTERM: stopping now")
            reactor.stop()
            return
        drains.append(loop.create_task(_drain_then_stop(reactor, node), name="wstime:sigterm"))

    loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    logger.info("SIGTERM drains node %s (deadline %ss)", node.name, node.config.drain_deadline)
    return drains


async def _drain_then_stop(reactor, node: Node) -> None:
    deadline = node.config.drain_deadline
    reactor.callLater(deadline, _stop, reactor, node.name, "drain deadline reached")
    try:
        await node.ensure_started()
        state = node.start_drain("signal")
        await asyncio.wait_for(asyncio.shield(state.task), timeout=deadline - FLUSH_SECONDS)
        await asyncio.sleep(FLUSH_SECONDS)
    except Exception:
        logger.exception("node=%s drain failed; stopping anyway", node.name)
    _stop(reactor, node.name, "drained")


def _stop(reactor, node_name: str, why: str) -> None:
    if reactor.running:
        logger.warning("node=%s event=exit reason=%s", node_name, why)
        reactor.stop()
