"""What the admin's cluster page shows: rows, states and totals from published states. Pure.

A row's state is the node's own health status (ok, overloaded, draining, stale: its sampler
stopped) unless its report is older than ``stale_after`` (three publish intervals): then it is
``stale`` whatever it said, since the node stopped publishing. A node whose keys expired is
gone from Redis; the page's script keeps such a row as ``unreachable`` while it stays open.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # values only: the page's logic stays free of Redis
    from ..node.cluster_state import HistoryEntry, NodeState

STALE = "stale"
UNREACHABLE = "unreachable"  # set by the page's script for a row that vanished
CHART_SECONDS = 120.0  # how far back the charts go


def row_state(state: NodeState, *, stale_after: float) -> tuple[str, str]:
    """Return the row's state and reason: the node's own, or ``stale`` for an old report."""
    if state.age > stale_after:
        return STALE, f"no report for {state.age:.0f} s"
    return state.status or "unknown", state.reason


def chart_limit(interval: float) -> int:
    """How many history entries cover :data:`CHART_SECONDS` at one per ``interval``."""
    return max(2, round(CHART_SECONDS / interval))


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def node_row(
    state: NodeState, history: Iterable[HistoryEntry] | None, *, stale_after: float
) -> dict[str, Any]:
    """One node's row for the page's JSON; ``history`` None: none kept (no Redis)."""
    status, reason = row_state(state, stale_after=stale_after)
    return {
        "name": state.name,
        "version": state.version,
        "state": status,
        "reason": reason,
        "draining": state.draining,
        "connections": state.connections,
        "max_connections": state.max_connections,
        "usage": _round(state.usage),
        "threshold": state.threshold,
        "recovery_level": _round(state.recovery_level),
        "capacity_bits_per_second": state.capacity_bits_per_second,
        "sampler_age": _round(state.sampler_age, 2),
        "redis": state.redis,
        "age": round(state.age, 2),
        "reported_at_ms": state.reported_at_ms or None,
        "history": None
        if history is None
        else [[e.reported_at_ms, _round(e.usage), e.connections] for e in history],
    }


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The cluster's totals over ``rows``: connections, limits, and nodes by state."""
    limits = [row["max_connections"] for row in rows]
    by_state: dict[str, int] = {}
    for row in rows:
        by_state[row["state"]] = by_state.get(row["state"], 0) + 1
    return {
        "nodes": len(rows),
        "connections": sum(row["connections"] for row in rows),
        # Only when every node has a limit; one without makes the cluster's unbounded.
        "max_connections": sum(limits) if rows and None not in limits else None,
        "accepting": by_state.get("ok", 0),
        "by_state": by_state,
    }


def page_data(
    states: list[NodeState],
    histories: Mapping[str, list[HistoryEntry]] | None,
    *,
    stale_after: float,
    source: str,
) -> dict[str, Any]:
    """The JSON the page polls: ``source`` says where it came from (``redis`` or ``local``)."""
    rows = [
        node_row(
            s, None if histories is None else histories.get(s.name, []), stale_after=stale_after
        )
        for s in states
    ]
    return {"source": source, "stale_after": stale_after, "nodes": rows, "totals": totals(rows)}
