"""Static files served by the node itself, with caching headers, under daphne."""

from __future__ import annotations

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

from .conf import config


class CachedStaticFiles(ASGIStaticFilesHandler):
    """Django's ASGI static handler (which answers If-Modified-Since) plus Cache-Control."""

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self._should_handle(scope["path"]):
            return await self.application(scope, receive, send)
        cache_control = f"public, max-age={config().static_max_age}".encode()

        async def send_with_cache_control(message):
            if message["type"] == "http.response.start" and message["status"] in (200, 304):
                message = {**message,
                           "headers": [*message.get("headers", []), (b"cache-control", cache_control)]}
            await send(message)

        return await super().__call__(scope, receive, send_with_cache_control)
