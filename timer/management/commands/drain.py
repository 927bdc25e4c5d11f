"""``manage.py drain``: drain one node or every node through the health policy, or undo it.

This is the reversible drain (the same as ticking "draining" in Django admin): within
WSTIME_POLICY_CACHE_SECONDS the node answers /healthcheck with 503 ``draining`` and refuses new
handshakes with 503; after WSTIME_DRAIN_NOTICE it closes its connections with 1012 over
WSTIME_DRAIN_WINDOW. ``--undo`` lets it take connections again. SIGTERM drains too, for good.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...health.policy_store import set_draining


class Command(BaseCommand):
    help = "Drain a node (--node NAME) or every node (--all) through the health policy."

    def add_arguments(self, parser: CommandParser) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--node", help="the node's name, as it logs it at start")
        target.add_argument("--all", action="store_true", help="every node (the default policy)")
        parser.add_argument("--undo", action="store_true", help="stop draining")

    def handle(self, *args: Any, node: str | None, all: bool, undo: bool, **options: Any) -> None:
        name = "" if all else (node or "")
        try:
            change = set_draining(name, not undo)
        except ValidationError as exc:  # a node name that cannot be one
            what = f"node {name}" if name else "every node"
            raise CommandError(f"cannot drain {what}: {exc}") from None
        self.stdout.write(change.message)
        if change.default_drains:
            self.stdout.write(
                "Note: the default policy still drains every node (drain --all --undo)."
            )
