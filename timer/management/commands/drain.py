"""``manage.py drain``: drain one node or every node through the health policy, or undo it.

This is the reversible drain (the same as ticking "draining" in Django admin): within
WSTIME_POLICY_CACHE_SECONDS the node answers /healthcheck with 503 ``draining`` and refuses new
handshakes with 503; after WSTIME_DRAIN_NOTICE it closes its connections with 1012 over
WSTIME_DRAIN_WINDOW. ``--undo`` lets it take connections again. SIGTERM drains too, for good.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.forms.models import model_to_dict

from timer.models import HealthPolicy


class Command(BaseCommand):
    help = "Drain a node (--node NAME) or every node (--all) through the health policy."

    def add_arguments(self, parser: CommandParser) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--node", help="the node's name, as it logs it at start")
        target.add_argument("--all", action="store_true", help="every node (the default policy)")
        parser.add_argument("--undo", action="store_true", help="stop draining")

    def handle(self, *args: Any, node: str | None, all: bool, undo: bool,  # noqa: A002
               **options: Any) -> None:
        draining = not undo
        name = "" if all else node
        row = HealthPolicy.objects.filter(node=name).first()
        if row is None:
            if undo:
                self.stdout.write(f"{_what(name)} was not draining.")
                return
            # A node's own row starts as a copy of the default policy, so only draining differs.
            default = HealthPolicy.objects.filter(node="").first()
            values = model_to_dict(default, exclude=["id", "node", "updated_at"]) if default else {}
            row = HealthPolicy(**{**values, "node": name})
        row.draining = draining
        try:
            row.full_clean()
        except Exception as exc:  # ValidationError: a node name that cannot be one
            raise CommandError(f"cannot drain {_what(name)}: {exc}") from None
        row.save()
        state = "draining" if draining else "no longer draining"
        self.stdout.write(f"{_what(name)} is {state}; nodes apply it within their policy refresh.")
        if undo and not all and HealthPolicy.objects.filter(node="", draining=True).exists():
            self.stdout.write("Note: the default policy still drains every node (drain --all --undo).")


def _what(name: str) -> str:
    return f"node {name}" if name else "every node"
