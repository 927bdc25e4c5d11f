"""The rebalancing benchmark's arithmetic over recorded moves (pure)."""

from __future__ import annotations

from bench.rebalance import move_figures, render


def test_move_figures__exactness_repeats_and_spread():
    """Deltas by value, clients moved twice, and reconnects per 100 ms slot."""
    start = 100.0
    moves = [  # (client, closed, reconnect started, first - last, from, to)
        (1, 101.00, 101.05, 1, "a", "b"),
        (2, 101.00, 101.07, 1, "a", "b"),
        (3, 101.00, 101.31, 2, "a", "b"),
        (1, 105.00, 105.02, 1, "b", "a"),
        (4, 101.00, 101.33, None, "a", ""),
    ]
    figures = move_figures(moves, start=start)
    assert figures["moved"] == 5 and figures["resumed_exactly"] == 3
    assert figures["first_frame_minus_last"] == {"1": 3, "2": 1, "unresumed": 1}
    assert figures["clients_moved_twice"] == 1
    assert figures["landed_on"] == {"b": 3, "a": 1, "": 1}
    # Slots 10 (two), 13 (two), 50 (one) over the 41 slots from the first to the last.
    assert (figures["busiest_slot"], figures["mean_per_slot"]) == (2, round(5 / 41, 2))
    assert (figures["reconnects_first_s"], figures["reconnects_last_s"]) == (1.05, 5.02)


def test_move_figures__nothing_moved():
    """A run without a move says so."""
    assert move_figures([], start=0.0) == {"moved": 0}


def test_render__a_readable_table():
    """The Markdown names the time to balance and the spread."""
    result = {
        "connections": 1000,
        "command": "python -m bench.rebalance",
        "started_utc": "t",
        "load_average": [0.5, 0.5, 0.5],
        "before": {"bench-a": 1000},
        "node_b_serving_after_s": 0.5,
        "within_pct": 10.0,
        "balanced_after_s": 39.2,
        "final": {"bench-a": 525, "bench-b": 475},
        "timeline": [(0.5, 1000, 0)],
        "moves": move_figures([(1, 1.0, 1.5, 1, "bench-a", "bench-b")], start=0.0),
    }
    text = render(result)
    assert "| split within 10 % of even after B's start | 39.2 s |" in text
    assert "mean / p99 / busiest" in text and "0.5:1000/0" in text
