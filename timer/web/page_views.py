"""HTTP views: the page."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from ..node.node import get_node


@require_safe
def index(request: HttpRequest) -> HttpResponse:
    """Serve the client page."""
    node = get_node()
    return render(
        request,
        "timer/index.html",
        {
            "node_name": node.name,
            "tick_ms": round(node.config.tick_interval * 1000),
        },
    )
