"""Client ids from the query string."""

import pytest

from timer.core.client_ids import (
    MAX_LAST_SEEN,
    InvalidClientId,
    client_id_from_query,
    last_seen_from_query,
    new_client_id,
)


@pytest.mark.parametrize(
    "query, expected",
    [
        (b"id=abc", "abc"),
        (b"id=A-z_0.9~", "A-z_0.9~"),
        (b"id=" + b"x" * 64, "x" * 64),
        (b"", None),
        (b"id=", None),
        (b"other=1", None),
    ],
)
def test_client_id_from_query__accepts(query, expected):
    """Valid ids come back as they are; an absent or empty id is None (the server assigns one)."""
    assert client_id_from_query(query) == expected


@pytest.mark.parametrize(
    "query, reason",
    [
        (b"id=" + b"x" * 65, "limit is 64"),
        (b"id=a%20b", "may only hold"),
        (b"id=%3Cscript%3E", "may only hold"),
        (b"id=a&id=b", "more than one"),
        (b"id=\xff", "not ASCII"),
    ],
)
def test_client_id_from_query__refuses(query, reason):
    """Malformed ids raise with a reason that ends up in the log."""
    with pytest.raises(InvalidClientId, match=reason):
        client_id_from_query(query)


def test_new_client_id__is_valid_and_unique():
    """Assigned ids pass the same validation and do not repeat."""
    ids = {new_client_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(client_id_from_query(f"id={i}".encode()) == i for i in ids)


@pytest.mark.parametrize(
    "query, expected",
    [
        (b"id=abc", -1),
        (b"id=abc&last=", -1),
        (b"id=abc&last=0", 0),
        (b"last=41&id=abc", 41),
        (b"last=%d" % MAX_LAST_SEEN, MAX_LAST_SEEN),
    ],
)
def test_last_seen_from_query__accepts(query, expected):
    """The last count a client saw; -1 when it says nothing (a new tab)."""
    assert last_seen_from_query(query) == expected


@pytest.mark.parametrize(
    "query, reason",
    [
        (b"last=-1", "whole number"),
        (b"last=4.5", "whole number"),
        (b"last=1e9", "whole number"),
        (b"last=%20" + b"7", "whole number"),
        (b"last=%d" % (MAX_LAST_SEEN + 1), "whole number"),
        (b"last=" + b"9" * 40, "whole number"),
        (b"last=1&last=2", "more than one"),
    ],
)
def test_last_seen_from_query__refuses(query, reason):
    """A malformed, negative or absurd count is refused, with a reason for the log."""
    with pytest.raises(InvalidClientId, match=reason):
        last_seen_from_query(query)
