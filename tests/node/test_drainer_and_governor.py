"""The drainer and the governor, driven with fake connections and a fake close (no hub, no store)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace

from timer.core.close_codes import CLOSE_SERVICE_RESTART, CLOSE_TRY_AGAIN_LATER
from timer.core.drain_plan import DrainPlan
from timer.core.health_policy import Policy
from timer.core.shedding import Shedder
from timer.node.counters import NodeCounters
from timer.node.drainer import POLICY, SIGNAL, Drainer
from timer.node.governor import Governor

MS = 0.001


@dataclass
class FakeNode:
    """Connections as plain names, and every close the drainer or governor asked for."""

    connections: list[str]
    closes: list[tuple[list[str], int, str]] = field(default_factory=list)

    def attached(self) -> list[str]:
        return list(self.connections)

    async def close(self, batch: list[str], code: int, kind: str) -> int:
        self.closes.append((batch, code, kind))
        for name in batch:
            self.connections.remove(name)
        return len(batch)


@dataclass
class FakeMonitor:
    policy: Policy
    usage: float | None = None


def drainer_for(node: FakeNode, *, notice: float = 0.0, window: float = 5 * MS) -> Drainer:
    plan = DrainPlan(notice=notice, window=window, deadline=1.0, batch_every=MS)
    return Drainer(plan, node_name="test-node", connections=node.attached, close=node.close)


async def test_drainer__closes_every_connection_in_batches_with_1012():
    """After the notice, every connection is closed with 1012, in the plan's batches."""
    node = FakeNode([f"c{i}" for i in range(12)])
    drainer = drainer_for(node)
    state = drainer.start(SIGNAL)
    assert state.task is not None
    await asyncio.wait_for(state.task, 1.0)
    assert node.connections == [] and state.total == 12 and state.closed == 12
    assert {code for _, code, _ in node.closes} == {CLOSE_SERVICE_RESTART}
    assert len(node.closes) == len(drainer.plan.batches(12))


async def test_drainer__a_signal_replaces_a_policy_drain_never_the_reverse():
    """SIGTERM takes over a reversible drain; a policy drain never replaces a final one."""
    node = FakeNode(["a", "b"])
    drainer = drainer_for(node, notice=10.0)
    policy = drainer.start(POLICY)
    assert drainer.start(POLICY) is policy  # idempotent
    final = drainer.start(SIGNAL)
    assert final is not policy and final.final and drainer.state is final
    assert drainer.start(POLICY) is final
    assert drainer.cancel() is False and drainer.draining
    await drainer.stop()
    assert policy.task is not None and policy.task.cancelled()
    assert final.task is not None and final.task.cancelled()
    assert node.closes == []


async def test_drainer__cancel_undoes_a_policy_drain_before_its_notice_ends():
    """An undone policy drain closes nothing, and its task is awaited by stop()."""
    node = FakeNode(["a", "b"])
    drainer = drainer_for(node, notice=10.0)
    state = drainer.start(POLICY)
    assert drainer.cancel() is True and not drainer.draining
    await drainer.stop()
    assert state.task is not None and state.task.done() and node.closes == []


def governor_for(
    node: FakeNode,
    monitor: FakeMonitor,
    *,
    shedding: bool = True,
    counters: NodeCounters | None = None,
) -> Governor[str]:
    drainer = drainer_for(node, notice=10.0)
    shedder = Shedder(shed_level=0.85, fraction_per_round=0.5, window=10) if shedding else None
    return Governor(
        node_name="test-node",
        monitor=lambda: monitor,
        drainer=drainer,
        shedder=shedder,
        every=MS,
        counters=counters or NodeCounters(),
        connections=node.attached,
        close=node.close,
        choose=lambda connections, count: list(connections)[:count],
    )


POLICY_OK = Policy(threshold=0.6, recovery_margin=0.1, window=10, max_connections=None)


async def test_governor__follows_the_policys_draining_flag_both_ways():
    """A draining policy starts a reversible drain; clearing the flag cancels it."""
    node = FakeNode(["a"])
    monitor = FakeMonitor(replace(POLICY_OK, draining=True))
    governor = governor_for(node, monitor)
    await governor.step(now=0.0)
    assert governor.drainer.draining and governor.drainer.state.source == POLICY
    monitor.policy = POLICY_OK
    await governor.step(now=1.0)
    assert not governor.drainer.draining
    await governor.drainer.stop()


async def test_governor__sheds_above_the_shed_level_down_to_the_threshold_with_1013():
    """Over the shed level it closes with 1013 no more than the budget, and counts them."""
    node = FakeNode([f"c{i}" for i in range(10)])
    counters = NodeCounters()
    governor = governor_for(node, FakeMonitor(POLICY_OK, usage=1.0), counters=counters)
    for second in range(10):
        await governor.step(now=float(second))
    # Budget: floor(10 * (1 - 0.6 / 1.0)) = 4 connections, whatever the rounds.
    assert counters.shed == 4 and len(node.connections) == 6
    assert {code for _, code, _ in node.closes} == {CLOSE_TRY_AGAIN_LATER}


async def test_governor__never_sheds_while_draining_or_when_shedding_is_off():
    """A draining node closes through its drain only; shedding off closes nothing."""
    node = FakeNode([f"c{i}" for i in range(10)])
    draining = governor_for(node, FakeMonitor(replace(POLICY_OK, draining=True), usage=1.0))
    await draining.step(now=0.0)
    assert node.closes == []
    await draining.drainer.stop()
    off = governor_for(node, FakeMonitor(POLICY_OK, usage=1.0), shedding=False)
    await off.step(now=0.0)
    assert node.closes == []
