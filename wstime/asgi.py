"""ASGI entry point: ``daphne wstime.asgi:application``.

HTTP (the page, static files, admin, health) goes to Django; WebSocket connections on the same
port go to the timer.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wstime.settings")
django_http = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402 - needs Django set up first

from timer import daphne_support, health_views  # noqa: E402
from timer.direct_views import DirectViews  # noqa: E402
from timer.routing import websocket_application  # noqa: E402
from timer.startup import start_process, start_when_serving  # noqa: E402
from timer.static_files import CachedStaticFiles  # noqa: E402

start_process()
daphne_support.install()
start_when_serving()

application = ProtocolTypeRouter({
    "http": CachedStaticFiles(DirectViews(django_http, {
        "/healthcheck": health_views.healthcheck,
        "/livez": health_views.livez,
    })),
    "websocket": websocket_application(),
})
