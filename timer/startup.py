"""What a node process does once, when its ASGI application is imported."""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from django.core import checks
from django.core.management import call_command

from .node import get_node

logger = logging.getLogger(__name__)


def start_process() -> None:
    """Report failed system checks, prepare the embedded database, and name the node."""
    for message in checks.run_checks():
        level = logging.ERROR if message.is_serious() else logging.WARNING
        logger.log(level, "system check %s: %s %s", message.id, message.msg, message.hint or "")
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        # The embedded database belongs to this checkout: create it so that a bare node works.
        Path(database["NAME"]).parent.mkdir(parents=True, exist_ok=True)
        call_command("migrate", interactive=False, verbosity=0)
    get_node()
