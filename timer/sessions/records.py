"""What is stored for a session, and where its count resumes. Pure: no I/O, no clock."""

from __future__ import annotations

from dataclasses import dataclass

LIVE = "L"  # a connection holds the session; last_n is a checkpoint that may lag one frame
CLOSED = "C"  # the session's last connection closed; last_n is exact


@dataclass(frozen=True)
class SessionRecord:
    """The last count a session's client was sent, and which connection sent it."""

    last_n: int  # -1: no frame sent yet
    state: str
    token: str  # the connection that wrote this record: "<node channel>#<sequence>"

    def encode(self) -> str:
        return f"{self.last_n}|{self.state}|{self.token}"

    @classmethod
    def decode(cls, text: str | bytes | None) -> SessionRecord | None:
        """Parse a stored record; ``None`` for a missing or unreadable one."""
        if text is None:
            return None
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        parts = text.split("|", 2)
        if len(parts) != 3 or parts[1] not in (LIVE, CLOSED):
            return None
        try:
            last_n = int(parts[0])
        except ValueError:
            return None
        return cls(last_n=max(-1, last_n), state=parts[1], token=parts[2])

    @property
    def owner_channel(self) -> str:
        """The node channel of the connection that wrote the record."""
        return token_owner(self.token)


def token_owner(token: str) -> str:
    """The node channel of a connection's token, ``"<node channel>#<sequence>"``."""
    return token.rpartition("#")[0]


def token_sequence(token: str) -> str:
    """The sequence of a connection's token among its node's tokens."""
    return token.rpartition("#")[2]


def resume_last(record: SessionRecord | None) -> int:
    """Return the count to treat as already shown when a session is opened again.

    A closed session resumes exactly. A live record is a checkpoint written once per interval,
    so its client may have seen one frame more than it says (or its node may have died before
    writing the last one): count that frame as seen. The next frame is then the last one the
    client saw plus one or two, never a repeat. ``timer/sessions/redis_scripts.py`` mirrors this.
    """
    if record is None:
        return -1
    if record.state == CLOSED:
        return record.last_n
    return record.last_n + 1
