"""The rebalancing decision: share, tolerance, room, rate, stop, memory; time is an argument."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from timer.config import checks
from timer.config.loader import ConfigError, load_config
from timer.core.rebalance import (
    BALANCED,
    DRAINING,
    MOVING,
    NO_ROOM,
    NodeLoad,
    Rebalancer,
    capacity_weights,
)


def rebalancer(**overrides) -> Rebalancer:
    options = {"tolerance": 0.05, "rate": 0.02, "settle": 3.0, "flight": 4.0, "memory": 600.0}
    return Rebalancer(**{**options, **overrides})


def load(
    name: str, connections: int, *, accepting: bool = True, max_connections=None, bits=None
) -> NodeLoad:
    return NodeLoad(name, connections, accepting, max_connections, bits)


def settled(r: Rebalancer, me: NodeLoad, peers: list[NodeLoad], *, at: float = 0.0):
    """First sight of the peers at ``at``, then a decision once they have settled."""
    r.decide(at, me, peers)
    return r.decide(at + r.settle, me, peers)


@pytest.mark.parametrize(
    "me, peers, state, share, move",
    [
        # 600 on A, B joins empty: share 300, the first round has an empty bucket.
        (load("a", 600), [load("b", 0)], MOVING, 300, 0),
        # Within tolerance (5 % of 300 = 15): nothing.
        (load("a", 315), [load("b", 285)], BALANCED, 300, 0),
        # Just above it: moving.
        (load("a", 316), [load("b", 284)], MOVING, 300, 0),
        # "Clearly more" is at least 2 connections, even for tiny shares.
        (load("a", 3), [load("b", 1)], BALANCED, 2, 0),
        # The only other node is full (not accepting): it is no part of the share, and no room.
        (load("a", 600), [load("b", 10, accepting=False)], NO_ROOM, 600, 0),
        # Still accepting as last published, but at its max_connections: no room.
        (
            load("a", 600, max_connections=100),
            [load("b", 100, max_connections=100)],
            NO_ROOM,
            350,
            0,
        ),
        # Capacities 900 and 300: A's share is three quarters.
        (load("a", 300, max_connections=900), [load("b", 0, max_connections=300)], MOVING, 225, 0),
        # Mixed units fall back to equal weights.
        (load("a", 300, max_connections=900), [load("b", 0)], MOVING, 150, 0),
        # Bandwidth when every node knows its link.
        (load("a", 400, bits=3e6), [load("b", 0, bits=1e6)], MOVING, 300, 0),
        # Alone.
        (load("a", 600), [], BALANCED, 600, 0),
    ],
)
def test_decide__share_tolerance_and_room(me, peers, state, share, move):
    """The share weighs accepting nodes by capacity; the state says why nothing moves."""
    decision = settled(rebalancer(), me, peers)
    assert (decision.state, decision.move) == (state, move)
    assert decision.share == pytest.approx(share)


def test_decide__a_new_node_counts_only_once_settled():
    """A node accepting for less than ``settle`` seconds is no room yet (the balancer's rise)."""
    r = rebalancer()
    me, peers = load("a", 600), [load("b", 0)]
    assert r.decide(10.0, me, peers).state == NO_ROOM  # first seen now: share is all 600
    assert r.decide(12.9, me, peers).state == NO_ROOM
    assert r.decide(13.0, me, peers).state == MOVING
    # It stops accepting: forgotten; accepting again: settles again.
    assert r.decide(14.0, me, [load("b", 0, accepting=False)]).state == NO_ROOM
    assert r.decide(15.0, me, peers).state == NO_ROOM
    assert r.decide(18.0, me, peers).state == MOVING


@pytest.mark.parametrize(
    "steps, moves",
    [
        # (seconds after the first moving round) -> connections moved; 2 %/s of 600 = 12 per s.
        ([1.0, 2.0, 3.0], [12, 12, 12]),
        # A long gap never releases more than one second's worth.
        ([10.0], [12]),
        # Half a second: half the budget; fractions carry over.
        ([0.5, 1.0, 1.25], [6, 6, 3]),
    ],
)
def test_decide__paced_by_a_token_bucket(steps, moves):
    """At most ``rate x connections`` per second, never a burst after a pause."""
    r = rebalancer(flight=0.0)  # no moves in flight: each round sees the same cluster
    me, peers = load("a", 600), [load("b", 0)]
    start = 3.0
    assert settled(r, me, peers).move == 0
    got = []
    for t in steps:
        decision = r.decide(start + t, me, peers)
        got.append(decision.move)
    assert got == moves


def test_decide__stops_at_the_share_plus_tolerance_and_never_below_the_share():
    """Converges into [share, share + tolerance] as the moved clients land on the other node."""
    r = rebalancer(rate=0.5, flight=0.0)
    a, b = 600, 0
    now = 0.0
    settled(r, load("a", a), [load("b", b)], at=now)
    now = 3.0
    for _ in range(30):
        now += 1.0
        decision = r.decide(now, load("a", a), [load("b", b)])
        assert a - decision.move >= decision.share  # never below
        a, b = a - decision.move, b + decision.move
    assert 300 <= a <= 315 and decision.state == BALANCED


def test_decide__moves_in_flight_hold_back_the_next_ones():
    """Clients closed but not yet reconnected count in the total and against the room."""
    r = rebalancer(rate=1.0, flight=4.0)
    settled(r, load("a", 40), [load("b", 30)])
    decision = r.decide(4.0, load("a", 40), [load("b", 30)])
    assert decision.move == 5  # down to the share of 35
    r.moved(4.0, [f"c{i}" for i in range(5)])
    # A now holds 35; B has not published them yet: the total is still the recent 70.
    decision = r.decide(5.0, load("a", 35), [load("b", 30)])
    assert (decision.share, decision.move) == (35, 0)
    # Still in flight, they hold back moves that the room left would allow.
    assert r.decide(6.0, load("a", 40), [load("b", 30)]).move == 0
    # Once B counts them and they are no longer in flight, the room is B's again.
    assert r.decide(9.0, load("a", 45), [load("b", 35)]).move == 5


def test_decide__a_dip_in_the_published_total_is_no_smaller_cluster():
    """While clients move, the cluster's total is the largest of the last 2 x flight seconds."""
    r = rebalancer(flight=2.0)
    settled(r, load("a", 300), [load("b", 300)])
    # 30 of B's clients are between nodes: 570 published, the share stays 300.
    assert r.decide(4.0, load("a", 300), [load("b", 270)]).share == 300
    # Gone for good: after 2 x flight the smaller total counts.
    assert r.decide(8.0, load("a", 300), [load("b", 270)]).share == 285


def test_decide__draining_moves_nothing():
    """A draining node leaves anyway: no rebalancing, and the bucket restarts empty after."""
    r = rebalancer()
    settled(r, load("a", 600), [load("b", 0)])
    assert r.decide(4.0, load("a", 600), [load("b", 0)], draining=True).state == DRAINING
    assert r.decide(5.0, load("a", 600), [load("b", 0)]).move == 0


def test_may_move__a_client_is_moved_at_most_once_per_memory():
    """Moved ids are remembered for ``memory`` seconds, then forgotten (bounded)."""
    r = rebalancer(memory=60.0)
    r.moved(100.0, ["x", "y"])
    assert not r.may_move(159.9, "x") and r.may_move(159.9, "z")
    assert r.may_move(160.0, "x")
    r.decide(160.0, load("a", 1), [])
    assert r.remembered == 0


def test_capacity_weights__one_unit_for_all():
    """Connections, else bandwidth, else equal."""
    assert capacity_weights([load("a", 0, max_connections=2), load("b", 0, max_connections=1)]) == [
        2.0,
        1.0,
    ]
    assert capacity_weights([load("a", 0, bits=1e6), load("b", 0, max_connections=1)]) == [1.0, 1.0]


@pytest.mark.parametrize(
    "name, value, reason",
    [
        ("WSTIME_REBALANCE_ENABLED", "perhaps", "true or false"),
        ("WSTIME_REBALANCE_TOLERANCE", "1", "[0, 1)"),
        ("WSTIME_REBALANCE_RATE", "0", "(0, 1]"),
        ("WSTIME_REBALANCE_SETTLE", "-1", "0 or more"),
        ("WSTIME_REBALANCE_MEMORY", "0", "greater than 0"),
    ],
)
def test_rebalance_settings__rejected_with_a_reason(name, value, reason):
    """Each broken rebalancing setting is named, with what is expected."""
    with pytest.raises(ConfigError) as caught:
        load_config({name: value}, SimpleNamespace())
    assert caught.value.problems == [(name, caught.value.problems[0][1])]
    assert reason in caught.value.problems[0][1]


def test_rebalance_settings__system_check_reports_them(monkeypatch):
    """timer.E001 names a broken rebalancing setting."""
    monkeypatch.setenv("WSTIME_REBALANCE_RATE", "fast")
    errors = checks.check_wstime_settings()
    assert [(e.id, e.msg.split()[0]) for e in errors] == [("timer.E001", "WSTIME_REBALANCE_RATE")]


def test_rebalance_settings__conservative_defaults():
    """On by default; 5 % tolerance, 2 %/s, 3 s settle, 600 s memory."""
    cfg = load_config({}, SimpleNamespace())
    assert (
        cfg.rebalance_enabled,
        cfg.rebalance_tolerance,
        cfg.rebalance_rate,
        cfg.rebalance_settle,
        cfg.rebalance_memory,
    ) == (True, 0.05, 0.02, 3.0, 600.0)
