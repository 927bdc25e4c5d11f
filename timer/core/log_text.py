"""Client-controlled text made safe for a log line. Pure."""

from __future__ import annotations

MAX_LOGGED = 200  # characters of one client-supplied value kept in a log line


def quoted(value: object, limit: int = MAX_LOGGED) -> str:
    """Return ``value`` as a double-quoted, escaped, bounded token for a log line.

    Only printable ASCII is written as is; quotes, backslashes, control characters (newlines,
    terminal escapes) and anything else are escaped, so a client cannot end the token, forge a
    ``key=value`` field or a line, or drive a terminal. Past ``limit`` characters the value is
    cut and ``...`` follows the closing quote.
    """
    text = str(value)
    cut = len(text) > limit
    parts = ['"']
    for char in text[:limit]:
        code = ord(char)
        if char in '"\\':
            parts.append("\\" + char)
        elif 0x20 <= code < 0x7F:
            parts.append(char)
        elif code <= 0xFF:
            parts.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            parts.append(f"\\u{code:04x}")
        else:
            parts.append(f"\\U{code:08x}")
    parts.append('"...' if cut else '"')
    return "".join(parts)
