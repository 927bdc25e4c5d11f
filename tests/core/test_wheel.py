"""The timing wheel: phases kept, deadlines without drift, O(1) add and remove."""

import pytest

from timer.core.wheel import TimingWheel


def test_wheel__first_due_one_interval_after_adding():
    """An item added at t is first due at the first step at or after t + interval."""
    wheel = TimingWheel(interval=1.0, slots=10, start=100.0)
    for added_at, expected_step in [(100.0, 10), (100.05, 11), (100.1, 11), (100.95, 20)]:
        wheel = TimingWheel(interval=1.0, slots=10, start=100.0)
        assert wheel.add("a", "A", added_at) == expected_step


def test_wheel__first_due_sooner_when_asked_then_once_per_interval():
    """``after`` moves only the first deadline; the item then keeps that phase."""
    wheel = TimingWheel(interval=1.0, slots=10, start=0.0)
    assert wheel.add("a", "A", 0.0, after=0.2) == 2
    assert [step for step in range(25) if list(wheel.due(step))] == [2, 12, 22]


def test_wheel__due_once_per_interval_at_the_same_phase():
    """An item is due at its step and every `slots` steps after, never in between."""
    wheel = TimingWheel(interval=1.0, slots=4, start=0.0)
    wheel.add("a", "A", 0.3)  # first due at step ceil(1.3 / 0.25) = 6
    due_steps = [step for step in range(30) if list(wheel.due(step))]
    assert due_steps == [6, 10, 14, 18, 22, 26]


def test_wheel__deadlines_follow_start_plus_k_intervals():
    """Step deadlines are computed from the start, so they never accumulate error."""
    wheel = TimingWheel(interval=0.1, slots=10, start=5.0)
    assert wheel.time_of(10_000_000) == pytest.approx(5.0 + 100_000.0)
    assert wheel.step_at(wheel.time_of(12345)) == 12345


def test_wheel__remove_and_membership():
    """Removed items are no longer due; removing twice is harmless."""
    wheel = TimingWheel(interval=1.0, slots=2, start=0.0)
    wheel.add("a", "A", 0.0)
    wheel.add("b", "B", 0.0)
    assert "a" in wheel and len(wheel) == 2
    assert wheel.remove("a") == "A"
    assert wheel.remove("a") is None
    assert list(wheel.due(2)) == ["B"]
    with pytest.raises(KeyError):
        wheel.add("b", "B", 0.0)


def test_wheel__rejects_nonsense():
    """A wheel needs a positive interval and at least one slot."""
    with pytest.raises(ValueError):
        TimingWheel(interval=0, slots=1, start=0)
    with pytest.raises(ValueError):
        TimingWheel(interval=1, slots=0, start=0)
