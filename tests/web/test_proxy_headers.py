"""X-Forwarded-For honoured only from trusted proxies: the rule, and the ASGI middleware."""

from __future__ import annotations

from ipaddress import ip_network

import pytest

from timer.web.proxy_headers import UNKNOWN_CLIENT, TrustedProxyHeaders, forwarded_client

TRUSTED = (ip_network("127.0.0.1/32"), ip_network("10.9.0.0/16"))


@pytest.mark.parametrize(
    "peer, header, expected",
    [
        ("127.0.0.1", "", "127.0.0.1"),  # no header: the peer
        ("127.0.0.1", "203.0.113.7", "203.0.113.7"),  # one trusted hop
        ("203.0.113.9", "10.1.2.3", "203.0.113.9"),  # untrusted peer: ignored
        ("127.0.0.1", "10.1.2.3, 203.0.113.7", "203.0.113.7"),  # right-most untrusted
        ("127.0.0.1", "198.51.100.1, 10.9.1.1", "198.51.100.1"),  # skips a trusted hop
        ("127.0.0.1", "10.9.1.1, 127.0.0.1", "10.9.1.1"),  # all trusted: left-most
        ("127.0.0.1", " 2001:db8::1 ", "2001:db8::1"),
        ("127.0.0.1", "10.1.2.3, not-an-address", UNKNOWN_CLIENT),  # garbage: never an address
        ("127.0.0.1", ",", "127.0.0.1"),
    ],
)
def test_forwarded_client__right_most_untrusted_address(peer, header, expected):
    """Walk the header from the right, past trusted proxies, to the first other address."""
    assert forwarded_client(peer, header, TRUSTED) == expected


def test_forwarded_client__nothing_trusted_means_the_peer():
    """With no trusted proxy, the header never counts."""
    assert forwarded_client("127.0.0.1", "10.1.2.3", ()) == "127.0.0.1"


async def _scope_of(kind: str, client: list, headers: list) -> dict:
    seen = {}

    async def app(scope, receive, send):
        seen.update(scope)

    await TrustedProxyHeaders(app, trusted=lambda: TRUSTED)(
        {"type": kind, "client": client, "headers": headers}, None, None
    )
    return seen


@pytest.mark.parametrize("kind", ["http", "websocket"])
async def test_trusted_proxy_headers__rewrites_client_from_trusted_peer(kind):
    """HTTP and WebSocket scopes get the forwarded client; several headers are one list."""
    scope = await _scope_of(
        kind,
        ["127.0.0.1", 5000],
        [(b"x-forwarded-for", b"198.51.100.1"), (b"x-forwarded-for", b"203.0.113.7")],
    )
    assert scope["client"] == ["203.0.113.7", 0]


@pytest.mark.parametrize("kind", ["http", "websocket"])
async def test_trusted_proxy_headers__untrusted_peer_keeps_its_address(kind):
    """A peer that is not a trusted proxy keeps its own address, header or not."""
    scope = await _scope_of(kind, ["192.0.2.5", 5000], [(b"x-forwarded-for", b"10.1.2.3")])
    assert scope["client"] == ["192.0.2.5", 5000]


async def test_trusted_proxy_headers__other_scopes_untouched():
    """Lifespan and other scopes pass through as they are."""
    seen = {}

    async def app(scope, receive, send):
        seen.update(scope)

    await TrustedProxyHeaders(app, trusted=lambda: TRUSTED)({"type": "lifespan"}, None, None)
    assert seen == {"type": "lifespan"}
