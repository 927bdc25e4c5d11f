"""The cluster's state in Redis: each node publishes its own, any node or page reads them all.

Keys (node names are ``[a-z0-9-]``, so they never contain the ``:`` separator):

- ``wstime:cluster:node:<name>``: a hash of this node's latest state, the fields of
  :class:`NodeState` (all strings; numbers in decimal, booleans ``0``/``1``, unknown values
  empty) plus ``reported_at_ms``, Redis's own ``TIME`` when it was written.
- ``wstime:cluster:history:<name>``: a list, newest first, of at most ``history`` entries
  ``"<reported_at_ms>,<usage>,<connections>"`` (usage empty while unknown), one per publish.
- ``wstime:cluster:index``: a sorted set, node name -> ``reported_at_ms`` of its last publish.

Publishing is one script call per node per interval whatever the node holds (replace the
hash, push and trim the history, set both expiries, update and prune the index); reading the
cluster is one script call too. Every key expires ``ttl`` after its node's last publish, so a
dead node vanishes on its own; readers also get each record's age (Redis's clock minus
``reported_at_ms``), so node clocks never enter the comparison.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

import redis.asyncio as aioredis

KEY_PREFIX = "wstime:cluster:"
NODE_PREFIX = KEY_PREFIX + "node:"
HISTORY_PREFIX = KEY_PREFIX + "history:"
INDEX_KEY = KEY_PREFIX + "index"
HISTORY_LENGTH = 300  # entries: five minutes at one publish per second
TTL_INTERVALS = 10  # a node's keys outlive its last publish by this many intervals...
MIN_TTL = 5.0  # ...and by this many seconds at least

# KEYS: node hash, history list, index. ARGV: ttl ms, history length, node name,
# history entry without its time, then the hash's field/value pairs.
PUBLISH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'reported_at_ms', now, unpack(ARGV, 5))
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('LPUSH', KEYS[2], now .. ',' .. ARGV[4])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('ZADD', KEYS[3], now, ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
return now
"""

# KEYS: index. ARGV: ttl ms, node hash prefix. Returns {now_ms, fields of each live node...}.
# The node hashes are named from the index, not passed as KEYS: fine on one Redis (wstime's
# layout), not on Redis Cluster.
READ = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {now}
for _, name in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[1]), '+inf')) do
  local record = redis.call('HGETALL', ARGV[2] .. name)
  if #record > 0 then table.insert(out, record) end
end
return out
"""


def ttl_for(interval: float) -> float:
    """How long a node's keys outlive its last publish, for a publishing ``interval``.

    Readers pass the same value (``ClusterState.from_url(url, ttl=ttl_for(interval))``).
    """
    return max(MIN_TTL, TTL_INTERVALS * interval)


@dataclass(frozen=True)
class NodeState:
    """One node's published state: what the cluster page shows and what rebalancing weighs."""

    name: str
    version: str = ""
    status: str = ""  # the health status: ok, overloaded, draining, stale
    reason: str = ""
    connections: int = 0
    max_connections: int | None = None
    usage: float | None = None  # network usage, 0..1, window average
    threshold: float | None = None
    recovery_level: float | None = None
    capacity_bits_per_second: int | None = None
    sampler_age: float | None = None  # seconds since the health sampler's last reading
    draining: bool = False
    accepting: bool = False  # healthy and not draining: takes new connections
    spare_percent: int = 0  # the agent check's weight ("up N%"), 0 when not up
    redis: str = ""  # the node's shared session store: up, down, not configured
    started_at: float = 0.0  # wall clock of the node's start
    rebalance_state: str = ""
    rebalance_share: float | None = None
    rebalance_moved: int = 0
    reported_at_ms: int = 0  # Redis TIME of the publish (set by Redis, not by the node)
    age: float = 0.0  # seconds since that publish, by Redis's clock (set when read)

    def to_fields(self) -> dict[str, str]:
        """The hash's fields but ``reported_at_ms`` and ``age`` (Redis sets and derives them)."""
        out = {}
        for f in fields(self):
            if f.name in ("reported_at_ms", "age"):
                continue
            out[f.name] = _encode(getattr(self, f.name))
        return out

    @classmethod
    def from_fields(cls, raw: Mapping[str, str], *, now_ms: int | None = None) -> NodeState:
        """Parse a hash as read from Redis; unknown fields are ignored, missing ones default."""
        values = {}
        for f in fields(cls):
            if f.name == "age" or f.name not in raw:
                continue
            values[f.name] = _decode(f.type, raw[f.name])
        state = cls(**values)
        if now_ms is not None and state.reported_at_ms:
            state = replace(state, age=max(0.0, (now_ms - state.reported_at_ms) / 1000))
        return state


