"""Per-id handshake reservations: one at a time, the newest supersedes the waiting ones."""

from __future__ import annotations

import asyncio

import pytest

from timer.core.reservations import Reservations


async def finished(awaitable, timeout: float = 0.05) -> bool:
    try:
        await asyncio.wait_for(asyncio.shield(awaitable), timeout)
    except TimeoutError:
        return False
    return True


async def test_reservations__second_handshake_waits_for_the_first():
    """A later handshake with the same id starts once the earlier one released its id."""
    reservations = Reservations()
    first = reservations.reserve("a")
    second = reservations.reserve("a")
    other = reservations.reserve("b")
    await first.turn()
    await other.turn()
    waiting = asyncio.ensure_future(second.turn())
    assert not await finished(waiting)
    assert first.superseded and first.gives_up and not second.superseded
    first.release()
    assert await finished(waiting)
    second.release()
    other.release()
    assert len(reservations) == 0


async def test_reservations__a_cancelled_waiter_keeps_the_order():
    """A waiter that gives up (its client left) does not let a later one past an earlier one."""
    reservations = Reservations()
    first, second, third = (reservations.reserve("a") for _ in range(3))
    await first.turn()
    second_turn = asyncio.ensure_future(second.turn())
    third_turn = asyncio.ensure_future(third.turn())
    await asyncio.sleep(0)
    second_turn.cancel()
    second.release()
    assert not await finished(third_turn), "the first handshake is still running"
    first.release()
    assert await finished(third_turn)
    assert second.superseded and not third.superseded


@pytest.mark.parametrize("token, found", [("n#1", True), ("n#2", False), (None, False)])
def test_reservations__takeover_marks_the_handshake_that_claimed(token, found):
    """Another node's takeover names a token: only the handshake holding it gives up."""
    reservations = Reservations()
    claimed = reservations.reserve("a")
    claimed.token = "n#1"
    assert reservations.take_over("a", token) is found
    assert claimed.taken_over is found and claimed.gives_up is found
    assert reservations.take_over("b", "n#1") is False


def test_reservations__release_is_idempotent():
    reservations = Reservations()
    reservation = reservations.reserve("a")
    reservation.release()
    reservation.release()
    assert len(reservations) == 0


def test_reservations__tokens_of_the_pending_handshakes_that_have_one():
    """What the node's handshake floor is read from: a released handshake's token is gone."""
    reservations = Reservations()
    first, second, third = (reservations.reserve(client_id) for client_id in ("a", "a", "b"))
    first.token, third.token = "node#3", "node#5"
    assert sorted(reservations.tokens()) == ["node#3", "node#5"]
    first.release()
    second.token = "node#6"
    assert sorted(reservations.tokens()) == ["node#5", "node#6"]
