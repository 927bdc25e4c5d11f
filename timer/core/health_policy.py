"""The health policy: what counts as full, and whether the node is draining.

The values come from the settings (``WSTIME_HEALTH_*``) until the database holds a policy row
(Django admin): a default row for every node, and optional rows for one node each.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

SOURCE_SETTINGS = "settings"
SOURCE_DEFAULT_ROW = "default policy"
SOURCE_NODE_ROW = "node policy"


@dataclass(frozen=True)
class Policy:
    """The rules the health decision applies (see the README for each field).

    The values a node takes from its settings have no default here: they are written once, in
    the settings table (``timer.config.loader.SETTINGS``), and ``settings_policy`` copies them in.
    """

    threshold: float  # usage at or above which the node is full
    recovery_margin: float  # a full node is not full again until below threshold - this
    window: float  # seconds of usage averaged
    max_connections: int | None  # open WebSockets at which the node is full; None: none
    capacity: int | None = None  # bits/s for the whole node; None: link speeds, then the setting
    draining: bool = False
    source: str = SOURCE_SETTINGS

    @property
    def recovery_level(self) -> float:
        """Usage below which a full node reports room again."""
        return self.threshold - self.recovery_margin


def policy_problems(
    *,
    threshold: float,
    recovery_margin: float,
    window: float,
    capacity: int | None,
    max_connections: int | None,
) -> dict[str, str]:
    """Return ``{field: what is wrong}`` for values a policy must not hold; empty when valid."""
    problems: dict[str, str] = {}
    if not 0 < threshold <= 1:
        problems["threshold"] = "The threshold must be greater than 0 and at most 1 (1 = 100 %)."
    elif not 0 < threshold - recovery_margin < threshold:
        problems["recovery_margin"] = (
            f"The recovery level (threshold - margin = {threshold - recovery_margin:.3g}) must be "
            f"greater than 0 and below the threshold: use a margin greater than 0 and smaller "
            f"than {threshold:.3g}."
        )
    if not window > 0:
        problems["window"] = "The window must be a positive number of seconds."
    if capacity is not None and capacity <= 0:
        problems["capacity"] = "The capacity must be a positive number of bits per second."
    if max_connections is not None and max_connections <= 0:
        problems["max_connections"] = "The connection limit must be at least 1, or left empty."
    return problems


def resolve_policy(settings: Policy, default_row: Policy | None, node_row: Policy | None) -> Policy:
    """Return the policy a node applies.

    A node's own row replaces the default row entirely, except that draining set on the default
    row drains every node (so "drain everything" is one tick box). Without rows: the settings.
    """
    chosen = node_row or default_row or settings
    draining = bool((node_row and node_row.draining) or (default_row and default_row.draining))
    return replace(chosen, draining=draining)
