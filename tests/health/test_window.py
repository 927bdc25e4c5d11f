"""The moving average: time-weighted, clipped at the window's edge, forgetting old intervals."""

import pytest

from timer.health.window import MovingAverage


def average_of(spans, now, window):
    average = MovingAverage()
    for start, end, value in spans:
        average.add(start, end, value)
    return average.average(now, window)


@pytest.mark.parametrize(
    "spans, now, window, expected",
    [
        ([], 10, 10, None),
        ([(0, 1, 0.5)], 1, 10, 0.5),  # before the window fills: what was measured
        ([(0, 5, 1.0), (5, 10, 0.0)], 10, 10, 0.5),
        ([(0, 1, 1.0), (1, 4, 0.0)], 4, 10, 0.25),  # weighted by duration
        ([(0, 10, 1.0), (10, 12, 0.0)], 12, 4, 0.5),  # the edge clips the first interval
        ([(0, 2, 1.0), (2, 3, 0.2)], 3, 2, 0.6),
        ([(0, 2, 1.0)], 20, 5, None),  # nothing inside the window
        ([(0, 1, 1.0), (3, 4, 0.0)], 4, 10, 0.5),  # a gap counts neither way
    ],
)
def test_moving_average__table(spans, now, window, expected):
    """Average over [now - window, now] of values weighted by their time inside it."""
    result = average_of(spans, now, window)
    assert result == (None if expected is None else pytest.approx(expected))


def test_moving_average__forget_before_keeps_straddling_interval():
    """Intervals ending at or before the cut go; one crossing it stays."""
    average = MovingAverage()
    for start in range(5):
        average.add(start, start + 1, 1.0)
    average.forget_before(2.5)
    assert len(average) == 3


def test_moving_average__ignores_empty_interval():
    """A zero-length interval adds nothing."""
    average = MovingAverage()
    average.add(1, 1, 1.0)
    assert len(average) == 0
