"""The health state machine fed literal counters on a fake clock: no sleeping, no psutil."""

from dataclasses import replace

import pytest

from tests.health.conftest import FakeClock, table_policy
from timer.core.health_policy import Policy
from timer.health.capacity import FROM_POLICY, FROM_SETTING, UNKNOWN, Capacity
from timer.health.decision import DRAINING, OK, OVERLOADED, STALE
from timer.health.monitor import FULL_BY_CONNECTIONS, FULL_BY_NETWORK, HealthMonitor
from timer.health.rates import Counters, CounterSample

LINK = Capacity(80_000, FROM_SETTING)  # 10_000 bytes/s fills it
FULL = 10_000


class Feeder:
    """Drives a monitor one-second sample at a time with cumulative byte counters."""

    def __init__(self, policy: Policy | None = None, link: Capacity = LINK) -> None:
        self.clock = FakeClock(0.0)
        self.monitor = HealthMonitor(
            policy or table_policy(), sample_interval=1.0, clock=self.clock
        )
        self.link = link
        self.rx = self.tx = 0
        self.observe()

    def observe(self, connections: int = 0) -> None:
        self.monitor.observe(
            CounterSample(self.clock.now, {"eth0": Counters(self.rx, self.tx)}),
            self.link,
            connections,
        )

    def second(self, rx: int = 0, tx: int = 0, connections: int = 0) -> None:
        self.clock.now += 1
        self.rx += rx
        self.tx += tx
        self.observe(connections)

    def report(self, connections: int = 0):
        return self.monitor.report(self.clock.now, connections)


def test_monitor__usage_is_busier_direction_over_capacity():
    """Usage = max(rx, tx) bits/s over the capacity."""
    feed = Feeder()
    feed.second(rx=2_000, tx=5_000)
    assert feed.report().usage == pytest.approx(0.5)


def test_monitor__full_within_window_then_recovers_below_margin():
    """Idle window, then full traffic: 503 once the average reaches 0.6; 200 below 0.55."""
    feed = Feeder(table_policy(threshold=0.6, recovery_margin=0.05, window=10))
    for _ in range(10):
        feed.second()
    statuses = []
    for _ in range(10):
        feed.second(rx=FULL)
        statuses.append(feed.report().status)
    assert statuses == [OK] * 5 + [OVERLOADED] * 5  # 6/10 of the window is full
    statuses = []
    for _ in range(6):
        feed.second()
        statuses.append((feed.report().status, round(feed.report().usage, 2)))
    assert statuses == [
        (OVERLOADED, 0.9),
        (OVERLOADED, 0.8),
        (OVERLOADED, 0.7),
        (OVERLOADED, 0.6),
        (OK, 0.5),
        (OK, 0.4),
    ]  # 0.6 > 0.55 stays full


def test_monitor__more_than_capacity_counts_as_full_not_more():
    """A rate 100x the capacity is 1.0: one wild interval moves the average by 1/window."""
    feed = Feeder(table_policy(window=10))
    for _ in range(9):
        feed.second()
    feed.second(rx=100 * FULL)
    report = feed.report()
    assert (report.usage, report.status) == (pytest.approx(0.1), OK)


def test_monitor__counter_reset_is_dropped_not_negative():
    """A counter going backwards drops that interval; the next one measures from the new base."""
    feed = Feeder()
    feed.second(rx=5_000)
    feed.rx = 0  # the interface was re-created
    feed.second()
    assert feed.report().usage == pytest.approx(0.5)
    feed.second(rx=5_000)
    assert feed.report().usage == pytest.approx(0.5)


def test_monitor__stale_after_three_missed_intervals():
    """No sample for more than 3 intervals (and 2 s) answers 'stale'."""
    feed = Feeder()
    feed.clock.now += 3.0
    assert feed.report().status == OK
    feed.clock.now += 0.01
    report = feed.report()
    assert (report.status, report.sampler_age) == (STALE, pytest.approx(3.01))


def test_monitor__stale_when_the_sampler_never_delivers():
    """Without any sample, the age counts from the monitor's creation."""
    clock = FakeClock(50.0)
    monitor = HealthMonitor(table_policy(), sample_interval=1.0, clock=clock)
    assert monitor.report(52.9, 0).status == OK
    assert (monitor.report(53.1, 0).status, monitor.report(53.1, 0).sampler_age) == (STALE, None)


def test_monitor__policy_swap_applies_at_next_report():
    """Lowering the threshold below the usage makes the very next report 503."""
    feed = Feeder()
    feed.second(rx=5_000)
    assert feed.report().status == OK
    feed.monitor.policy = table_policy(threshold=0.4, recovery_margin=0.05)
    report = feed.report()
    assert (report.status, report.threshold, report.recovery_level) == (
        OVERLOADED,
        0.4,
        pytest.approx(0.35),
    )


def test_monitor__capacity_from_policy_overrides_link():
    """A capacity in the policy replaces the link's for usage and the source shown."""
    feed = Feeder(table_policy(capacity=40_000))
    feed.second(rx=2_500)
    report = feed.report()
    assert (report.usage, report.capacity_bits_per_second, report.capacity_source) == (
        pytest.approx(0.5),
        40_000,
        FROM_POLICY,
    )


def test_monitor__unknown_capacity_is_never_full():
    """Without any capacity, usage is unknown and the network signal stays quiet."""
    feed = Feeder(link=Capacity(None, UNKNOWN))
    feed.second(rx=10**9)
    report = feed.report()
    assert (report.status, report.usage, report.capacity_source) == (OK, None, UNKNOWN)


@pytest.mark.parametrize(
    "counts, statuses",
    [
        (
            [99, 100, 101, 96, 95, 94, 99],
            [OK, OVERLOADED, OVERLOADED, OVERLOADED, OVERLOADED, OK, OK],
        ),
    ],
)
def test_monitor__max_connections_with_hysteresis(counts, statuses):
    """Full at the limit; room again only below limit x (1 - margin) = 95."""
    feed = Feeder(table_policy(max_connections=100, recovery_margin=0.05))
    seen = [feed.report(connections=count).status for count in counts]
    assert seen == statuses
    assert feed.report(connections=100).full_by == (FULL_BY_CONNECTIONS,)


def test_monitor__draining_wins_and_still_shows_load():
    """Draining answers 'draining' even when also full, and full_by still says why."""
    feed = Feeder(replace(table_policy(), draining=True))
    feed.second(rx=FULL)
    report = feed.report()
    assert (report.status, report.full_by) == (DRAINING, (FULL_BY_NETWORK,))


def test_monitor__node_drain_answers_draining():
    """The node's own drain (SIGTERM) drains whatever the policy says."""
    feed = Feeder()
    assert feed.monitor.report(feed.clock.now, 0, draining=True).status == DRAINING


def test_monitor__sample_without_time_passing_is_ignored():
    """A second sample at the same instant changes nothing."""
    feed = Feeder()
    feed.second(rx=5_000)
    feed.rx += 10**9
    feed.observe()
    assert feed.report().usage == pytest.approx(0.5)