def _encode(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(round(value, 6))
    return str(value)


def _decode(kind: str, text: str):
    kind = kind.replace(" ", "")
    if kind == "str":
        return text
    if kind == "bool":
        return text == "1"
    if text == "":
        return None if kind.endswith("|None") else (0 if kind.startswith("int") else 0.0)
    base = kind.split("|")[0]
    try:
        return int(float(text)) if base == "int" else float(text)
    except ValueError:
        return None if kind.endswith("|None") else 0


@dataclass(frozen=True)
class HistoryEntry:
    """One point of a node's chart."""

    reported_at_ms: int
    usage: float | None
    connections: int


def parse_history(entry: str) -> HistoryEntry:
    at, usage, connections = entry.split(",")
    return HistoryEntry(int(at), float(usage) if usage else None, int(connections))


class ClusterState:
    """Publishes this node's :class:`NodeState` and reads everyone's; see the module docstring."""

    def __init__(
        self, client: aioredis.Redis, *, ttl: float, history: int = HISTORY_LENGTH
    ) -> None:
        self._redis = client
        self.ttl_ms = max(1, math.ceil(ttl * 1000))
        self.history = history
        self._publish = client.register_script(PUBLISH)
        self._read = client.register_script(READ)

    @classmethod
    def from_url(cls, url: str, *, ttl: float, socket_timeout: float = 2.0) -> ClusterState:
        client = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            max_connections=2,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
        )
        return cls(client, ttl=ttl)

    async def publish(self, state: NodeState) -> int:
        """Write ``state`` (one round trip); return Redis's time of the write, in ms."""
        usage = "" if state.usage is None else _encode(state.usage)
        pairs = [item for pair in state.to_fields().items() for item in pair]
        return int(
            await self._publish(
                keys=[NODE_PREFIX + state.name, HISTORY_PREFIX + state.name, INDEX_KEY],
                args=[
                    self.ttl_ms,
                    self.history,
                    state.name,
                    f"{usage},{state.connections}",
                    *pairs,
                ],
            )
        )

    async def read(self) -> list[NodeState]:
        """Every node that published within ``ttl``, by name, with its age (one round trip)."""
        reply = await self._read(keys=[INDEX_KEY], args=[self.ttl_ms, NODE_PREFIX])
        now_ms = int(reply[0])
        states = []
        for flat in reply[1:]:
            raw = dict(zip(flat[::2], flat[1::2], strict=False))
            states.append(NodeState.from_fields(raw, now_ms=now_ms))
        return sorted(states, key=lambda s: s.name)

    async def read_history(
        self, names: list[str], limit: int | None = None
    ) -> dict[str, list[HistoryEntry]]:
        """The newest ``limit`` history entries of each named node, oldest first; one round trip."""
        end = (limit or self.history) - 1
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.lrange(HISTORY_PREFIX + name, 0, end)
            replies = await pipe.execute()
        return {
            name: [parse_history(e) for e in reversed(entries)]
            for name, entries in zip(names, replies, strict=False)
        }

    async def aclose(self) -> None:
        await self._redis.aclose()
