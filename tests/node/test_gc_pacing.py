"""Full collections paced by the node: the pure decision, and the task on a real interpreter."""

from __future__ import annotations

import asyncio
import gc

import pytest

from timer.node.gc_pacing import NEVER, FullCollectionPacer, pace_full_collections


@pytest.mark.parametrize("now, objects, expected", [
    (100.0, 1_000, False),   # too soon after the last one, however much it grew
    (100.0, 10_000, False),
    (161.0, 1_250, False),   # late enough, but grew by a quarter only
    (161.0, 1_251, True),    # late enough and grew by more than a quarter
    (161.0, 900, False),     # shrank: nothing to collect
])
def test_full_collection_pacer__due_after_min_interval_and_a_quarter_of_growth(now, objects,
                                                                                expected):
    """Due only when both the interval has passed and old objects grew past a quarter."""
    pacer = FullCollectionPacer(min_interval=60.0)
    pacer.collected(100.0, 1_000, pause=0.2)
    assert pacer.due(now, objects) is expected


def test_full_collection_pacer__the_first_one_needs_only_growth():
    """Before any collection the interval does not hold one back."""
    pacer = FullCollectionPacer(min_interval=60.0, objects_after_last=1_000)
    assert pacer.due(0.0, 1_300) and not pacer.due(0.0, 1_200)


async def test_pace_full_collections__switches_cpython_off_collects_and_restores():
    """While the task runs CPython never starts a full collection; it runs them when due."""
    before = gc.get_threshold()
    pacer = FullCollectionPacer(min_interval=0.0, growth=-1.0)  # due at every look
    task = asyncio.ensure_future(pace_full_collections(pacer, node_name="test-node",
                                                       check_every=0.01))
    try:
        await asyncio.sleep(0.005)
        assert gc.get_threshold()[2] == NEVER
        for _ in range(100):
            if pacer.collections >= 2:
                break
            await asyncio.sleep(0.01)
        assert pacer.collections >= 2 and pacer.last_pause > 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert gc.get_threshold() == before
