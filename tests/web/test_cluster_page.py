"""The cluster page's rows, states and totals from published states (pure)."""

from __future__ import annotations

import pytest

from timer.node.cluster_state import HistoryEntry, NodeState
from timer.web.cluster_page import chart_limit, node_row, page_data, row_state, totals


@pytest.mark.parametrize(
    ("status", "reason", "age", "expected"),
    [
        ("ok", "ok", 0.5, ("ok", "ok")),
        ("overloaded", "server is overloaded", 2.9, ("overloaded", "server is overloaded")),
        ("draining", "draining", 1.0, ("draining", "draining")),
        ("stale", "sampler is stale", 0.2, ("stale", "sampler is stale")),  # its own sampler
        ("ok", "ok", 3.4, ("stale", "no report for 3 s")),  # stopped publishing
        ("draining", "draining", 12.0, ("stale", "no report for 12 s")),
        ("", "", 0.0, ("unknown", "")),
    ],
)
def test_row_state__own_status_unless_the_report_is_old(status, reason, age, expected):
    """A report older than ``stale_after`` is stale whatever it said."""
    state = NodeState(name="n", status=status, reason=reason, age=age)
    assert row_state(state, stale_after=3.0) == expected


@pytest.mark.parametrize(("interval", "limit"), [(1.0, 120), (0.5, 240), (0.1, 1200), (100.0, 2)])
def test_chart_limit__two_minutes_of_entries(interval, limit):
    assert chart_limit(interval) == limit


def test_node_row__history_as_triples_and_none_without_redis():
    """History entries become [ms, usage, connections]; None means no history is kept."""
    state = NodeState(name="n", usage=0.123456, connections=3, reported_at_ms=5, age=0.25)
    row = node_row(state, [HistoryEntry(1, None, 2), HistoryEntry(2, 0.5, 3)], stale_after=3)
    assert row["history"] == [[1, None, 2], [2, 0.5, 3]]
    assert (row["usage"], row["age"], row["reported_at_ms"]) == (0.1235, 0.25, 5)
    assert node_row(state, None, stale_after=3)["history"] is None


def test_totals__connections_limits_and_states():
    """The limit is summed only when every node has one."""
    rows = [
        node_row(NodeState(name=n, status=s, connections=c, max_connections=m), [], stale_after=3)
        for n, s, c, m in [("a", "ok", 5, 10), ("b", "ok", 7, 20), ("c", "draining", 1, 30)]
    ]
    assert totals(rows) == {
        "nodes": 3,
        "connections": 13,
        "max_connections": 60,
        "accepting": 2,
        "by_state": {"ok": 2, "draining": 1},
    }
    rows.append(node_row(NodeState(name="d", status="overloaded"), [], stale_after=3))
    assert totals(rows)["max_connections"] is None
    assert totals([])["max_connections"] is None


def test_page_data__rows_in_order_with_their_histories():
    states = [NodeState(name="a"), NodeState(name="b")]
    data = page_data(states, {"a": [HistoryEntry(1, 0.1, 1)]}, stale_after=3, source="redis")
    assert [row["name"] for row in data["nodes"]] == ["a", "b"]
    assert data["nodes"][1]["history"] == []
    assert (data["source"], data["totals"]["nodes"]) == ("redis", 2)
