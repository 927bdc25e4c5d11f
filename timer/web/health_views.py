"""HTTP views for load balancers and orchestrators: ``/healthcheck`` and ``/livez``.

``/healthcheck`` answers from state the sampler keeps (:mod:`timer.health`) and the cached
policy: no database query, no Redis call and no waiting on the request path. Shared
dependencies (Redis, the database) are reported in the JSON but never fail the check: every
node shares them, so failing on them would take the whole service out of rotation at once.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from ..config.version import version
from ..health.monitor import Report
from ..health.policy_store import database_state, policy_error
from ..health.runtime import get_monitor
from ..node.cluster_task import RebalanceStats
from ..node.node import Node, get_node
from ..node.supervise import TaskState
from ..sessions.store import store_state

HTTP_OK = 200  # room for new connections
HTTP_UNAVAILABLE = 503  # no new connections please: full, draining, or the sampler is stale

TEXT = "text/plain"
JSON = "application/json"


@never_cache
@require_safe
async def healthcheck(request: HttpRequest) -> HttpResponse:
    """Answer 200 ``ok`` while this node has room for new connections, else 503 and why."""
    node = get_node()
    await node.ensure_started()  # cheap after the first call; starts the sampler
    report = node.health_report()  # draining: SIGTERM or manage.py drain
    status = HTTP_OK if report.healthy else HTTP_UNAVAILABLE
    if status == HTTP_UNAVAILABLE:
        node.counters.health_unavailable += 1
    if request.GET.get("format") == "json" or request.get_preferred_type([TEXT, JSON]) == JSON:
        return JsonResponse(
            health_json(node, report, stale_after=get_monitor().stale_after), status=status
        )
    return HttpResponse(report.reason, status=status, content_type=f"{TEXT}; charset=utf-8")


@never_cache
@require_safe
async def livez(request: HttpRequest) -> HttpResponse:
    """Answer 200 whenever the process and its event loop respond; check nothing shared."""
    return HttpResponse("alive", content_type=f"{TEXT}; charset=utf-8")


def health_json(node: Node, report: Report, *, stale_after: float) -> dict[str, Any]:
    """Return the JSON body: the report, the node, and the shared dependencies' state."""
    return {
        "node": node.name,
        "version": version(),
        "status": report.status,
        "reason": report.reason,
        "usage": _rounded(report.usage),
        "threshold": report.threshold,
        "recovery_level": _rounded(report.recovery_level),
        "window_seconds": report.window,
        "capacity_bits_per_second": report.capacity_bits_per_second,
        "capacity_source": report.capacity_source,
        "interfaces": list(report.interfaces),
        "connections": report.connections,
        "max_connections": report.max_connections,
        "full_by": list(report.full_by),
        "sampler_age_seconds": _rounded(report.sampler_age),
        "stale_after_seconds": stale_after,
        "policy_source": report.policy_source,
        "policy_error": policy_error(),
        "shared": {"redis": store_state(node.store), "database": database_state()},
        "tasks": [_task_json(state) for state in node.tasks],
        "rebalance": (node.cluster.stats if node.cluster else RebalanceStats(False)).as_json(),
    }


def _task_json(state: TaskState) -> dict[str, Any]:
    return {
        "name": state.name,
        "running": state.running,
        "restarts": state.restarts,
        "last_error": state.last_error or None,
        "crash_looping": state.crash_looping,
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
