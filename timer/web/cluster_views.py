"""The admin's cluster page: every node's state, its charts, and drain buttons (staff only).

- ``/admin/cluster/``: the page; its script (``static/timer/cluster.js``) draws the rows from
  the JSON below and polls it every 2 s.
- ``/admin/cluster/state.json``: the rows, read from the cluster state the nodes publish in
  Redis (:mod:`timer.node.cluster_state`; two round trips on the async client, nothing asked of any
  node), or this node's own state when ``WSTIME_REDIS_URL`` is unset.
- ``/admin/cluster/drain/``: GET asks for confirmation, POST drains or undoes one node or all,
  as ``manage.py drain`` does (:func:`timer.health.policy_store.set_draining`).
"""

from __future__ import annotations

import asyncio
import logging
import weakref

import redis.asyncio as aioredis
from asgiref.sync import async_to_sync
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_safe
from redis.exceptions import RedisError

from ..config.loader import config
from ..health.policy_store import set_draining
from ..node.cluster_state import ClusterState, NodeState, ttl_for
from ..node.cluster_task import STALE_INTERVALS, node_state
from ..node.node import get_node
from .cluster_page import CHART_SECONDS, chart_limit, page_data

logger = logging.getLogger(__name__)

POLL_MS = 2000  # how often the page asks for the state
READER_CONNECTIONS = 4  # to Redis, per serving process, for every open cluster page
REDIS_TIMEOUT = 2.0  # seconds: the page says Redis is unreadable rather than hang

HTTP_FORBIDDEN = 403  # the JSON's answer to anyone but active staff (the page redirects instead)
HTTP_SERVICE_UNAVAILABLE = 503  # Redis configured but unreadable

# One reader per event loop (an asyncio Redis client belongs to the loop that made it), so a
# poll costs the two reads and no connection set-up.
_readers: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, float], ClusterState]
] = weakref.WeakKeyDictionary()


def _reader(url: str, ttl: float) -> ClusterState:
    per_loop = _readers.setdefault(asyncio.get_running_loop(), {})
    reader = per_loop.get((url, ttl))
    if reader is None:
        # A blocking pool: several admins polling at once wait for a connection, never fail.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            decode_responses=True,
            max_connections=READER_CONNECTIONS,
            timeout=REDIS_TIMEOUT,
            socket_timeout=REDIS_TIMEOUT,
            socket_connect_timeout=REDIS_TIMEOUT,
        )
        reader = per_loop[(url, ttl)] = ClusterState(aioredis.Redis(connection_pool=pool), ttl=ttl)
    return reader


async def cluster_data() -> dict:
    """The page's JSON: every live node from Redis, or this node alone without Redis."""
    cfg = config()
    stale_after = STALE_INTERVALS * cfg.sample_interval
    if not cfg.redis_url:
        node = get_node()
        await node.ensure_started()
        return page_data([node_state(node)], None, stale_after=stale_after, source="local")
    reader = _reader(cfg.redis_url, ttl_for(cfg.sample_interval))
    states = await reader.read()
    histories = await reader.read_history(
        [s.name for s in states], chart_limit(cfg.sample_interval)
    )
    return page_data(states, histories, stale_after=stale_after, source="redis")


async def _published(name: str) -> NodeState | None:
    cfg = config()
    states = await _reader(cfg.redis_url, ttl_for(cfg.sample_interval)).read()
    return next((s for s in states if s.name == name), None)


def _policy_in_force(name: str) -> dict[str, object] | None:
    """The policy fields ``name`` applies, from its published state (None: not known).

    A drain that must create the node's own row copies them, so that the row changes only
    draining, not the node's limits for this node's settings (the page may be served by
    another node with other settings).
    """
    if not name or not config().redis_url:
        return None
    try:
        state = async_to_sync(_published)(name)
    except (RedisError, OSError):
        return None
    if state is None or state.threshold is None or state.recovery_level is None:
        return None
    return {
        "threshold": state.threshold,
        "recovery_margin": round(state.threshold - state.recovery_level, 6),
        "max_connections": state.max_connections,
    }


@never_cache
@require_safe
async def state_json(request: HttpRequest) -> HttpResponse:
    """Answer the cluster's rows and totals to active staff, 403 to anyone else."""
    user = await request.auser()
    if not (user.is_active and user.is_staff):
        return JsonResponse({"error": "staff only; log in to the admin"}, status=HTTP_FORBIDDEN)
    try:
        data = await cluster_data()
    except (RedisError, OSError) as exc:
        logger.warning("cluster page cannot read the cluster state (%s)", type(exc).__name__)
        return JsonResponse(
            {"error": f"cannot read the cluster state from Redis ({type(exc).__name__})"},
            status=HTTP_SERVICE_UNAVAILABLE,
        )
    return JsonResponse(data)


def page(request: HttpRequest) -> HttpResponse:
    """The page: a table its script fills from :func:`state_json`."""
    context = {
        **admin.site.each_context(request),
        "title": "Cluster",
        "state_url": reverse("cluster-state"),
        "drain_url": reverse("cluster-drain"),
        "poll_ms": POLL_MS,
        "chart_minutes": round(CHART_SECONDS / 60),
        "redis": bool(config().redis_url),
    }
    return TemplateResponse(request, "admin/timer/cluster.html", context)


@require_http_methods(["GET", "POST"])
def drain(request: HttpRequest) -> HttpResponse:
    """GET: ask to confirm draining (or undoing) ``node`` or all; POST: do it."""
    params = request.POST if request.method == "POST" else request.GET
    node = params.get("node", "")  # "": every node
    undo = params.get("action") == "undo"
    if request.method == "POST":
        try:
            change = set_draining(node, not undo, in_force=_policy_in_force(node))
        except ValidationError as exc:
            messages.error(request, f"Cannot drain node {node!r}: {' '.join(exc.messages)}")
        else:
            messages.success(request, change.message[:1].upper() + change.message[1:])
            if change.default_drains:
                messages.warning(
                    request, "The default policy still drains every node (undo for all nodes)."
                )
        return HttpResponseRedirect(reverse("cluster"))
    context = {
        **admin.site.each_context(request),
        "title": "Stop draining?" if undo else "Drain?",
        "node": node,
        "target": f"node {node}" if node else "every node",
        "undo": undo,
        "drain_url": reverse("cluster-drain"),
        "cluster_url": reverse("cluster"),
    }
    return TemplateResponse(request, "admin/timer/cluster_drain.html", context)


urlpatterns = [
    path("", admin.site.admin_view(page), name="cluster"),
    path("state.json", state_json, name="cluster-state"),
    path("drain/", admin.site.admin_view(drain), name="cluster-drain"),
]
