"""The storm's figures and verdicts from literal inputs: /metrics text, recoveries, a result."""

from __future__ import annotations

import copy
import math

import pytest

from bench import report
from bench.loop_lag import lag_buckets, lag_figures
from bench.stats import Recovery, resume_kinds
from bench.storm import counter_growth, refused_for_good, server_changes

METRICS = """\
# HELP wstime_event_loop_lag_seconds How late the event loop woke a task sleeping 50 ms.
# TYPE wstime_event_loop_lag_seconds histogram
wstime_event_loop_lag_seconds_bucket{le="0.01",node="a"} %d
wstime_event_loop_lag_seconds_bucket{le="0.25",node="a"} %d
wstime_event_loop_lag_seconds_bucket{le="+Inf",node="a"} %d
wstime_event_loop_lag_seconds_count{node="a"} %d
wstime_event_loop_lag_seconds_sum{node="a"} %s
"""


def _scrape(at_10ms: int, at_250ms: int, total: int, seconds: float):
    return lag_buckets(METRICS % (at_10ms, at_250ms, total, total, seconds))


def test_lag_buckets__reads_the_histogram_of_a_scrape():
    """Bounds (with +Inf) and cumulative counts, and the sum; other lines are ignored."""
    assert _scrape(5, 7, 8, 1.5) == ([(0.01, 5.0), (0.25, 7.0), (math.inf, 8.0)], 1.5)
    assert lag_buckets('wstime_open_connections{node="a"} 3\n') == ([], 0.0)


@pytest.mark.parametrize(
    "after, expected",
    [
        # 100 samples between the scrapes, all under 10 ms.
        (
            _scrape(110, 110, 110, 0.5),
            {
                "samples": 100,
                "mean_ms": 5.0,
                "p50_ms": 10.0,
                "p99_ms": 10.0,
                "max_ms": 10.0,
                "over_last_bound": False,
            },
        ),
        # 2 of 100 between 10 and 250 ms: p99 is in that bucket.
        (
            _scrape(108, 110, 110, 0.5),
            {
                "samples": 100,
                "mean_ms": 5.0,
                "p50_ms": 10.0,
                "p99_ms": 250.0,
                "max_ms": 250.0,
                "over_last_bound": False,
            },
        ),
        # One stall past the last bound: the max is unknown but flagged.
        (
            _scrape(109, 109, 110, 20.0),
            {
                "samples": 100,
                "mean_ms": 200.0,
                "p50_ms": 10.0,
                "p99_ms": 10.0,
                "max_ms": None,
                "over_last_bound": True,
            },
        ),
    ],
)
def test_lag_figures__of_the_time_between_two_scrapes(after, expected):
    """Only the samples between the scrapes count; percentiles are bucket bounds in ms."""
    assert lag_figures(_scrape(10, 10, 10, 0.0), after) == expected


def test_lag_figures__a_failed_scrape_gives_no_figures():
    """Without one of the scrapes there is nothing to subtract."""
    assert lag_figures(([], 0.0), _scrape(1, 1, 1, 0.0))["samples"] == 0


def test_counter_growth__only_the_families_asked_for_and_that_moved():
    """Samples that grew are shown with their growth; others, and other families, are not."""
    before = {'wstime_sessions_opened_total{kind="resumed"}': 5.0, "wstime_takeovers_total": 1.0}
    after = {
        'wstime_sessions_opened_total{kind="resumed"}': 305.0,
        "wstime_takeovers_total": 1.0,
        "wstime_open_connections": 400.0,
    }
    assert counter_growth(before, after) == {'wstime_sessions_opened_total{kind="resumed"}': 300.0}
    assert counter_growth(None, after) == {}


def _recovery(last_n: int, first_n: int | None) -> Recovery:
    return Recovery(
        last_n=last_n,
        reconnect_s=None if first_n is None else 1.0,
        first_n=first_n,
        attempts=1,
        reopened_at=None,
    )


