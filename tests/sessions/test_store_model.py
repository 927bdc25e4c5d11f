"""Model-based test of the session stores: any interleaving of connections and faults.

Hypothesis drives nodes (each its own store instance; several against one real Redis, or one
node on the in-memory store) through connections, frames, checkpoints, clean closes, lost links,
node crashes, Redis outages, restarts with and without data, a paused (slow) Redis and skewed
wall clocks. A small reference model tracks what each client was shown and checks the first
frame of every connection against the continuity rules (README, shared with the chaos checker):

- no reset and no repeat: it is above the last frame the client was shown;
- no skip: it is at most two above it, or above the highest count a node sent the client
  unseen (on a link the client had lost);
- exact: it is one above it when the previous connection that showed the client a frame ended
  with a clean close the store recorded.

The model's nodes follow the lease: a connection is shown at most one frame past the count the
last checkpoint the store reported as written holds for it, and nothing before its first one
(its claim is resumed exactly). A checkpoint raises no lease for a connection it reports revoked
(a newer claim took its session), and the node closes that one. Across all of a client's
connections, seen or not, no count is sent twice. An opening the store returns counts as a claim: a store that
cannot persist one must refuse the handshake instead.

Data may be lost only when Redis restarts empty. A session then survives in the node holding its
newest count (its live connection, or the node that closed it) until that node's housekeeping
writes it back; if that node crashes first, or the client reconnects before the write-back, the
session may start over. From such a restart on, the model checks only that frames never repeat.

The stores are called only through ``store_adapter.StoreAdapter``, the one place to change when
their signatures do. A failure prints the steps that replay it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from .store_adapter import RedisControl, StoreAdapter

T = TypeVar("T")

CLIENTS = ("c0", "c1")
NODES = ("a", "b", "c")
# Whole seconds of clock error; at least one of them moves a node across any boundary a store
# might draw on the wall clock every 15 s (the wall clock is held still within an example).
SKEWS = (-3.0, 0.0, 3.0)
WALL_GRAIN = 15.0
CALL_TIMEOUT = 15.0  # no single store call may hang a step longer than this

SETTINGS = settings(
    max_examples=100,  # about 20 s against Redis, 1 s in memory
    stateful_step_count=20,
    deadline=None,
    database=None,  # no .hypothesis folder; a failure prints its steps, which replay it
    suppress_health_check=[HealthCheck.too_slow],
)


@dataclass
class WallClock:
    """A node's wall clock: held still within an example, ``skew`` seconds off."""

    now: float
    skew: float = 0.0

    def __call__(self) -> float:
        return self.now + self.skew


@dataclass
class Connection:
    """A connection as its node holds it."""

    client_id: str
    token: str
    shown: int  # the count of the last frame the node sent on it
    persisted: int  # the last count written for it: claim or checkpoint (the lease counts from it)
    exposed: bool  # opened when the session's newest count may have been legitimately lost
    exact: bool  # the client must see exactly one more than it saw (previous close recorded)
    reach_before: int  # the client's reach (see Client) when this connection opened
    first_due: bool = True  # no frame shown on it yet


@dataclass
class Client:
    """What a client saw, and what the model expects of its next connection."""

    seen: int = -1  # the last frame shown to it
    # The highest count any of its connections was sent, seen or not, or might have been: under
    # the lease a connection may send one frame past its claim before anything else is known.
    reach: int = -1
    attached: Connection | None = None  # the connection whose frames it receives
    exact_next: bool = False
    holder: str | None = None  # node process that opened its newest connection
    awaiting: str | None = None  # node process that must write the session back (empty Redis)
    exposed: bool = False  # its newest count may be lost: the next connection may start over
    restarted: bool = False  # it did start over once: only "no repeat" is checked from then on
    sent: set[int] = field(default_factory=set)  # every count any of its connections sent


@dataclass
class Node:
    """A node process: its store instance and its connections, lost together in a crash."""

    name: str
    adapter: StoreAdapter
    generation: int = 0
    connections: dict[str, Connection] = field(default_factory=dict)
    last_sequence: int = 0  # of the last token; the model's handshakes finish within a step

    @property
    def process(self) -> str:
        return f"{self.name}/{self.generation}"

    @property
    def channel(self) -> str:
        return f"wstime.node.{self.name}!{self.generation}"

    def new_token(self) -> str:
        self.last_sequence += 1
        return f"{self.channel}#{self.last_sequence}"


