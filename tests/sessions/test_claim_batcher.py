"""ClaimBatcher with a fake sender: what goes in which batch, and where errors land."""

from __future__ import annotations

import asyncio

import pytest

from timer.sessions.redis_store import ClaimBatcher


class FakeRedis:
    """Answers each batch after ``gate`` opens; records every batch it was sent."""

    def __init__(self) -> None:
        self.batches: list[list[list[object]]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_next: Exception | None = None

    async def send(self, claims: list[list[object]]) -> list[object]:
        self.batches.append(claims)
        await self.gate.wait()
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        return [ValueError("refused") if args == ["bad"] else f"ok:{args[0]}" for args in claims]


async def test_claim_batcher__a_lone_claim_goes_at_once():
    """With nothing in flight a claim is sent alone, and its reply comes back."""
    redis = FakeRedis()
    batcher = ClaimBatcher(redis.send)
    assert await asyncio.wait_for(batcher.claim(["a"]), 1) == "ok:a"
    assert redis.batches == [[["a"]]]
    await batcher.aclose()


async def test_claim_batcher__claims_made_during_a_round_trip_share_the_next_one():
    """While one batch is in flight the others queue, then go together in one batch."""
    redis = FakeRedis()
    redis.gate.clear()
    batcher = ClaimBatcher(redis.send, batch=3)
    first = asyncio.ensure_future(batcher.claim(["c0"]))
    await asyncio.sleep(0.01)
    rest = [asyncio.ensure_future(batcher.claim([f"c{i}"])) for i in range(1, 6)]
    await asyncio.sleep(0.01)
    redis.gate.set()
    replies = await asyncio.wait_for(asyncio.gather(first, *rest), 1)
    assert replies == [f"ok:c{i}" for i in range(6)]
    assert [len(batch) for batch in redis.batches] == [1, 3, 2]
    await batcher.aclose()


async def test_claim_batcher__a_failed_round_trip_fails_its_batch_only():
    """A Redis error of one batch reaches each of its claims; the next batch goes on."""
    redis = FakeRedis()
    batcher = ClaimBatcher(redis.send)
    redis.fail_next = ConnectionError("gone")
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(batcher.claim(["a"]), 1)
    assert await asyncio.wait_for(batcher.claim(["b"]), 1) == "ok:b"
    await batcher.aclose()


async def test_claim_batcher__an_error_reply_fails_that_claim_only():
    """A script error in one claim of a pipeline is that claim's exception, not its neighbours'."""
    redis = FakeRedis()
    redis.gate.clear()
    batcher = ClaimBatcher(redis.send)
    head = asyncio.ensure_future(batcher.claim(["head"]))
    await asyncio.sleep(0.01)
    good, bad = (
        asyncio.ensure_future(batcher.claim(["good"])),
        asyncio.ensure_future(batcher.claim(["bad"])),
    )
    await asyncio.sleep(0.01)
    redis.gate.set()
    assert await asyncio.wait_for(head, 1) == "ok:head"
    assert await asyncio.wait_for(good, 1) == "ok:good"
    with pytest.raises(ValueError):
        await asyncio.wait_for(bad, 1)
    await batcher.aclose()


async def test_claim_batcher__a_cancelled_handshake_claims_nothing():
    """A claim cancelled while it waits for the batch in flight is never sent."""
    redis = FakeRedis()
    redis.gate.clear()
    batcher = ClaimBatcher(redis.send)
    head = asyncio.ensure_future(batcher.claim(["head"]))
    await asyncio.sleep(0.01)
    gone = asyncio.ensure_future(batcher.claim(["gone"]))
    await asyncio.sleep(0.01)
    gone.cancel()
    redis.gate.set()
    assert await asyncio.wait_for(head, 1) == "ok:head"
    assert await asyncio.wait_for(batcher.claim(["after"]), 1) == "ok:after"
    assert ["gone"] not in [args for batch in redis.batches for args in batch]
    await batcher.aclose()


async def test_claim_batcher__aclose_stops_its_task_and_cancels_waiting_claims():
    """After aclose no task of the batcher is left, and a claim still waiting is cancelled."""
    redis = FakeRedis()
    redis.gate.clear()
    batcher = ClaimBatcher(redis.send)
    waiting = asyncio.ensure_future(batcher.claim(["a"]))
    await asyncio.sleep(0.01)
    await batcher.aclose()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert not [task for task in asyncio.all_tasks() if task.get_name() == "wstime:claims"]
