"""What a node process does once, when its ASGI application is imported."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys

from django.conf import settings
from django.core import checks
from django.core.management import call_command

from timer.node.descriptors import raise_soft_limit
from timer.node.node import get_node
from timer.node.shutdown import install_sigterm_drain
from timer.web.static_files import collect_static

logger = logging.getLogger(__name__)

_held: dict[str, object] = {}  # what the serving process keeps: the start task, the drain tasks


def start_when_serving() -> bool:
    """Under daphne, once its reactor runs: start the node's tasks and the SIGTERM drain.

    The node's sampler, ticker and agent then run from the start, not from the first request.
    Returns False outside daphne (tests, other servers), where the node starts on first use.
    """
    if "daphne.server" not in sys.modules:
        return False
    from twisted.internet import reactor

    def on_running() -> None:
        node = get_node()
        # Held here for the process's life: a task nothing references can vanish mid-run.
        _held["sigterm drains"] = install_sigterm_drain(reactor, node)
        _held["start"] = asyncio.get_event_loop().create_task(
            node.ensure_started(), name="wstime:start"
        )
        # Everything loaded so far (Django, the app, daphne) lives as long as the process:
        # moving it out of the collector's generations keeps full collections short.
        gc.collect()
        gc.freeze()

    # callWhenRunning fires during start-up; callLater(0) lands after the reactor has
    # installed its own signal handlers, which the drain then replaces.
    reactor.callWhenRunning(lambda: reactor.callLater(0, on_running))
    return True


def start_process() -> None:
    """Report failed system checks, prepare the embedded database and static files, name the node."""
    for message in checks.run_checks():
        level = logging.ERROR if message.is_serious() else logging.WARNING
        logger.log(level, "system check %s: %s %s", message.id, message.msg, message.hint or "")
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        # The embedded database belongs to this checkout (settings made its folder): create
        # its tables so that a bare node works.
        call_command("migrate", interactive=False, verbosity=0)
    collect_static()  # hashed names for {% static %}; a no-op when the build is current
    open_files = raise_soft_limit()  # before the node reads it (timer/node/descriptors.py)
    node = get_node()
    logger.info(
        "node=%s open-file limit %s: handshakes get 503 past %s connections",
        node.name,
        open_files,
        node.descriptor_limit,
    )