class ContinuityModel:
    """The reference model and its checks; the state machines below only choose the steps."""

    def __init__(self, loop: asyncio.AbstractEventLoop, nodes: dict[str, Node]) -> None:
        self.loop = loop
        self.nodes = nodes
        self.clients = {client_id: Client() for client_id in CLIENTS}

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(asyncio.wait_for(coroutine, CALL_TIMEOUT))

    def node_of(self, connection: Connection) -> Node:
        return next(
            node
            for node in self.nodes.values()
            if node.connections.get(connection.client_id) is connection
        )

    # --- client and node actions

    def connect(self, client_id: str, node: Node) -> None:
        """The client opens a connection to ``node``, leaving the one it had (a lost link)."""
        client = self.clients[client_id]
        if client.attached is not None:
            client.attached = None
            client.exact_next = False
        older = node.connections.pop(client_id, None)
        if older is not None:
            # The node closes its older connection of this client first (a takeover).
            self.run(node.adapter.close(client_id, older.token, older.shown))
        token = node.new_token()
        last_n = self.run(node.adapter.open(client_id, token))
        if last_n is None:
            return  # refused (HTTP 503): the client saw nothing
        exposed = client.exposed or client.awaiting is not None
        # A claim alone allows no frame: the connection waits for a checkpoint that lists it
        # (hub.Connection), so a claim whose connection ends before one costs no count.
        connection = Connection(
            client_id,
            token,
            shown=last_n,
            persisted=last_n - 1,
            exposed=exposed,
            exact=client.exact_next,
            reach_before=client.reach,
        )
        client.reach = max(client.reach, last_n)
        if client.awaiting is not None:
            client.exposed, client.awaiting = True, None
        client.holder = node.process
        client.attached = connection
        node.connections[client_id] = connection

    def may_show(self, node: Node, connection: Connection) -> bool:
        """The lease: at most one frame past the count persisted for the connection."""
        return not node.adapter.shared or connection.shown < connection.persisted + 1

    def tick(self, client_id: str, intervals: int = 1) -> None:
        """Intervals pass: every node sends the client's connections their next frames.

        Only the connection the client is attached to is seen; the others are links it lost,
        which their nodes have not noticed yet. Each respects the lease.
        """
        client = self.clients[client_id]
        for node in self.nodes.values():
            connection = node.connections.get(client_id)
            for _ in range(intervals):
                if connection is None or not self.may_show(node, connection):
                    break
                connection.shown += 1
                client.reach = max(client.reach, connection.shown)
                self.check_sent_once(client_id, client, connection)
                if connection is client.attached:
                    if connection.first_due:
                        connection.first_due = False
                        self.check_first_frame(client_id, client, connection, connection.shown)
                    client.seen = connection.shown

    def close(self, client_id: str) -> None:
        """The client closes cleanly; its node records the exact count."""
        client = self.clients[client_id]
        connection = client.attached
        if connection is None:
            return
        node = self.node_of(connection)
        recorded = self.run(node.adapter.close(client_id, connection.token, connection.shown))
        del node.connections[client_id]
        self._closed_cleanly(client, connection, recorded)

    def drain(self, node: Node) -> None:
        """The node closes all its connections, recording their exact counts in one batch."""
        leaving, node.connections = node.connections, {}
        recorded = self.run(
            node.adapter.close_many([(c.client_id, c.token, c.shown) for c in leaving.values()])
        )
        for client_id, connection in leaving.items():
            client = self.clients[client_id]
            if client.attached is connection:
                self._closed_cleanly(client, connection, recorded)

    def _closed_cleanly(self, client: Client, connection: Connection, recorded: bool) -> None:
        client.attached = None
        # A connection that showed nothing leaves the expectation of the one before it.
        client.exact_next = recorded and (not connection.first_due or connection.exact)

    def notice(self, client_id: str) -> None:
        """Nodes learn that the client left (or was taken over) and close what they still hold."""
        client = self.clients[client_id]
        for node in self.nodes.values():
            connection = node.connections.get(client_id)
            if connection is None or connection is client.attached:
                continue
            del node.connections[client_id]
            self.run(node.adapter.close(client_id, connection.token, connection.shown))

    def housekeeping(self, node: Node) -> None:
        """One interval of the node's housekeeping: checkpoint, write-back, expiry."""
        entries = [(c.client_id, c.token, c.shown) for c in node.connections.values()]
        persisted, revoked = self.run(
            node.adapter.housekeeping(node.channel, entries, node.last_sequence + 1)
        )
        for client_id, connection in list(node.connections.items()):
            if connection.token in revoked:
                # A newer connection claimed the session: the node closes this one as taken
                # over (4001), recording its count, and raises no lease for it.
                del node.connections[client_id]
                self.run(node.adapter.close(client_id, connection.token, connection.shown))
                client = self.clients[client_id]
                if client.attached is connection:
                    client.attached, client.exact_next = None, False
        if not persisted:
            return
        counts = {client_id: count for client_id, _, count in entries}
        for client_id, connection in node.connections.items():
            connection.persisted = counts[client_id]
        for client in self.clients.values():
            if client.awaiting == node.process:
                client.awaiting = None

    def crash(self, node: Node, adapter: StoreAdapter) -> None:
        """The node's process dies (nothing written) and a new one starts with ``adapter``."""
        self.run(node.adapter.crash())
        lost_everything = not node.adapter.shared
        for client in self.clients.values():
            if any(client.attached is c for c in node.connections.values()):
                client.attached = None
                client.exact_next = False
            if client.awaiting == node.process or (lost_everything and client.holder is not None):
                client.awaiting, client.exposed, client.exact_next = None, True, False
        node.adapter = adapter
        node.generation += 1
        node.connections = {}

    def redis_lost_its_data(self) -> None:
        """Redis restarted empty: a session now lives only in the node holding its newest count."""
        alive = {node.process for node in self.nodes.values()}
        for client in self.clients.values():
            if client.holder is None:
                continue
            client.exact_next = False
            if client.holder in alive:
                client.awaiting = client.holder
            else:
                client.exposed = True

    # --- the rules

    def check_sent_once(self, client_id: str, client: Client, connection: Connection) -> None:
        """No count goes out twice, on whatever connections: a client holding two (a retried
        handshake, a second tab) would see it twice. Not checked once a restart is allowed."""
        if connection.exposed or client.restarted:
            return
        assert connection.shown not in client.sent, (
            f"client {client_id}: count {connection.shown} sent twice ({connection.token})"
        )
        client.sent.add(connection.shown)

    def check_first_frame(
        self, client_id: str, client: Client, connection: Connection, first: int
    ) -> None:
        seen = client.seen
        if connection.exposed:
            client.exposed, client.restarted = False, True
            return
        where = (
            f"client {client_id}: last frame shown {seen}, first frame now {first} "
            f"(reach when this connection opened: {connection.reach_before})"
        )
        assert not (first == 0 and seen >= 0), f"reset: {where}"
        assert first > seen, f"repeat: {where}"
        if client.restarted:
            return
        # Frames sent on a link the client had lost were never shown, but they count; so does
        # the frame a connection that ended before showing anything might have shown.
        assert first <= max(seen, connection.reach_before) + 2, f"skip of more than two: {where}"
        if connection.exact:
            assert first == seen + 1, f"not exact after a recorded clean close: {where}"


