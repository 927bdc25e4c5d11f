"""Pure pacing of drains and load shedding."""

import random

import pytest

from timer.core.drain_plan import DrainPlan, close_reason, hint_from_reason, reconnect_hint_ms
from timer.core.shedding import Shedder


@pytest.mark.parametrize(
    "total, window, every, expected",
    [
        (0, 10, 0.1, []),
        (5, 10, 0.1, [1, 1, 1, 1, 1]),
        (250, 10, 0.1, [3] * 50 + [2] * 50),
        (7, 0.3, 0.1, [3, 2, 2]),
    ],
)
def test_drain_plan__batches_spread_evenly(total, window, every, expected):
    """Closes are split into at most window / every batches, sizes differing by one at most."""
    batches = DrainPlan(notice=3, window=window, deadline=25, batch_every=every).batches(total)
    assert batches == expected
    assert sum(batches) == total


def test_reconnect_hint__random_within_bounds_and_round_trips():
    """Hints are spread over [0, max] and can be read back from the close reason."""
    rng = random.Random(7)
    hints = [reconnect_hint_ms(2000, rng) for _ in range(500)]
    assert min(hints) >= 0 and max(hints) <= 2000
    assert len(set(hints)) > 300  # spread, not synchronised
    reason = close_reason("node restarting", 1234)
    assert hint_from_reason(reason) == 1234
    assert len(reason.encode()) <= 123
    assert hint_from_reason("bye") is None


def shedder(fraction: float = 0.01) -> Shedder:
    return Shedder(shed_level=0.85, fraction_per_round=fraction, window=10)


@pytest.mark.parametrize(
    "connections, usage, expected",
    [
        (1000, None, 0),  # unknown usage: never shed
        (1000, 0.5, 0),  # below the shed level
        (1000, 0.84, 0),
        (1000, 0.9, 10),  # 1 % per round
        (50, 0.9, 1),  # at least one while shedding
        (1000, 1.0, 10),
        (0, 0.95, 0),
    ],
)
def test_shedder__small_paced_fraction_above_the_shed_level(connections, usage, expected):
    """Shedding starts at the shed level and closes a small fraction per round."""
    assert shedder().decide(now=0, connections=connections, usage=usage, threshold=0.6) == expected


def test_shedder__never_aims_below_the_threshold():
    """An episode's budget stops where usage would fall to the threshold."""
    shed = shedder(fraction=0.2)
    counts = [shed.decide(now=t, connections=100 - 0, usage=0.9, threshold=0.6) for t in range(5)]
    assert counts == [20, 13, 0, 0, 0]  # budget 33: 0.9 * (100 - 33) / 100 = 0.603 >= 0.6
    assert 0.9 * (100 - sum(counts)) / 100 >= 0.6


def test_shedder__episode_ends_below_threshold_and_rearms():
    """Below the threshold the episode ends; overload that persists a window re-arms it."""
    shed = shedder(fraction=0.5)
    assert shed.decide(now=0, connections=10, usage=0.9, threshold=0.6) == 3  # budget 3
    assert shed.decide(now=1, connections=7, usage=0.9, threshold=0.6) == 0
    assert shed.decide(now=5, connections=7, usage=0.9, threshold=0.6) == 0  # within a window
    assert shed.decide(now=11, connections=7, usage=0.9, threshold=0.6) == 2  # re-armed: 7*(1/3)
    assert shed.decide(now=12, connections=5, usage=0.5, threshold=0.6) == 0  # over
    assert shed.budget is None
