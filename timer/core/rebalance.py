"""When a node holds more than its share of the cluster's connections, and how many to move. Pure.

A load balancer never moves an established connection: with ``leastconn`` a node that joins
(or comes back from a drain) only gets *new* clients while the old nodes stay full. So each
node compares what it holds with its share and, when it holds clearly more, closes a few of its
connections (1012 with a reconnect hint); the balancer sends them to the emptier nodes.

- **Share**: ``cluster connections x this node's weight / total weight`` over this node and
  the peers that accept connections (healthy, not draining, not stale) and have done so for
  ``settle`` seconds (the balancer's ``rise``: before that, a moved client would come back).
  Weights are capacities (:func:`capacity_weights`), so nodes of unequal size end proportional.
- **Start and stop**: move only above ``share + max(tolerance x share, MIN_EXCESS)``; each
  move is at most ``connections - share``, so a node never goes below its share.
- **Room**: never more than the other accepting nodes can still take (their share, and their
  ``max_connections``), so a cluster with no room elsewhere moves nothing.
- **Rate**: a token bucket of ``rate x connections`` per second, at most one second's worth
  at once; an episode starts with an empty bucket.
- **In flight**: a moved client is in no node's published count until it reconnects (its hint
  plus one publishing interval, longer on a loaded machine). So the cluster's total is the
  largest seen in the last ``2 x flight`` seconds (a dip while clients move is not a smaller
  cluster), and the moves of the last ``flight`` seconds count against the others' room. Both
  err on the side of moving less: a cluster that really shrinks is seen ``2 x flight`` seconds
  later, and a client that has landed but is still counted in flight only delays the next move.
- **Never twice**: a client moved in the last ``memory`` seconds is not picked again.

:class:`Rebalancer` keeps that state between calls; time is the ``now`` argument (seconds of
any monotonic clock), so tests pass literal numbers.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MIN_EXCESS = 2  # connections above the share that are never "clearly more"

# States, as the health JSON and /metrics show them.
OFF = "off"  # disabled by WSTIME_REBALANCE_ENABLED, or no shared store to learn the cluster from
UNKNOWN = "unknown"  # the cluster's state could not be read
DRAINING = "draining"  # this node drains: its connections all leave anyway
BALANCED = "balanced"  # at or below share + tolerance
NO_ROOM = "no-room"  # no other node can take connections (above its share, or no node ready)
MOVING = "moving"  # closing connections towards the share
STATES = (OFF, UNKNOWN, DRAINING, BALANCED, NO_ROOM, MOVING)


@dataclass(frozen=True)
class NodeLoad:
    """What one node published: enough to weigh it and to know whether it takes connections."""

    name: str
    connections: int
    accepting: bool  # healthy, not draining, not stale
    max_connections: int | None = None
    usable_bits_per_second: float | None = None  # link capacity x health threshold


@dataclass(frozen=True)
class Decision:
    """One round's outcome: the state, this node's share (None if unknown) and how many to move."""

    state: str
    share: float | None = None
    move: int = 0
    cluster_connections: int = 0
    room: int = 0  # connections the other accepting nodes can still take


def capacity_weights(nodes: Sequence[NodeLoad]) -> list[float]:
    """Weigh nodes by capacity, in one unit for all: connections, else bandwidth, else equal.

    ``max_connections`` when every node sets it; otherwise the usable bandwidth when every node
    knows its link; otherwise 1 each (identical nodes).
    """
    if nodes and all(n.max_connections for n in nodes):
        return [float(n.max_connections or 0) for n in nodes]
    if nodes and all(n.usable_bits_per_second for n in nodes):
        return [float(n.usable_bits_per_second or 0) for n in nodes]
    return [1.0 for _ in nodes]


class Rebalancer:
    """The decision with its memory (see the module docstring); no I/O."""

    def __init__(
        self, *, tolerance: float, rate: float, settle: float, flight: float, memory: float
    ) -> None:
        self.tolerance = tolerance
        self.rate = rate
        self.settle = settle
        self.flight = flight
        self.memory = memory
        self._budget = 0.0
        self._budget_at: float | None = None  # None: no episode in progress
        self._accepting_since: dict[str, float] = {}
        self._in_flight: deque[tuple[float, int]] = deque()
        self._totals: deque[tuple[float, int]] = deque()  # (when, published total), see decide
        self._moved: dict[str, float] = {}  # client id -> when it was moved (insertion order)

    def decide(
        self, now: float, me: NodeLoad, peers: Iterable[NodeLoad], *, draining: bool = False
    ) -> Decision:
        """Return how many of ``me``'s connections to move now (call :meth:`moved` after)."""
        peers = [p for p in peers if p.name != me.name]
        ready = self._ready(now, peers)
        self._forget(now)
        if draining:
            return self._idle(Decision(DRAINING))
        in_flight = sum(count for _, count in self._in_flight)
        members = [me, *ready]
        weights = capacity_weights(members)
        total = self._recent_total(now, me.connections + sum(p.connections for p in ready))
        total_weight = sum(weights)
        share = total * weights[0] / total_weight
        room = 0
        for peer, weight in zip(ready, weights[1:], strict=False):
            free = total * weight / total_weight - peer.connections
            if peer.max_connections:
                free = min(free, peer.max_connections - peer.connections)
            room += max(0, math.floor(free))
        if peers and not ready:  # others, but none that takes connections (yet)
            return self._idle(Decision(NO_ROOM, share, 0, total, room))
        if me.connections <= share + max(self.tolerance * share, MIN_EXCESS):
            return self._idle(Decision(BALANCED, share, 0, total, room))
        if room <= 0:
            return self._idle(Decision(NO_ROOM, share, 0, total, room))
        per_second = self.rate * me.connections
        if self._budget_at is None:
            self._budget = 0.0
        else:
            self._budget = min(
                per_second, self._budget + per_second * max(0.0, now - self._budget_at)
            )
        self._budget_at = now
        move = max(
            0, min(math.floor(self._budget), math.floor(me.connections - share), room - in_flight)
        )
        self._budget -= move
        return Decision(MOVING, share, move, total, room)

    def moved(self, now: float, client_ids: Sequence[str]) -> None:
        """Record that ``client_ids`` were closed to move them at ``now``."""
        if client_ids:
            self._in_flight.append((now, len(client_ids)))
        for client_id in client_ids:
            self._moved.pop(client_id, None)
            self._moved[client_id] = now

    def may_move(self, now: float, client_id: str) -> bool:
        """Whether ``client_id`` was not moved in the last ``memory`` seconds."""
        at = self._moved.get(client_id)
        return at is None or now - at >= self.memory

    @property
    def remembered(self) -> int:
        """Client ids this node would not move again yet (bounded by rate x memory)."""
        return len(self._moved)

    def _ready(self, now: float, peers: list[NodeLoad]) -> list[NodeLoad]:
        """Peers accepting connections for at least ``settle`` seconds, as this node saw them."""
        seen = {p.name for p in peers if p.accepting}
        for name in list(self._accepting_since):
            if name not in seen:
                del self._accepting_since[name]
        for name in seen:
            self._accepting_since.setdefault(name, now)
        return [
            p for p in peers if p.accepting and now - self._accepting_since[p.name] >= self.settle
        ]

    def _recent_total(self, now: float, published: int) -> int:
        """The largest published total of the last ``2 x flight`` seconds (this one included)."""
        totals = self._totals
        while totals and now - totals[0][0] >= 2 * self.flight:
            totals.popleft()
        while totals and totals[-1][1] <= published:  # a monotonic deque: max at the front
            totals.pop()
        totals.append((now, published))
        return totals[0][1]

    def _forget(self, now: float) -> None:
        while self._in_flight and now - self._in_flight[0][0] >= self.flight:
            self._in_flight.popleft()
        # Ids were inserted in time order, so the oldest come first.
        for client_id, at in list(self._moved.items()):
            if now - at < self.memory:
                break
            del self._moved[client_id]

    def _idle(self, decision: Decision) -> Decision:
        self._budget_at = None
        return decision