class EventLoopMachine(RuleBasedStateMachine):
    """A state machine that runs the stores' coroutines on an event loop of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()

    def teardown(self) -> None:
        try:
            for node in self.model.nodes.values():
                self.model.run(node.adapter.shutdown())
        finally:
            self.loop.close()


# Mostly one client, so that steps meet in one session; the other shares the nodes' batches.
clients = st.one_of(st.just(CLIENTS[0]), st.sampled_from(CLIENTS))
nodes = st.sampled_from(NODES)
frame_counts = st.integers(min_value=0, max_value=2)  # intervals that pass after connecting


class MemoryStoreMachine(EventLoopMachine):
    """One node on the in-memory store: sessions survive everything but a crash."""

    def __init__(self) -> None:
        super().__init__()
        self.node = Node("a", StoreAdapter.memory())
        self.model = ContinuityModel(self.loop, {"a": self.node})

    @rule(client=clients, frames=frame_counts)
    def connect(self, client: str, frames: int) -> None:
        self.model.connect(client, self.node)
        self.model.tick(client, frames)

    @rule(client=clients, frames=st.integers(min_value=1, max_value=2))
    def tick(self, client: str, frames: int) -> None:
        self.model.tick(client, frames)

    @rule(client=clients)
    def close(self, client: str) -> None:
        self.model.close(client)

    @rule(client=clients)
    def notice_lost_link(self, client: str) -> None:
        self.model.notice(client)

    @rule()
    def drain(self) -> None:
        self.model.drain(self.node)

    @rule()
    def housekeeping(self) -> None:
        self.model.housekeeping(self.node)

    @rule()
    def crash(self) -> None:
        self.model.crash(self.node, StoreAdapter.memory())


class RedisStoreMachine(EventLoopMachine):
    """Three nodes sharing one real Redis, which fails in every way the model knows."""

    redis: RedisControl  # set by the test: one redis-server for every example

    def __init__(self) -> None:
        super().__init__()
        self.redis.reset()
        # Held still within an example, on a multiple of WALL_GRAIN near real time.
        now = time.time() // WALL_GRAIN * WALL_GRAIN
        self.clocks = {name: WallClock(now) for name in NODES}
        self.model = ContinuityModel(
            self.loop, {name: Node(name, self._adapter(name)) for name in NODES}
        )
        for node in self.model.nodes.values():
            self.model.housekeeping(node)  # each node has been up for an interval

    def _adapter(self, node: str) -> StoreAdapter:
        return StoreAdapter.redis(self.redis.url, self.clocks[node])

    @rule(client=clients, node=nodes, frames=frame_counts)
    def connect(self, client: str, node: str, frames: int) -> None:
        self.model.connect(client, self.model.nodes[node])
        self.model.tick(client, frames)

    @rule(client=clients, frames=st.integers(min_value=1, max_value=2))
    def tick(self, client: str, frames: int) -> None:
        self.model.tick(client, frames)

    @rule(client=clients)
    def close(self, client: str) -> None:
        self.model.close(client)

    @rule(client=clients)
    def notice_lost_link(self, client: str) -> None:
        self.model.notice(client)

    @rule(node=nodes)
    def drain(self, node: str) -> None:
        self.model.drain(self.model.nodes[node])

    @rule(node=nodes)
    def housekeeping(self, node: str) -> None:
        self.model.housekeeping(self.model.nodes[node])

    @rule(node=nodes)
    def crash(self, node: str) -> None:
        self.model.crash(self.model.nodes[node], self._adapter(node))

    @initialize(skews=st.tuples(*(st.sampled_from(SKEWS) for _ in NODES)))
    def skew_clocks(self, skews: tuple[float, ...]) -> None:
        for clock, skew in zip(self.clocks.values(), skews, strict=True):
            clock.skew = skew

    @precondition(lambda self: self.redis.running and not self.redis.paused)
    @rule()
    def redis_stop(self) -> None:
        self.redis.stop()

    @precondition(lambda self: not self.redis.running)
    @rule(with_data=st.booleans())
    def redis_start(self, with_data: bool) -> None:
        self.redis.start(with_data=with_data)
        if not with_data:
            self.model.redis_lost_its_data()

    @precondition(lambda self: self.redis.running and not self.redis.paused)
    @rule()
    def redis_pause(self) -> None:
        self.redis.pause()

    @precondition(lambda self: self.redis.paused)
    @rule()
    def redis_resume(self) -> None:
        self.redis.resume()

    @precondition(lambda self: self.redis.running and not self.redis.paused)
    @rule(client=clients, node=nodes)
    def connect_while_redis_stalls(self, client: str, node: str) -> None:
        """A handshake meets a stalled Redis, which answers once the store gave up."""
        self.redis.pause()
        try:
            self.model.connect(client, self.model.nodes[node])
        finally:
            self.redis.resume()


def test_store_model__memory_store_keeps_the_count_going():
    """Any interleaving on one node's memory store: no repeat, no skip, exact after a close."""
    run_state_machine_as_test(MemoryStoreMachine, settings=SETTINGS)


