"""A periodic check cut into slices: each item once per pass, never all at once."""

import pytest

from timer.core.sweep import SlicedSweep


def test_sliced_sweep__each_item_once_per_pass_in_equal_slices():
    """Ten slices over 95 items: ten calls hand out each item once, 10 at most per call."""
    sweep = SlicedSweep(period=2.0, step=0.2)
    items = list(range(95))
    slices = [sweep.next_slice(lambda: items) for _ in range(sweep.slices)]
    assert [item for chunk in slices for item in chunk] == items
    assert max(len(chunk) for chunk in slices) == 10


def test_sliced_sweep__items_that_arrive_mid_pass_wait_for_the_next():
    """The snapshot is taken once per pass; the next pass sees what arrived meanwhile."""
    sweep = SlicedSweep(period=1.0, step=0.5)
    items = ["a", "b", "c", "d"]
    assert sweep.next_slice(lambda: list(items)) == ["a", "b"]
    items.append("e")
    assert sweep.next_slice(lambda: list(items)) == ["c", "d"]
    assert sweep.next_slice(lambda: list(items)) == ["a", "b", "c"]
    assert sweep.next_slice(lambda: list(items)) == ["d", "e"]


def test_sliced_sweep__no_items_takes_a_new_snapshot_every_step():
    """With nothing to check, each call looks again, so a first item waits one step."""
    sweep = SlicedSweep(period=2.0, step=0.1)
    items: list[int] = []
    assert sweep.next_slice(lambda: list(items)) == []
    items.append(1)
    assert sweep.next_slice(lambda: list(items)) == [1]


@pytest.mark.parametrize(("period", "step"), [(1.0, 0.0), (1.0, -0.1), (1.0, 2.0)])
def test_sliced_sweep__step_must_fit_the_period(period, step):
    with pytest.raises(ValueError, match="step"):
        SlicedSweep(period=period, step=step)
