"""The checker: pure rules over recorded connection histories, and nothing else.

The invariant (README, "Session continuity"): within one connection frames go N, N+1, N+2...;
the first frame f of a connection and the last count l the session had shown before it satisfy
l < f <= l + 1 + k, k >= 1 being the session's connections open between the two frames (never a
repeat or a reset; + 2 after one crash, one more for each connection that died unseen); a new
session starts at
0; two connections of one session never tick the same counts; at quiescence a session has
exactly one live connection (a duplicate's loser stopped on 4001, the winner ticks); every
session ticks again within the recovery bound after the last fault heals.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

ACCESS_LINE = re.compile(r"^\S+:\d+ - - \[")
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d |(DEBUG|INFO|WARNING|ERROR|CRITICAL) )")

# A resumed session's first frame is at most 1 + k past the last one seen, k being the
# connections of the session that were open between the two frames (the one that showed the
# last frame included): under the lease each may have been sent one frame more than Redis held
# when it ended without a recorded close. One crash: + 2; several connections in a row that die
# before showing a frame: one more each (README, Guarantees).
SKIP_BASE = 1
FIRST_COUNT = 0  # a new session's first frame: "connected for 0 seconds"
# Kinds reported and counted but not failing a run: what a lossy link costs by design.
INFORMATIONAL = frozenset({"skip-after-link-fault"})


@dataclass(frozen=True)
class Violation:
    """One broken rule: its kind, the session id, and what was seen."""

    kind: str
    id: str
    detail: str
    window: tuple[float, float] | None = None  # from the last good frame to the bad one


@dataclass(frozen=True)
class LinkFault:
    """A time when ``node``'s link to its clients lost packets (cut, or lossy)."""

    node: str
    start: float
    end: float


def check_continuity(
    connections: Iterable[Mapping], link_faults: Sequence[LinkFault] = ()
) -> list[Violation]:
    """Every frame rule, over connection records (:class:`chaos.client.Connection` as dicts).

    A node whose link to the client loses packets keeps sending frames that never arrive, and
    counts them as shown, so the next connection may start more than two past the last frame
    the client saw. Such a skip, after a connection that ended while its node's link was
    faulty (``link_faults``), has the kind ``skip-after-link-fault``: the bound holds for
    frames that reach the client only (:data:`INFORMATIONAL`).
    """
    by_id: dict[str, list[Mapping]] = defaultdict(list)
    for conn in connections:
        by_id[conn["id"]].append(conn)
    violations: list[Violation] = []
    for session_id, conns in by_id.items():
        violations.extend(_check_session(session_id, conns, link_faults))
    return violations


def _lost_to_a_link(
    conns: list[Mapping], since: float, until: float, faults: Sequence[LinkFault]
) -> bool:
    """Whether a connection of the session, open between ``since`` and ``until``, had a faulty
    link: frames sent to it may have been lost. A connection that showed no frame cannot say
    which node it reached, so a fault on any node's link counts for it."""
    for conn in conns:
        if conn["opened"] is None:
            continue
        ended = conn["ended"] if conn["ended"] is not None else float("inf")
        if ended < since or conn["opened"] > until:
            continue
        last = conn["frames"][-1] if conn["frames"] else None
        begin = last[2] if last else conn["opened"]
        if any(
            (last is None or f.node == last[0]) and f.start <= ended and begin <= f.end
            for f in faults
        ):
            return True
    return False


def _connections_between(conns: list[Mapping], since: float, until: float, current: int) -> int:
    """How many of the session's connections, other than ``current``, were open at some time
    from ``since`` to ``until`` (at least 1: the one that showed the frame at ``since``)."""
    count = 0
    for index, conn in enumerate(conns):
        if index == current or conn["opened"] is None or conn["opened"] > until:
            continue
        if conn["ended"] is None or conn["ended"] >= since:
            count += 1
    return max(1, count)


