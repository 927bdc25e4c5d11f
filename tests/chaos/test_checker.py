"""The checker's rules on hand-written histories: each kind of violation, and clean runs."""

from __future__ import annotations

import pytest

from chaos.checker import (
    LinkFault,
    check_continuity,
    check_logs,
    check_quiescence,
    check_recovery,
    recovery_times,
)


def conn(
    client: str,
    attempt: int,
    frames: list[tuple[str, int, float]],
    *,
    session="s",
    opened: float | None = None,
    ended: float | None = None,
) -> dict:
    if opened is None:
        opened = frames[0][2] - 1 if frames else 0.0
    return {
        "id": session,
        "client": client,
        "attempt": attempt,
        "started": opened,
        "opened": opened,
        "ended": ended,
        "frames": frames,
        "bad_frames": [],
    }


def kinds(violations) -> list[str]:
    return sorted(v.kind for v in violations)


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        ([("b", 5, 10.0), ("b", 6, 11.0)], []),  # last seen 4: +1 (clean close)
        ([("b", 6, 10.0)], []),  # +2 (crash): the bound
        ([("b", 7, 10.0)], ["skip"]),  # +3
        ([("b", 4, 10.0)], ["repeat"]),  # the last frame again
        ([("b", 2, 10.0)], ["repeat"]),
        ([("b", 0, 10.0)], ["reset"]),
    ],
)
def test_check_continuity__first_frame_after_a_reconnect(second, expected):
    """l < f <= l + 2 across two connections of one session."""
    first = conn("c", 0, [("a", n, float(n)) for n in range(5)], ended=4.5)
    assert kinds(check_continuity([first, conn("c", 1, second)])) == expected


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ([0, 1, 2, 3], []),
        ([0, 1, 3], ["gap-in-connection"]),
        ([0, 1, 1], ["repeat-in-connection"]),
        ([1, 2], ["bad-start"]),
    ],
)
def test_check_continuity__within_one_connection(counts, expected):
    """Frames of one connection go +1, from 0 for a new session."""
    history = [conn("c", 0, [("a", n, float(i)) for i, n in enumerate(counts)])]
    assert kinds(check_continuity(history)) == expected


def test_check_continuity__each_connection_in_between_may_cost_one_count():
    """Connections that opened and died before showing a frame each allow one more count."""
    first = conn("c", 0, [("a", n, float(n)) for n in range(5)], ended=4.5)
    silent = [conn("c", 1, [], opened=5.0, ended=6.0), conn("c", 2, [], opened=6.5, ended=7.0)]
    refused = {**conn("c", 3, [], opened=7.2, ended=7.3), "opened": None}
    assert kinds(check_continuity([first, *silent, refused, conn("c", 4, [("b", 8, 10.0)])])) == []
    assert kinds(check_continuity([first, *silent, refused, conn("c", 4, [("b", 9, 10.0)])])) == [
        "skip"
    ]
    assert kinds(check_continuity([first, refused, conn("c", 4, [("b", 7, 10.0)])])) == ["skip"]


def test_check_continuity__two_connections_ticking_one_session():
    """An older connection that keeps ticking counts the newer one showed is an overlap."""
    old = conn("c", 0, [("a", 0, 0.0), ("a", 1, 1.0), ("a", 2, 2.0), ("a", 3, 3.5), ("a", 4, 4.5)])
    new = conn("c-dup", 0, [("b", 3, 3.0), ("b", 4, 4.0)])
    assert kinds(check_continuity([old, new])) == ["overlap"]


def test_check_continuity__takeover_without_overlap():
    """A takeover whose first frame follows the older connection's last is clean."""
    old = conn("c", 0, [("a", 0, 0.0), ("a", 1, 1.0), ("a", 2, 2.0)], ended=2.2)
    new = conn("c-dup", 0, [("b", 3, 3.0), ("b", 4, 4.0)])
    assert check_continuity([old, new]) == []


def test_check_continuity__skip_after_a_faulty_link_is_told_apart():
    """Frames lost on a cut client link make a skip of their own kind."""
    first = conn("c", 0, [("a", n, float(n)) for n in range(5)], ended=8.0)
    second = conn("c", 1, [("b", 9, 10.0)])
    assert kinds(check_continuity([first, second], [LinkFault("a", 4.2, 7.0)])) == [
        "skip-after-link-fault"
    ]
    assert kinds(check_continuity([first, second], [LinkFault("b", 4.2, 7.0)])) == ["skip"]
    # A connection that showed nothing, open while some node's client link was cut.
    clean_end = conn("c", 0, [("a", n, float(n)) for n in range(5)], ended=4.5)
    empty = conn("c", 1, [], opened=5.0, ended=8.0)
    assert kinds(check_continuity([clean_end, empty, second], [LinkFault("b", 6.0, 7.0)])) == [
        "skip-after-link-fault"
    ]
    assert kinds(check_continuity([clean_end, empty, second])) == ["skip"]


def test_check_recovery__every_session_ticks_after_healing():
    """A session silent after healing, or whose every client got 4001, is reported."""
    ticking = conn("c", 0, [("a", 0, 1.0), ("a", 1, 12.0)], session="ok")
    silent = conn("d", 0, [("a", 0, 1.0)], session="silent")
    lost = conn("e", 0, [("a", 0, 1.0)], session="abandoned")
    outcomes = {"ok": ["running"], "silent": ["running"], "abandoned": ["taken-over", "taken-over"]}
    violations = check_recovery(
        [ticking, silent, lost], healed_at=10.0, deadline=20.0, outcomes=outcomes
    )
    assert {(v.kind, v.id) for v in violations} == {
        ("no-recovery", "silent"),
        ("abandoned", "abandoned"),
    }
    assert recovery_times([ticking, silent], healed_at=10.0) == [2.0]


def test_check_quiescence__one_live_connection_per_session():
    """Two live connections of one session at quiescence are a violation."""
    assert kinds(check_quiescence({"a": 1, "b": 2, "c": 0})) == ["duplicate-live"]


def test_check_logs__one_violation_per_traceback_with_its_message():
    """A chained traceback counts once; its message and exception line are shown."""
    log = "\n".join(
        [
            "2026-11-28 02:00:00,000 INFO timer.node.node started",
            "2026-11-28 02:00:01,000 ERROR timer.node.node tick failed",
            "Traceback (most recent call last):",
            '  File "x.py", line 1, in f',
            "KeyError: 1",
            "",
            "During handling of the above exception, another exception occurred:",
            "",
            "Traceback (most recent call last):",
            '  File "x.py", line 2, in g',
            '127.0.0.1:5 - - [28/Nov/2026:02:00:01] "GET /livez" 200 2',
            "TypeError: bad",
            "2026-11-28 02:00:02,000 INFO timer.node.node still here",
        ]
    )
    [violation] = check_logs({"node-1": log})
    assert "tick failed" in violation.detail and "TypeError: bad" in violation.detail
    assert check_logs({"node-1": "2026-11-28 02:00:00,000 INFO timer.node.node started\n"}) == []
