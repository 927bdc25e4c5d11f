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

from .node import get_node

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5  # after the last close frame, time for the close handshakes to complete


def install_sigterm_drain(reactor) -> None:
    """Replace daphne's SIGTERM handler (call once the reactor runs, in its loop)."""
    loop = asyncio.get_event_loop()
    terms = 0

    def on_sigterm() -> None:
        nonlocal terms
        terms += 1
        if terms > 1:
            logger.warning("second SIGTERM: stopping now")
            reactor.stop()
            return
        loop.create_task(_drain_then_stop(reactor), name="wstime:sigterm")

    loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    logger.info("SIGTERM drains node %s (deadline %ss)", get_node().name,
                get_node().config.drain_deadline)


async def _drain_then_stop(reactor) -> None:
    node = get_node()
    deadline = node.config.drain_deadline
    reactor.callLater(deadline, _stop, reactor, "drain deadline reached")
    try:
        await node.ensure_started()
        state = node.start_drain("signal")
        await asyncio.wait_for(asyncio.shield(state.task), timeout=deadline - FLUSH_SECONDS)
        await asyncio.sleep(FLUSH_SECONDS)
    except Exception:
        logger.exception("node=%s drain failed; stopping anyway", node.name)
    _stop(reactor, "drained")


def _stop(reactor, why: str) -> None:
    if reactor.running:
        logger.warning("node=%s event=exit reason=%s", get_node().name, why)
        reactor.stop()
