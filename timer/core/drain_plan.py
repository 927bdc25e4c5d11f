"""How a node leaves politely: the pacing of its closes and the hint each close carries. Pure.

A drain keeps serving for ``notice`` seconds (the load balancer's detection time, so no new
connection arrives after the closes begin), then closes its connections in equal batches spread
over ``window`` seconds so the reconnects spread over the other nodes, and must be done before
``deadline`` (inside the platform's grace period).
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

HINT = re.compile(r"reconnect in (\d+) ms")


@dataclass(frozen=True)
class DrainPlan:
    """The timings of one drain, in seconds from its start."""

    notice: float
    window: float
    deadline: float
    batch_every: float = 0.1

    def batches(self, total: int) -> list[int]:
        """Split ``total`` closes into batches, one every ``batch_every`` over the window."""
        if total <= 0:
            return []
        slots = max(1, min(total, math.floor(self.window / self.batch_every + 1e-9)))
        base, extra = divmod(total, slots)
        return [base + (1 if i < extra else 0) for i in range(slots)]


def reconnect_hint_ms(max_ms: int, rng: random.Random | None = None) -> int:
    """Return a random delay in [0, max_ms] for a client to wait before reconnecting."""
    return (rng or random).randint(0, max(0, max_ms))


def close_reason(kind: str, hint_ms: int) -> str:
    """The close frame's reason: what happened and when to come back (short: 123 bytes max)."""
    return f"{kind}; reconnect in {hint_ms} ms"


def hint_from_reason(reason: str) -> int | None:
    """Read the reconnect hint back from a close reason (what the page does in JavaScript)."""
    match = HINT.search(reason or "")
    return int(match.group(1)) if match else None