@pytest.mark.parametrize(
    "last_n, first_n, kind",
    [
        (41, 42, "resumed"),
        (41, 43, "resumed"),
        (41, 41, "repeated"),
        (41, 30, "repeated"),
        (41, 0, "reset"),
        (41, 50, "skipped"),
        (41, None, "never"),
        (0, 0, "repeated"),
    ],
)
def test_resume_kinds__first_count_after_the_kill_against_the_last(last_n, first_n, kind):
    """+1 or +2 is resumed; a count seen already is repeated; 0 again is a reset."""
    kinds = resume_kinds([_recovery(last_n, first_n)])
    assert kinds[kind] == 1 and sum(kinds.values()) == 1


def test_refused_for_good__4001_or_no_frame_by_the_end():
    """A 4001 loses the client (the page stops), even if a frame came; so does no frame."""
    found = [
        Recovery(last_n=5, reconnect_s=1.0, first_n=6, attempts=1, reopened_at=0.5),
        Recovery(
            last_n=5,
            reconnect_s=2.0,
            first_n=6,
            attempts=2,
            reopened_at=1.5,
            failures=("closed-4001",),
        ),
        Recovery(
            last_n=5,
            reconnect_s=None,
            first_n=None,
            attempts=3,
            reopened_at=None,
            failures=("http-502", "timeout"),
        ),
        Recovery(last_n=5, reconnect_s=None, first_n=None, attempts=0, reopened_at=None),
    ]
    assert refused_for_good(found) == {"closed-4001": 1, "timeout": 1, "no failed attempt": 1}


def test_server_changes__haproxy_up_and_down_lines_only():
    """Server changes and a backend left with no server are kept once each; requests are not."""
    log = (
        "[WARNING]  (7) : Server wstime_nodes/node2 is DOWN, reason: Layer4 connection "
        'problem, info: "Connection refused", check duration: 0ms.\n'
        "127.0.0.1:5000 [28/Nov/2026:10:00:00.000] wstime wstime_nodes/node1 0/0/1/2/3 101\n"
        "Server wstime_nodes/node2 is DOWN, reason: Layer4 connection problem, info: "
        '"Connection refused", check duration: 0ms.\n'
        "[ALERT]    (7) : backend 'wstime_nodes' has no server available!\n"
    )
    assert server_changes(log) == [
        "Server wstime_nodes/node2 is DOWN, reason: Layer4 connection problem, info: "
        '"Connection refused", check duration: 0ms.',
        "backend 'wstime_nodes' has no server available!",
    ]


STORM = {
    "clients": 5000,
    "survivor_clients": 1000,
    "observe_s": 12.0,
    "killed": "bench-victim",
    "survivor": "bench-survivor",
    "before_kill": {"survivor's own": {"bench-survivor": 1000}, "victim's": {"bench-victim": 5000}},
    "recovery": {
        "affected": 5000,
        "resumed": 5000,
        "resumed_within_pct": 99.5,
        "within_s": 4.0,
        "reconnect_p50_ms": 1400.0,
        "reconnect_p90_ms": 2100.0,
        "reconnect_p99_ms": 3100.0,
        "reconnect_max_ms": 3900.0,
        "histogram": {"0-1 s": 10, "1-5 s": 4990, "never": 0},
        "reconnects_peak_per_100ms": 400,
        "failed_attempts": {"http-503": 12},
    },
    "resume_kinds": {"resumed": 5000, "repeated": 0, "reset": 0, "skipped": 0, "never": 0},
    "refused_for_good": {},
    "survivor_health": {
        "before_kill": {
            "requests": 20,
            "statuses": {"200": 20},
            "p50_ms": 2.0,
            "p99_ms": 3.0,
            "max_ms": 3.0,
        },
        "storm": {
            "requests": 200,
            "statuses": {"200": 200},
            "p50_ms": 20.0,
            "p99_ms": 180.0,
            "max_ms": 240.0,
        },
    },
    "survivor_loop_lag": {
        "before_kill": {"samples": 20, "p50_ms": 1.0, "p99_ms": 2.5, "max_ms": 2.5},
        "storm": {"samples": 200, "p50_ms": 25.0, "p99_ms": 250.0, "max_ms": 500.0},
    },
    "survivor_own_load": {
        "delivered_pct": 99.95,
        "dropped": 0,
        "jitter_p99_ms": 90.0,
        "continuity_breaks": 0,
    },
    "survivor_cpu_pct": 85.0,
    "survivor_cpu_peak_pct": 100.0,
    "survivor_cpu_before_kill_pct": 9.0,
    "redis_cpu_pct": 10.0,
    "haproxy_cpu_pct": 8.0,
    "machine_busy_pct": 190.0,
    "survivor_counters": {'wstime_sessions_opened_total{kind="resumed"}': 5000.0},
}


