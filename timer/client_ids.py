"""Client ids: what a valid one looks like, and fresh ones for clients that send none."""

from __future__ import annotations

import re
import secrets
from urllib.parse import parse_qs

MAX_LENGTH = 64
_VALID = re.compile(r"[A-Za-z0-9._~-]{1,%d}" % MAX_LENGTH)


class InvalidClientId(ValueError):
    """The ``id`` query parameter cannot name a session; the message says why."""


def new_client_id() -> str:
    """Return a fresh random id (22 URL-safe characters, 128 bits)."""
    return secrets.token_urlsafe(16)


def client_id_from_query(query_string: bytes) -> str | None:
    """Return the ``id`` from a raw query string, ``None`` when absent; raise if malformed."""
    try:
        text = query_string.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidClientId("query string is not ASCII") from None
    values = parse_qs(text, keep_blank_values=True).get("id")
    if values is None:
        return None
    if len(values) > 1:
        raise InvalidClientId("more than one id parameter")
    value = values[0]
    if value == "":
        return None
    if len(value) > MAX_LENGTH:
        raise InvalidClientId(f"id is {len(value)} characters long, the limit is {MAX_LENGTH}")
    if not _VALID.fullmatch(value):
        raise InvalidClientId("id may only hold letters, digits and . _ ~ -")
    return value
