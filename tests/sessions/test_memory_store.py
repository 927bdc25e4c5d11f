"""The one-node session store: exact closes, max wins, and no lease."""

from timer.sessions.memory import MemorySessionStore
from timer.sessions.records import CLOSED, LIVE, SessionRecord
from timer.sessions.store import Checkpoint


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_memory_store__close_of_another_connection_raises_a_lower_count():
    """Max wins, as in Redis: a lower record of a newer connection is raised, never lowered."""
    store = MemorySessionStore(ttl=60, clock=FakeClock())
    await store.open("a", "n#1")
    await store.open("a", "n#2")  # takeover: claims at 0 (resumes the live -1 + 1)
    await store.close("a", "n#1", 7)
    assert store.get("a") == SessionRecord(7, LIVE, "n#2")
    await store.close("a", "n#1", 3)
    assert store.get("a") == SessionRecord(7, LIVE, "n#2")
    await store.close("a", "n#2", 9)
    assert store.get("a") == SessionRecord(9, CLOSED, "n#2")


async def test_memory_store__checkpoint_always_stored_and_records_expire():
    """Checkpoints always succeed (no lease with one node); records go after their TTL."""
    clock = FakeClock()
    store = MemorySessionStore(ttl=10, clock=clock)
    assert await store.checkpoint("n", [("b", "n#1", 4)]) == Checkpoint(stored=True)
    assert store.records() == [("b", SessionRecord(4, LIVE, "n#1"))]
    clock.now = 10
    assert store.records() == [] and store.expire() == 1
