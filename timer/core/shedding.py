"""Load shedding: which share of its connections an overloaded node closes, and when. Pure.

The load balancer never moves existing connections, so a node whose clients got busier than it
can carry must send some away itself. It does so slowly and boundedly:

- an *episode* starts when the window's average usage reaches the shed level;
- its budget is what would bring usage back to the health threshold if usage followed the
  connection count: closing k of n connections lowers it to about ``usage * (n - k) / n``, so
  ``k = n * (1 - threshold / usage)``. Never more: the node does not shed below the threshold;
- the budget is spent a small fraction of the connections per round (each close 1013 with a
  reconnect hint, so clients land on nodes with room);
- the episode ends when usage falls below the threshold. If usage stays above the shed level
  for a whole window after the budget is spent (traffic the connections do not explain), a new
  episode begins, so the node keeps shedding, slowly, only while it stays overloaded.
"""

from __future__ import annotations

import math


class Shedder:
    """Decides, once per round, how many connections to close. Time is passed in."""

    def __init__(self, *, shed_level: float, fraction_per_round: float, window: float) -> None:
        self.shed_level = shed_level
        self.fraction_per_round = fraction_per_round
        self.window = window
        self.budget: int | None = None  # None: no episode
        self.spent_at: float | None = None  # when this episode's budget ran out

    def decide(self, *, now: float, connections: int, usage: float | None, threshold: float) -> int:
        """Return how many of ``connections`` to close this round."""
        if usage is None or connections <= 0:
            return 0
        if self.budget is not None and usage < threshold:
            self.budget, self.spent_at = None, None  # overload over
        if self.budget == 0 and self.spent_at is not None and now - self.spent_at >= self.window:
            self.budget, self.spent_at = None, None  # still overloaded a window later
        if self.budget is None:
            if usage < self.shed_level:
                return 0
            self.budget = max(0, math.floor(connections * (1 - threshold / usage)))
        count = min(self.budget, max(1, math.floor(connections * self.fraction_per_round)))
        self.budget -= count
        if self.budget == 0 and self.spent_at is None:
            self.spent_at = now
        return count