def _verdicts(**changes):
    storm = copy.deepcopy(STORM)
    for path, value in changes.items():
        *parents, key = path.split("__")
        target = storm
        for parent in parents:
            target = target[parent]
        target[key] = value
    return {
        v["target"].split(" ")[0] + " " + v["target"].split(" ")[1]: v["met"]
        for v in report.judge({"storm": storm})
    }


def test_judge__storm_targets_met():
    """Every storm target is judged, and all are met by figures inside them."""
    verdicts = report.judge({"storm": STORM})
    assert len(verdicts) == 6 and all(v["met"] is True for v in verdicts)
    assert all(v["where"] == "storm: 5,000 onto a node holding 1,000" for v in verdicts)


@pytest.mark.parametrize(
    "changes, missed",
    [
        ({"recovery__resumed_within_pct": 98.9}, ">= 99"),
        ({"resume_kinds__never": 3, "refused_for_good": {"http-503": 3}}, "none refused"),
        ({"resume_kinds__repeated": 1}, "no count"),
        ({"resume_kinds__reset": 1}, "no count"),
        ({"survivor_health__storm__p99_ms": 250.0}, "survivor /healthcheck"),
        ({"survivor_health__storm__statuses": {"200": 199, "503": 1}}, "survivor /healthcheck"),
        ({"survivor_loop_lag__storm__p99_ms": 500.0}, "survivor event-loop"),
        ({"survivor_own_load__delivered_pct": 99.8}, "survivor's own"),
    ],
)
def test_judge__each_storm_target_can_be_missed(changes, missed):
    """A figure past its target misses that target and no other."""
    verdicts = _verdicts(**changes)
    assert [name for name, met in verdicts.items() if met is not True] == [missed]


def test_judge__storm_not_measured_without_samples():
    """No /healthcheck answer or no lag sample is 'not measured', not a pass."""
    verdicts = _verdicts(survivor_health__storm__requests=0, survivor_loop_lag__storm__samples=0)
    assert verdicts["survivor /healthcheck"] is None and verdicts["survivor event-loop"] is None


def test_render__storm_section_with_its_figures():
    """The Markdown shows the distribution, the kinds of resumes, the survivor and its CPU."""
    result = {
        "started_utc": "2026-11-28T10:00:00+00:00",
        "storm": STORM,
        "options": {"rate": 500, "window": 25, "interval": 1, "health_rate": 5},
    }
    result["targets"] = report.judge(result)
    text = report.render(result)
    assert "## Failover storm (2 nodes + Redis + HAProxy)" in text
    assert (
        "| 5,000 | 1,400.0 / 2,100.0 / 3,100.0 / 3,900.0 | 99.50 % | 5,000 | 0 | 0 | 0 | 0 "
        "| 12 http-503 | 400 |" in text
    )
    assert "| storm | 20.0 / 180.0 / 240.0 | 25.0 / 250.0 / 500.0 | 85.0 (peak 100) |" in text
    assert "delivered 99.95 %" in text and "Redis 10.0 %" in text
    assert "| survivor event-loop lag p99 <= 250 ms (bucket bound) |" in text


@pytest.mark.parametrize(("p99_ms", "met"), [(10.0, True), (25.0, False)])
def test_judge__a_nodes_loop_lag_at_steady_load(p99_ms, met):
    """The node's own event-loop lag over the window: met at the 10 ms bucket, missed above."""
    row = {
        "server": "wstime",
        "connections": 10_000,
        "load": {"delivered_pct": 100.0, "jitter_p99_ms": 5.0, "failed": 0, "dropped": 0},
        "kb_per_conn": 20.0,
        "loop_lag": {"samples": 500, "p99_ms": p99_ms},
    }
    [verdict] = [v for v in report.judge({"capacity": [row]}) if "loop lag" in v["target"]]
    assert verdict["met"] is met and verdict["value"] == f"{p99_ms:.1f} ms of 500 samples"
    assert verdict["where"] == "wstime, 10,000 conns"