def _check_session(
    session_id: str, conns: list[Mapping], link_faults: Sequence[LinkFault] = ()
) -> list[Violation]:
    out: list[Violation] = []
    frames = sorted(
        (
            (at, n, node, index)
            for index, conn in enumerate(conns)
            for node, n, at in conn["frames"]
        ),
        key=lambda frame: (frame[0], frame[3]),
    )
    last_in: dict[int, int] = {}
    flagged: set[int] = set()  # connections already reported: one violation per connection
    seen: int | None = None
    seen_on = ""
    seen_at = 0.0
    for at, n, node, index in frames:
        where = f"{conns[index]['client']}#{conns[index]['attempt']}@{node} t={at:.2f}"
        found: Violation | None = None
        if index not in last_in:
            if seen is None:
                if n != FIRST_COUNT:
                    found = Violation(
                        "bad-start", session_id, f"a new session's first frame is {n} ({where})"
                    )
            elif n <= seen:
                kind = "reset" if n == FIRST_COUNT else "repeat"
                found = Violation(
                    kind,
                    session_id,
                    f"last seen {seen} ({seen_on}), then first frame {n} ({where})",
                    (seen_at, at),
                )
            elif n > seen + SKIP_BASE + _connections_between(conns, seen_at, at, index):
                kind = (
                    "skip-after-link-fault"
                    if _lost_to_a_link(conns, seen_at, at, link_faults)
                    else "skip"
                )
                found = Violation(
                    kind,
                    session_id,
                    f"last seen {seen} ({seen_on}), then first frame {n} ({where})",
                    (seen_at, at),
                )
        else:
            previous = last_in[index]
            if n != previous + 1:
                kind = "repeat-in-connection" if n <= previous else "gap-in-connection"
                out.append(Violation(kind, session_id, f"{previous} then {n} ({where})", (at, at)))
            elif seen is not None and n <= seen and index not in flagged:
                found = Violation(
                    "overlap",
                    session_id,
                    f"frame {n} after another connection showed {seen} "
                    f"({seen_on}; this one {where})",
                    (seen_at, at),
                )
        if found is not None:
            out.append(found)
            flagged.add(index)
        last_in[index] = n
        if seen is None or n > seen:
            seen, seen_on, seen_at = n, where, at
    for conn in conns:
        for text in conn.get("bad_frames", ()):
            out.append(Violation("bad-frame", session_id, text))
    return out


def check_recovery(
    connections: Iterable[Mapping],
    *,
    healed_at: float,
    deadline: float,
    outcomes: Mapping[str, list[str]],
) -> list[Violation]:
    """Every session that still has a client ticks again by ``deadline`` (after ``healed_at``).

    ``outcomes`` maps each id to its clients' outcomes (``running``, ``taken-over``, ``gave-up``,
    ``stopped``): a session whose every client stopped on 4001 is abandoned, which is a violation
    too (a takeover must leave the newer connection running).
    """
    recovered: dict[str, float] = {}
    for conn in connections:
        for _node, _n, at in conn["frames"]:
            if healed_at <= at <= deadline:
                recovered[conn["id"]] = min(at, recovered.get(conn["id"], at))
    out: list[Violation] = []
    for session_id, results in outcomes.items():
        if all(result == "taken-over" for result in results):
            out.append(
                Violation(
                    "abandoned",
                    session_id,
                    f"every client of the session was closed with 4001 ({len(results)})",
                )
            )
        elif "gave-up" in results and session_id not in recovered:
            out.append(Violation("gave-up", session_id, "the client reached its retry limit"))
        elif session_id not in recovered:
            out.append(
                Violation(
                    "no-recovery",
                    session_id,
                    f"no frame within {deadline - healed_at:.0f} s after healing",
                )
            )
    return out


def check_quiescence(live: Mapping[str, int]) -> list[Violation]:
    """At most one live connection per session once the cluster has settled."""
    return [
        Violation("duplicate-live", session_id, f"{count} live connections")
        for session_id, count in live.items()
        if count > 1
    ]


def check_logs(logs: Mapping[str, str]) -> list[Violation]:
    """No traceback in any node log (``logs`` maps a log's name to its text).

    One violation per logged exception: a chained traceback ("During handling of the above
    exception ...") belongs to the one before it. The detail is the line logged with it and
    the exception's last line.
    """
    out = []
    for name, text in logs.items():
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if not line.startswith("Traceback"):
                continue
            before = next(
                (earlier for earlier in reversed(lines[max(0, i - 3) : i]) if earlier), ""
            )
            if before.startswith(("During handling", "The above exception")):
                continue
            last = ""
            for later in lines[i + 1 :]:
                if ACCESS_LINE.match(later):
                    continue  # daphne's access log, written between a traceback's lines
                if _is_log_line(later):
                    break
                if later and not later.startswith(
                    (" ", "Traceback", "During handling", "The above exception")
                ):
                    last = later
            out.append(
                Violation("traceback", name, f"line {i + 1}: {before[-160:]} -> {last[:160]}")
            )
    return out


def _is_log_line(line: str) -> bool:
    """Whether ``line`` starts a new log record (a timestamp or a level), not a traceback's."""
    return bool(LOG_LINE.match(line))


def recovery_times(connections: Iterable[Mapping], healed_at: float) -> list[float]:
    """Seconds from healing to each session's first frame after it."""
    first: dict[str, float] = {}
    for conn in connections:
        for _node, _n, at in conn["frames"]:
            if at >= healed_at and at < first.get(conn["id"], float("inf")):
                first[conn["id"]] = at
    return sorted(at - healed_at for at in first.values())


def faults_in(
    window: tuple[float, float], faults: Iterable[Mapping], margin: float = 2.0
) -> list[Mapping]:
    """The injected faults that overlap ``window`` (widened by ``margin`` before it)."""
    start, end = window
    return [
        f
        for f in faults
        if not f.get("skipped")
        and f["started"] <= end
        and (f["healed"] if f["healed"] is not None else end) >= start - margin
    ]
