"""The ``/metrics`` endpoint, open to an allowlist or a token.

It answers in Prometheus' text format, or in OpenMetrics to a scraper that asks for it in its
Accept header (Prometheus does), through prometheus-client's own negotiation.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from ..config.loader import config
from .metrics_collector import build_registry, scrape_allowed

_registry: CollectorRegistry | None = None


@never_cache
@require_safe
async def metrics(request: HttpRequest) -> HttpResponse:
    """Return every metric in the format Accept asks for; 403 outside the allowlist without the token."""
    global _registry
    if not scrape_allowed(
        config(), request.META.get("REMOTE_ADDR", ""), request.headers.get("Authorization", "")
    ):
        return HttpResponse(
            "/metrics is not open to this address; see WSTIME_METRICS_ALLOW "
            "and WSTIME_METRICS_TOKEN\n",
            status=403,
            content_type="text/plain; charset=utf-8",
        )
    if _registry is None:
        _registry = build_registry()
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = HttpResponse(encode(_registry), content_type=content_type)
    response["Vary"] = "Accept"
    return response
