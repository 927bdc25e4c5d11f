"""Full collections paced by the node: the pure decision, and the task on a real interpreter."""

from __future__ import annotations

import asyncio
import gc

import pytest

from timer.node.gc_pacing import (
    EVERYTHING,
    NEVER,
    NEW_OBJECTS,
    NOTHING,
    FullCollectionPacer,
    pace_full_collections,
)


def pacer_after_one_collection() -> FullCollectionPacer:
    """Collected at t=100 s with 100 connections open and 50 closes so far."""
    pacer = FullCollectionPacer(min_interval=10.0, routine_every=60.0)
    pacer.collected(100.0, EVERYTHING, connections=100, closes=50, pause=0.2)
    return pacer


@pytest.mark.parametrize(
    "now, connections, closes, expected",
    [
        (105.0, 1_000, 50, NOTHING),  # too soon after the last one, however many arrived
        (105.0, 100, 500, NOTHING),  # too soon, however many closed
        (111.0, 125, 50, NOTHING),  # late enough, grew by a quarter only, nobody left
        (111.0, 126, 50, NEW_OBJECTS),  # grew by more than a quarter: the new objects
        (111.0, 100, 75, NOTHING),  # a quarter of the frozen connections closed, not more
        (111.0, 100, 76, EVERYTHING),  # more than a quarter closed: their garbage is frozen
        (111.0, 500, 76, EVERYTHING),  # churn wins over growth: one pass covers both
        (160.0, 100, 50, NEW_OBJECTS),  # a minute without either: the routine pass
        (700.0, 100, 50, EVERYTHING),  # ten minutes after the last full pass: another one
    ],
)
def test_full_collection_pacer__due_by_interval_growth_and_churn(
    now, connections, closes, expected
):
    """Nothing before the interval; then everything after churn, new objects after growth."""
    pacer = pacer_after_one_collection()
    assert pacer.due(now, connections=connections, closes=closes) == expected


def test_full_collection_pacer__new_connections_join_the_frozen_ones():
    """After a collection of new objects, churn is judged against every frozen connection."""
    pacer = pacer_after_one_collection()
    pacer.collected(111.0, NEW_OBJECTS, connections=400, closes=60, pause=0.1)
    assert pacer.due(122.0, connections=400, closes=150) == NOTHING  # 100 of 400 closed
    assert pacer.due(122.0, connections=400, closes=151) == EVERYTHING


async def test_pace_full_collections__switches_cpython_off_collects_and_restores():
    """While the task runs CPython starts no full collection; the task runs and freezes them."""
    before = gc.get_threshold()
    pacer = FullCollectionPacer(min_interval=0.0, routine_every=0.0)  # due at every look
    task = asyncio.ensure_future(
        pace_full_collections(
            pacer, node_name="test-node", connections=lambda: 0, closes=lambda: 0, check_every=0.01
        )
    )
    try:
        await asyncio.sleep(0.005)
        assert gc.get_threshold()[2] == NEVER
        for _ in range(100):
            if pacer.collections >= 2:
                break
            await asyncio.sleep(0.01)
        assert pacer.collections >= 2 and pacer.last_pause > 0
        assert gc.get_freeze_count() > 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


async def test_pace_full_collections__routine_passes_leave_the_old_generation_alone():
    """Only the first pass (nothing frozen yet) and the full ones traverse generation 2."""
    generations: list[int] = []

    def record(phase: str, info: dict) -> None:
        if phase == "start":
            generations.append(info["generation"])

    pacer = FullCollectionPacer(min_interval=0.0, routine_every=0.0)  # a routine pass each look
    gc.callbacks.append(record)
    task = asyncio.ensure_future(
        pace_full_collections(
            pacer, node_name="test-node", connections=lambda: 0, closes=lambda: 0, check_every=0.01
        )
    )
    try:
        for _ in range(100):
            if pacer.collections >= 4:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        gc.callbacks.remove(record)
    assert pacer.collections >= 4
    assert generations.count(2) == 1, generations  # the first pass only
