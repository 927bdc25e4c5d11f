"""Hot HTTP endpoints served straight to their views, before Django's middleware.

Every built-in Django middleware is synchronous, so under ASGI each request crosses to a worker
thread and back for each of them, twice: that alone put /healthcheck's p99 at tens of
milliseconds under load. The health and liveness views need no session, user, CSRF or message
middleware, so :class:`DirectViews` builds Django's request, calls the (async) view and sends
its response with Django's own ASGI handler. The views stay in the URLconf too, so the
Django test client and any other path to them behave the same.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable, Mapping

from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponseBase

View = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


class DirectViews:
    """ASGI application: ``routes`` (exact paths) to their views, everything else to ``app``."""

    def __init__(self, app: ASGIHandler, routes: Mapping[str, View]) -> None:
        self.app = app
        self.routes = dict(routes)

    async def __call__(self, scope, receive, send) -> None:
        view = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if view is None:
            await self.app(scope, receive, send)
            return
        # GET and HEAD carry no body; anything else is answered 405 by the view's require_safe.
        request, error_response = self.app.create_request(scope, io.BytesIO())
        response = error_response or await view(request)
        await self.app.send_response(response, send)
