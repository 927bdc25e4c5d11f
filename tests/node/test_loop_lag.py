"""The event-loop lag record fed literal lags, and its watcher on an injected clock."""

from __future__ import annotations

import asyncio
import itertools
import math

import pytest

from timer.node.loop_lag import LagRecord, bucket_percentile, late_by, watch

MS = 1e-3


@pytest.mark.parametrize(
    "asked_at, period, woke_at, expected",
    [
        (10.0, 50 * MS, 10.0 + 50 * MS, 0.0),  # on time
        (10.0, 50 * MS, 10.0 + 350 * MS, 300 * MS),  # 300 ms late
        (10.0, 50 * MS, 10.0 + 49 * MS, 0.0),  # a clock that woke early is not negative lag
    ],
)
def test_late_by__lag_past_the_deadline(asked_at, period, woke_at, expected):
    """The lag is the wake-up time past asked_at + period, never below zero."""
    assert late_by(asked_at, period, woke_at) == pytest.approx(expected)


@pytest.mark.parametrize(
    "lags, p, expected",
    [
        ([], 99, None),  # nothing recorded
        ([0.4 * MS] * 100, 50, 1 * MS),  # the bucket's upper bound
        ([0.4 * MS] * 99 + [300 * MS], 99, 1 * MS),  # one stall in 100 stays above p99
        ([0.4 * MS] * 98 + [300 * MS] * 2, 99, 0.5),  # two do not
        ([0.4 * MS] * 98 + [300 * MS] * 2, 50, 1 * MS),
        ([20.0], 50, 20.0),  # past the last bound: the exact max
    ],
)
def test_lag_record__percentiles_are_bucket_bounds(lags, p, expected):
    """A percentile is the upper bound of the bucket holding its rank; past the last, the max."""
    record = LagRecord()
    for lag in lags:
        record.add(lag)
    assert record.percentile(p) == (None if expected is None else pytest.approx(expected))


def test_lag_record__count_sum_max_and_cumulative_buckets():
    """Cumulative counts end with every sample at +Inf; sum and max are exact."""
    record = LagRecord(bounds=(0.01, 0.1))
    for lag in (0.005, 0.05, 0.05, 3.0, -1.0):
        record.add(lag)
    assert record.cumulative() == [(0.01, 2), (0.1, 4), (math.inf, 5)]
    assert record.count == 5
    assert record.total == pytest.approx(3.105)
    assert record.max == 3.0


@pytest.mark.parametrize("bounds", [(), (0.1, 0.01)])
def test_lag_record__refuses_bounds_out_of_order(bounds):
    """Buckets need increasing upper bounds."""
    with pytest.raises(ValueError, match="increasing"):
        LagRecord(bounds=bounds)


@pytest.mark.parametrize(
    "before, after, p, expected",
    [
        # Two scrapes of the histogram; the difference is what happened between them.
        (
            [(0.01, 100), (0.25, 100), (math.inf, 100)],
            [(0.01, 200), (0.25, 200), (math.inf, 200)],
            99,
            0.01,
        ),
        (
            [(0.01, 100), (0.25, 100), (math.inf, 100)],
            [(0.01, 190), (0.25, 200), (math.inf, 200)],
            99,
            0.25,
        ),
        (
            [(0.01, 100), (0.25, 100), (math.inf, 100)],
            [(0.01, 190), (0.25, 190), (math.inf, 200)],
            99,
            math.inf,
        ),
        ([(0.01, 100), (math.inf, 100)], [(0.01, 100), (math.inf, 100)], 99, None),  # no samples
    ],
)
def test_bucket_percentile__of_the_difference_of_two_scrapes(before, after, p, expected):
    """A scraper reads the percentile of the time between two scrapes from their difference."""
    delta = [(bound, a - b) for (bound, b), (_, a) in zip(before, after, strict=True)]
    assert bucket_percentile(delta, p) == expected


async def test_watch__records_each_wake_up_on_the_injected_clock():
    """The watcher records how late each sleep ended, by the clock it was given."""
    # asked, woke: 0 s, 300 ms, then 0 s late ever after
    times = itertools.chain([0.0, 0.0, 1.0, 1.3], itertools.repeat(2.0))
    record = LagRecord()
    task = asyncio.create_task(watch(record, period=0.0, clock=lambda: next(times)))
    while record.count < 3:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert record.count >= 3 and record.max == pytest.approx(0.3)
