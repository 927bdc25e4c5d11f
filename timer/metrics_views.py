"""The ``/metrics`` endpoint (Prometheus text format), open to an allowlist or a token."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from .conf import config
from .metrics import build_registry, scrape_allowed

_registry: CollectorRegistry | None = None


@never_cache
@require_safe
async def metrics(request: HttpRequest) -> HttpResponse:
    """Return every metric, or 403 to a scraper outside WSTIME_METRICS_ALLOW without the token."""
    global _registry
    if not scrape_allowed(config(), request.META.get("REMOTE_ADDR", ""),
                          request.headers.get("Authorization", "")):
        return HttpResponse("/metrics is not open to this address; see WSTIME_METRICS_ALLOW "
                            "and WSTIME_METRICS_TOKEN\n", status=403,
                            content_type="text/plain; charset=utf-8")
    if _registry is None:
        _registry = build_registry()
    return HttpResponse(generate_latest(_registry), content_type=CONTENT_TYPE_LATEST)
