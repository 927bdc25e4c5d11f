"""The nemesis's schedule: a function of the seed alone, so that a seed replays."""

from __future__ import annotations

import random
from types import SimpleNamespace

from chaos.nemesis import ALL_KINDS, REDIS_KINDS, Nemesis


def plan(seed: int, duration: float = 60.0):
    cluster = SimpleNamespace(slots=[SimpleNamespace(name=f"chaos-{k}") for k in (1, 2, 3)])
    nemesis = Nemesis(
        cluster,
        kinds=ALL_KINDS,
        rng=random.Random(seed),
        clock=lambda: 0.0,
        duplicate=lambda rng, count: None,
    )
    return nemesis.plan(duration)


def test_plan__same_seed_same_schedule():
    """Two plans from one seed are equal; another seed gives another schedule."""
    assert plan(42) == plan(42)
    assert plan(42) != plan(43)


def test_plan__targets_and_times_fit_the_kind():
    """Redis faults target Redis, duplicates the clients, the rest a node; all within the run."""
    for item in plan(7, duration=600):
        assert 0 < item.at < 600
        if item.kind in REDIS_KINDS:
            assert item.target == "redis"
        elif item.kind == "duplicate":
            assert item.target == "clients"
        else:
            assert item.target in {"chaos-1", "chaos-2", "chaos-3"}
