"""The client's address behind a load balancer, believed only from trusted proxies.

daphne's ``--proxy-headers`` takes the first address of ``X-Forwarded-For`` from any peer, so a
client that sends that header itself chooses the address the node sees (and the /metrics
allowlist checks). :class:`TrustedProxyHeaders` replaces it: when the direct peer is in
``WSTIME_TRUSTED_PROXIES``, the client is the right-most address of the header that is not a
trusted proxy (each proxy appends the address it saw, so everything left of the first
untrusted hop is the client's to forge). Run daphne *without* ``--proxy-headers``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from ipaddress import IPv4Network, IPv6Network, ip_address

from ..config.loader import config

Networks = tuple[IPv4Network | IPv6Network, ...]

# The client when the header holds something that is not an address: never in an allowlist.
UNKNOWN_CLIENT = "unknown"
_HEADER = b"x-forwarded-for"


def _trusted(address: str, trusted: Networks) -> bool:
    try:
        parsed = ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in trusted)


def forwarded_client(peer: str, header: str, trusted: Networks) -> str:
    """Return the client's address, from ``peer`` and its ``X-Forwarded-For`` value.

    An untrusted peer is the client. From a trusted one, walk the header from the right past
    trusted proxies; the first other entry is the client, or :data:`UNKNOWN_CLIENT` when it is
    not an IP address. If every entry is a trusted proxy, the left-most is the client.
    """
    if not _trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in header.split(",")]
    hops = [hop for hop in hops if hop]
    for hop in reversed(hops):
        try:
            ip_address(hop)
        except ValueError:
            return UNKNOWN_CLIENT
        if not _trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _header_value(headers: Iterable[tuple[bytes, bytes]]) -> str:
    # Several X-Forwarded-For headers are one comma-separated list (RFC 9110, 5.3).
    return ",".join(value.decode("latin-1") for name, value in headers if name.lower() == _HEADER)


class TrustedProxyHeaders:
    """ASGI middleware: set ``scope["client"]`` from X-Forwarded-For sent by a trusted proxy.

    Applies to ``http`` and ``websocket`` scopes; the port of a forwarded client is 0 (unknown).
    ``trusted`` returns the trusted networks (default: ``WSTIME_TRUSTED_PROXIES``, read per
    connection from the cached settings).
    """

    def __init__(self, app, *, trusted: Callable[[], Networks] | None = None) -> None:
        self.app = app
        self.trusted = trusted or (lambda: config().trusted_proxies)

    async def __call__(self, scope, receive, send):
        client = scope.get("client")
        if scope["type"] in ("http", "websocket") and client:
            trusted = self.trusted()
            if trusted and _trusted(client[0], trusted):
                address = forwarded_client(
                    client[0], _header_value(scope.get("headers", ())), trusted
                )
                if address != client[0]:
                    scope = {**scope, "client": [address, 0]}
        return await self.app(scope, receive, send)
