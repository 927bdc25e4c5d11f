"""Hysteresis edges, the verdict's order, and when a sampler is stale."""

import pytest

from timer.health.decision import (
    DRAINING,
    OK,
    OVERLOADED,
    REASONS,
    STALE,
    stale_after,
    still_full,
    verdict,
)


@pytest.mark.parametrize(
    "was_full, level, expected",
    [
        # threshold 0.6, recovery level 0.55
        (False, 0.0, False),
        (False, 0.5999, False),
        (False, 0.6, True),  # at the threshold is full
        (False, 0.9, True),
        (True, 0.6, True),
        (True, 0.58, True),  # between the levels: stays full
        (True, 0.55, True),  # at the recovery level: still full
        (True, 0.5499, False),  # only below it recovers
        (False, 0.58, False),  # between the levels: stays with room
        (True, None, False),  # unknown usage never makes a node full
    ],
)
def test_still_full__hysteresis_edges(was_full, level, expected):
    """Full at or above the threshold; once full, until strictly below the recovery level."""
    assert still_full(was_full, level, 0.6, 0.55) is expected


@pytest.mark.parametrize(
    "draining, stale, full, status",
    [
        (False, False, False, OK),
        (False, False, True, OVERLOADED),
        (False, True, True, STALE),
        (True, True, True, DRAINING),
    ],
)
def test_verdict__order(draining, stale, full, status):
    """Draining wins over a stale sampler, which wins over load."""
    answer = verdict(draining=draining, stale=stale, full=full)
    assert (answer.status, answer.reason) == (status, REASONS[status])


def test_reasons__texts_the_load_balancer_sees():
    """The body texts are the documented ones."""
    assert REASONS == {
        OK: "ok",
        OVERLOADED: "server is overloaded",
        DRAINING: "draining",
        STALE: "sampler is stale",
    }


@pytest.mark.parametrize("interval, expected", [(1.0, 3.0), (0.1, 2.0), (5.0, 15.0)])
def test_stale_after__three_intervals_at_least_two_seconds(interval, expected):
    """A sampler is stale after three missed intervals, and never sooner than 2 s."""
    assert stale_after(interval) == expected
