"""WebSocket routes: the timer at ``/`` (as the original server), every other path refused."""

from channels.routing import URLRouter
from channels.security.websocket import WebsocketDenier
from django.urls import re_path

from .consumers import TimerConsumer
from .origin import BrowserOriginValidator


def websocket_application():
    """Return the ASGI application for WebSocket connections."""
    return BrowserOriginValidator(
        URLRouter(
            [
                re_path(r"^$", TimerConsumer.as_asgi()),
                re_path(r"", WebsocketDenier.as_asgi()),
            ]
        )
    )
