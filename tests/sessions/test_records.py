"""Session records and where a count resumes."""

import pytest

from timer.sessions.records import CLOSED, LIVE, SessionRecord, resume_last


@pytest.mark.parametrize(
    "record, expected",
    [
        (None, -1),
        (SessionRecord(-1, CLOSED, "n#1"), -1),
        (SessionRecord(7, CLOSED, "n#1"), 7),
        (SessionRecord(7, LIVE, "n#1"), 8),
        (SessionRecord(-1, LIVE, "n#1"), 0),
    ],
)
def test_resume_last__closed_exact_live_counts_one_more(record, expected):
    """A closed record resumes exactly; a live checkpoint counts the frame it may have missed."""
    assert resume_last(record) == expected


@pytest.mark.parametrize("text", [None, "", "x|L|t", "1|Q|t", "1|L", b"\xff|L|t"])
def test_session_record__decode_unreadable_is_none(text):
    """Missing or corrupt records read as absent rather than crashing a handshake."""
    assert SessionRecord.decode(text) is None


def test_session_record__round_trip_and_owner():
    """Encoding round-trips, and the owner is the token's node channel."""
    record = SessionRecord(41, LIVE, "wstime.node.abc!xyz#12")
    assert SessionRecord.decode(record.encode()) == record
    assert SessionRecord.decode(record.encode().encode()) == record
    assert record.owner_channel == "wstime.node.abc!xyz"
