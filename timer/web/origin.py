"""Browser Origin checks for WebSocket handshakes (cross-site WebSocket hijacking)."""

from __future__ import annotations

import logging
from urllib.parse import ParseResult

from channels.security.websocket import OriginValidator
from django.conf import settings

from ..config.loader import config
from ..core.log_text import quoted
from ..node.node import get_node

logger = logging.getLogger(__name__)


class BrowserOriginValidator(OriginValidator):
    """Refuse a foreign Origin (HTTP 403); accept none unless WSTIME_REQUIRE_ORIGIN is on.

    Channels' own validator refuses a missing Origin, but only browsers send one and the attack
    it prevents needs a browser, so command-line clients are let through by default. The
    allowed hosts are Django's ALLOWED_HOSTS, matched by host name as Django matches Host.
    """

    def __init__(self, application) -> None:
        super().__init__(application, allowed_origins=None)

    @property
    def allowed_origins(self) -> list[str]:  # read on each handshake: tests override settings
        hosts = list(settings.ALLOWED_HOSTS)
        if settings.DEBUG and not hosts:
            hosts = ["localhost", "127.0.0.1", "[::1]"]
        return hosts

    @allowed_origins.setter
    def allowed_origins(self, value) -> None:  # OriginValidator.__init__ assigns it
        pass

    def valid_origin(self, parsed_origin: ParseResult | None) -> bool:
        if parsed_origin is None:
            if config().require_origin:
                logger.warning(
                    "node=%s refused a WebSocket handshake without Origin "
                    "(WSTIME_REQUIRE_ORIGIN is on)",
                    get_node().name,
                )
                get_node().counters.refused("missing_origin")
                return False
            return True
        if self.validate_origin(parsed_origin):
            return True
        logger.warning(
            "node=%s refused a WebSocket handshake from a foreign origin=%s",
            get_node().name,
            quoted(parsed_origin.geturl()),
        )
        get_node().counters.refused("foreign_origin")
        return False
