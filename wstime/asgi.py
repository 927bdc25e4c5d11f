"""ASGI entry point: ``daphne wstime.asgi:application``.

HTTP (the page, static files, admin, health) goes to Django; WebSocket connections on the same
port go to the timer. Both see the client's address as a trusted proxy forwarded it
(``WSTIME_TRUSTED_PROXIES``), and daphne's connections get a deadline for their request headers
(``WSTIME_HEADER_TIMEOUT``).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wstime.settings")
django_http = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402 - needs Django set up first

from timer import server  # noqa: E402
from timer.web import health_views  # noqa: E402
from timer.web.direct_views import DirectViews  # noqa: E402
from timer.web.proxy_headers import TrustedProxyHeaders  # noqa: E402
from timer.web.routing import websocket_application  # noqa: E402
from timer.web.static_files import CachedStaticFiles  # noqa: E402
from wstime.startup import start_process, start_when_serving  # noqa: E402

start_process()
server.install()  # patches that cannot apply are logged, and reported by the system checks
start_when_serving()

application = TrustedProxyHeaders(
    ProtocolTypeRouter(
        {
            "http": CachedStaticFiles(
                DirectViews(
                    django_http,
                    {
                        "/healthcheck": health_views.healthcheck,
                        "/livez": health_views.livez,
                    },
                )
            ),
            "websocket": websocket_application(),
        }
    )
)