@pytest.fixture(scope="module")
def redis_control():
    control = RedisControl()
    yield control
    control.shutdown()


@pytest.mark.integration
@pytest.mark.timeout(600)  # passing takes seconds; shrinking a failure may take five minutes
def test_store_model__redis_store_keeps_the_count_going_through_faults(redis_control):
    """Any interleaving of nodes, clients and Redis faults: no repeat, no skip, exact closes."""
    RedisStoreMachine.redis = redis_control
    run_state_machine_as_test(RedisStoreMachine, settings=SETTINGS)


@pytest.mark.integration
def test_store_model__a_connection_claimed_away_sends_no_count_twice(redis_control):
    """One interleaving, replayed: a client's older connection (a link it lost) and its newer
    one on another node are both checkpointed after the newer claim. Only the newer may get a
    lease; when both did, both sent the same next count."""
    RedisStoreMachine.redis = redis_control
    machine = RedisStoreMachine()
    try:
        machine.connect(client="c0", node="a", frames=0)
        machine.housekeeping(node="a")
        machine.tick(client="c0", frames=1)  # a's connection sends 0
        machine.connect(client="c0", node="b", frames=0)  # resumes past it: next is 1
        machine.housekeeping(node="a")
        machine.housekeeping(node="b")
        machine.tick(client="c0", frames=1)
        assert machine.model.clients["c0"].seen == 1
        assert not machine.model.nodes["a"].connections  # a closed it as taken over
    finally:
        machine.teardown()
