"""The health policy from the database, cached in the process's monitor.

The health check never queries the database. Instead the sampler task reloads the policy every
``WSTIME_POLICY_CACHE_SECONDS`` (default 2 s) through ``database_sync_to_async``, so an admin edit
reaches every node within that time, without a restart. A save or delete made in this process
applies here at once, after its transaction commits.

A database that cannot be read keeps the last policy: every node shares the database, so making
that a reason to fail the health check would take the whole service down. Any other error while
loading (a row the code cannot apply, a bug) also keeps the last policy: it is logged once per
episode, with its traceback, and its type shows in the health JSON (``policy_error``); it never
stops the sampler that runs this refresh.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.db import DatabaseError, transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from ..config.loader import config
from ..core.health_policy import Policy, resolve_policy
from .monitor import HealthMonitor
from .runtime import get_monitor, settings_policy

logger = logging.getLogger(__name__)

# Whether the last policy read reached the database (None: not tried yet), for the health JSON.
_database_readable: bool | None = None
# The type of the error that made the last policy read fail, if it was not a database error.
_policy_error: str | None = None
# The node whose policy this process's monitor holds, named by its refresh task when it starts.
_serving_node: str | None = None


def database_state() -> str:
    """Return ``up``, ``down`` or ``unknown``: the database as the last policy read found it."""
    return {None: "unknown", True: "up", False: "down"}[_database_readable]


def policy_error() -> str | None:
    """Return the type name of the error of the last policy read, if not a database error."""
    return _policy_error


def load_policy(node_name: str, settings: Policy) -> Policy:
    """Read the default row and ``node_name``'s row (one query) and resolve the policy."""
    from ..models import HealthPolicy

    rows = {
        row.node: row.as_policy() for row in HealthPolicy.objects.filter(node__in={"", node_name})
    }
    return resolve_policy(settings, rows.get(""), rows.get(node_name) if node_name else None)


async def refresh_forever(monitor: HealthMonitor, node_name: str, every: float) -> None:
    """Reload the policy into ``monitor`` now and then every ``every`` seconds, until cancelled."""
    global _database_readable, _policy_error, _serving_node
    _serving_node = node_name
    load = database_sync_to_async(load_policy)
    failing = False
    while True:
        try:
            policy = await load(node_name, settings_policy(config()))
        except DatabaseError as exc:
            _database_readable, _policy_error = False, None
            if not failing:
                logger.warning(
                    "node=%s cannot read the health policy (%s); keeping the last one",
                    node_name,
                    type(exc).__name__,
                )
            failing = True
        except Exception as exc:
            if _policy_error != type(exc).__name__ or not failing:
                logger.exception(
                    "node=%s cannot load the health policy; keeping the last one", node_name
                )
            _policy_error = type(exc).__name__
            failing = True
        else:
            _database_readable, _policy_error = True, None
            if failing:
                logger.info("node=%s reads the health policy again", node_name)
            failing = False
            if policy != monitor.policy:
                logger.info(
                    "node=%s health policy from %s: threshold %s, recovery %s, window "
                    "%ss, capacity %s, max connections %s, draining %s",
                    node_name,
                    policy.source,
                    policy.threshold,
                    policy.recovery_level,
                    policy.window,
                    policy.capacity or "from links",
                    policy.max_connections or "-",
                    policy.draining,
                )
                monitor.policy = policy
        await asyncio.sleep(every)


@dataclass(frozen=True)
class DrainChange:
    """What :func:`set_draining` did, in words an operator reads."""

    node: str  # "" for every node (the default policy)
    draining: bool
    changed: bool  # False: an undo with no row to change
    default_drains: bool = False  # undone for one node, but the default policy drains every node

    @property
    def target(self) -> str:
        return f"node {self.node}" if self.node else "every node"

    @property
    def message(self) -> str:
        if not self.changed:
            return f"{self.target} was not draining."
        state = "draining" if self.draining else "no longer draining"
        return f"{self.target} is {state}; nodes apply it within their policy refresh."


def set_draining(
    node: str, draining: bool, *, in_force: Mapping[str, object] | None = None
) -> DrainChange:
    """Drain ``node`` (``""``: every node) through its health policy row, or undo it.

    The reversible drain of ``manage.py drain`` and the admin's cluster page. A node without a
    row of its own gets one copied from the default policy, so that only draining differs;
    without a default row either, from ``in_force`` (the fields of the policy the node applies,
    as it published them), else from this process's settings.
    Raises :class:`~django.core.exceptions.ValidationError` for a name that cannot be a node's.
    """
    from django.forms.models import model_to_dict

    from ..models import HealthPolicy

    row = HealthPolicy.objects.filter(node=node).first()
    if row is None:
        if not draining:
            return DrainChange(node, draining, changed=False)
        default = HealthPolicy.objects.filter(node="").first()
        if default is not None:
            values = model_to_dict(default, exclude=["id", "node", "updated_at"])
        else:
            values = dict(in_force or {})
        row = HealthPolicy(**{**values, "node": node})
    row.draining = draining
    row.full_clean()
    row.save()
    default_drains = (
        not draining and bool(node) and HealthPolicy.objects.filter(node="", draining=True).exists()
    )
    return DrainChange(node, draining, changed=True, default_drains=default_drains)


def reload_here() -> None:
    """Load the policy into this process's monitor now (after an edit made in this process).

    Only where a node serves: a process that runs no node (``manage.py``) has no policy to apply.
    """
    if _serving_node is None:
        return
    try:
        get_monitor().policy = load_policy(_serving_node, settings_policy(config()))
    except DatabaseError:
        logger.warning(
            "could not reload the health policy after an edit; the sampler will", exc_info=True
        )


@receiver(post_save, sender="timer.HealthPolicy")
@receiver(post_delete, sender="timer.HealthPolicy")
def _policy_changed(**_: object) -> None:
    transaction.on_commit(reload_here)
