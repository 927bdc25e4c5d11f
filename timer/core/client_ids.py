"""What a client says about its session in the query string: its id and the last count it saw.

``/?id=<client id>&last=<N>``: the id names the session (a fresh one is assigned when absent);
``last`` is the count of the last frame the client was shown, which the page remembers as it
remembers its id. A session's count resumes at least one past it, so a count the server side
lost (a Redis that restarted empty while the node holding the session restarted too) never
repeats or resets for a client that remembers it. A client can only move its own count forward.
"""

from __future__ import annotations

import re
import secrets
from urllib.parse import parse_qs

MAX_LENGTH = 64
MAX_LAST_SEEN = 10**15  # about 31 million years of seconds: room enough, and bounded
_VALID = re.compile(rf"[A-Za-z0-9._~-]{{1,{MAX_LENGTH}}}")


class InvalidClientId(ValueError):
    """The ``id`` or ``last`` query parameter is malformed; the message says why."""


def new_client_id() -> str:
    """Return a fresh random id (22 URL-safe characters, 128 bits)."""
    return secrets.token_urlsafe(16)


def _single_value(query_string: bytes, name: str) -> str | None:
    """Return the one value of ``name`` in a raw query string, ``None`` when absent."""
    try:
        text = query_string.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidClientId("query string is not ASCII") from None
    values = parse_qs(text, keep_blank_values=True).get(name)
    if values is None:
        return None
    if len(values) > 1:
        raise InvalidClientId(f"more than one {name} parameter")
    return values[0]


def client_id_from_query(query_string: bytes) -> str | None:
    """Return the ``id`` from a raw query string, ``None`` when absent; raise if malformed."""
    value = _single_value(query_string, "id")
    if value is None or value == "":
        return None
    if len(value) > MAX_LENGTH:
        raise InvalidClientId(f"id is {len(value)} characters long, the limit is {MAX_LENGTH}")
    if not _VALID.fullmatch(value):
        raise InvalidClientId("id may only hold letters, digits and . _ ~ -")
    return value


def last_seen_from_query(query_string: bytes) -> int:
    """Return the ``last`` count from a raw query string, -1 when absent; raise if malformed."""
    value = _single_value(query_string, "last")
    if value is None or value == "":
        return -1
    if not re.fullmatch(r"\d{1,16}", value) or int(value) > MAX_LAST_SEEN:
        raise InvalidClientId(f"last must be a whole number from 0 to {MAX_LAST_SEEN}")
    return int(value)
