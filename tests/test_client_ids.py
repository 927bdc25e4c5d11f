"""Client ids from the query string."""

import pytest

from timer.client_ids import InvalidClientId, client_id_from_query, new_client_id


@pytest.mark.parametrize("query, expected", [
    (b"id=abc", "abc"),
    (b"id=A-z_0.9~", "A-z_0.9~"),
    (b"id=" + b"x" * 64, "x" * 64),
    (b"", None),
    (b"id=", None),
    (b"other=1", None),
])
def test_client_id_from_query__accepts(query, expected):
    """Valid ids come back as they are; an absent or empty id is None (the server assigns one)."""
    assert client_id_from_query(query) == expected


@pytest.mark.parametrize("query, reason", [
    (b"id=" + b"x" * 65, "limit is 64"),
    (b"id=a%20b", "may only hold"),
    (b"id=%3Cscript%3E", "may only hold"),
    (b"id=a&id=b", "more than one"),
    (b"id=\xff", "not ASCII"),
])
def test_client_id_from_query__refuses(query, reason):
    """Malformed ids raise with a reason that ends up in the log."""
    with pytest.raises(InvalidClientId, match=reason):
        client_id_from_query(query)


def test_new_client_id__is_valid_and_unique():
    """Assigned ids pass the same validation and do not repeat."""
    ids = {new_client_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(client_id_from_query(f"id={i}".encode()) == i for i in ids)
