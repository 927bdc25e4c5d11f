"""The server adapter: what wstime changes in daphne, Twisted and autobahn, one patch a module.

| module | patch | kind |
|---|---|---|
| ``close_frames`` | close codes and reasons; one close frame per connection | required |
| ``denial`` | ``websocket.http.response`` (503 + Retry-After refusals) | required |
| ``send_errors`` | ``websocket.send`` on a closed connection raises an OSError | required |
| ``message_limit`` | message/frame size limit before buffering, 1009 close | required |
| ``header_deadline`` | a total deadline for request headers | required |
| ``lazy_pformat`` | autobahn's debug formatting only when logged | optional |
| ``eager_writes`` | Twisted TCP writes sent at once when nothing is buffered | optional |
| ``sliced_checks`` | daphne's timeout and keepalive checks a slice at a time | optional |

Each declares the releases it was written for and the private names it touches
(``patching.Patch``); :func:`install` applies those whose checks pass and leaves the others
out, logged. The system checks (``timer/config/checks.py``) report the same: a required patch that
cannot apply is an error (timer.E011-E015), an optional one a warning (timer.W011-W013).
"""

from __future__ import annotations

from . import (
    close_frames,
    denial,
    eager_writes,
    header_deadline,
    lazy_pformat,
    message_limit,
    send_errors,
    sliced_checks,
)
from .patching import Patch, apply
from .send_errors import ClientDisconnected

__all__ = ["PATCHES", "ClientDisconnected", "install"]

PATCHES: tuple[Patch, ...] = (
    close_frames.PATCH,
    denial.PATCH,
    send_errors.PATCH,
    message_limit.PATCH,
    header_deadline.PATCH,
    lazy_pformat.PATCH,
    eager_writes.PATCH,
    sliced_checks.PATCH,
)


def install() -> dict[str, bool]:
    """Apply every patch whose versions and names check out (idempotent); say which applied."""
    return {patch.name: apply(patch) for patch in PATCHES}
