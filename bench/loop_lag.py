"""A wstime node's own event-loop lag, from two scrapes of its ``/metrics`` histogram."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from typing import Any

from localcluster.processes import LOOPBACK, http_get
from timer.node.loop_lag import bucket_percentile

from .servers import Server

logger = logging.getLogger(__name__)

LAG_METRIC = "wstime_event_loop_lag_seconds"
Scrape = tuple[list[tuple[float, float]], float]  # (upper bound, cumulative count), the sum

_BUCKET = re.compile(rf'^{LAG_METRIC}_bucket\{{[^}}]*le="(?P<le>[^"]+)"[^}}]*\}} (?P<n>\S+)$')
_SUM = re.compile(rf"^{LAG_METRIC}_sum\{{[^}}]*\}} (?P<v>\S+)$")


def lag_buckets(text: str) -> tuple[list[tuple[float, float]], float]:
    """The lag histogram of a /metrics text: (upper bound, cumulative count) and the sum."""
    buckets: list[tuple[float, float]] = []
    total = 0.0
    for line in text.splitlines():
        if match := _BUCKET.match(line):
            buckets.append((float(match["le"]), float(match["n"])))
        elif match := _SUM.match(line):
            total = float(match["v"])
    return sorted(buckets), total


def lag_figures(
    before: tuple[list[tuple[float, float]], float], after: tuple[list[tuple[float, float]], float]
) -> dict[str, Any]:
    """Lag between two scrapes of the histogram: samples, mean, and p50/p99/max as bucket bounds.

    A bound is an upper bound of the true value (``max_ms`` None: past the last finite bound).
    """
    (b_buckets, b_sum), (a_buckets, a_sum) = before, after
    if not b_buckets or not a_buckets:  # a scrape failed: nothing to subtract
        return {
            "samples": 0,
            "mean_ms": None,
            "p50_ms": None,
            "p99_ms": None,
            "max_ms": None,
            "over_last_bound": False,
        }
    earlier = dict(b_buckets)
    delta = [(bound, n - earlier.get(bound, 0.0)) for bound, n in a_buckets]
    samples = delta[-1][1] if delta else 0.0
    highest = next((bound for bound, n in reversed(_per_bucket(delta)) if n > 0), None)

    def ms(seconds: float | None) -> float | None:
        return None if seconds is None or math.isinf(seconds) else round(seconds * 1000, 1)

    return {
        "samples": int(samples),
        "mean_ms": round(1000 * (a_sum - b_sum) / samples, 1) if samples else None,
        "p50_ms": ms(bucket_percentile(delta, 50)),
        "p99_ms": ms(bucket_percentile(delta, 99)),
        "max_ms": ms(highest),
        "over_last_bound": bool(highest is not None and math.isinf(highest)),
    }


def _per_bucket(cumulative: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    previous = 0.0
    result = []
    for bound, seen in cumulative:
        result.append((bound, seen - previous))
        previous = seen
    return result


def lag_scrape(server: Server) -> Scrape:
    """The lag histogram of ``server`` now (empty if /metrics did not answer)."""
    status, body = http_get(f"http://{LOOPBACK}:{server.ws_port}/metrics", 10.0)
    if status != 200:
        logger.warning("no /metrics from %s (%s): no loop lag", server.managed.name, status)
        return [], 0.0
    return lag_buckets(body)
