"""Close-code labels for /metrics: known codes one by one, client-chosen ones bounded."""

import pytest

from timer.core.close_codes import OTHER_CLOSE_CODES, close_code_label
from timer.node.node import NodeCounters


@pytest.mark.parametrize(
    "code, label",
    [
        (1000, "1000"),
        (1005, "1005"),
        (None, "1005"),
        (1006, "1006"),
        (1009, "1009"),
        (1012, "1012"),
        (4001, "4001"),
        (3000, OTHER_CLOSE_CODES),
        (4999, OTHER_CLOSE_CODES),
        (1004, OTHER_CLOSE_CODES),
        (2999, OTHER_CLOSE_CODES),
    ],
)
def test_close_code_label__known_codes_and_other(code, label):
    """Registered codes and 4001 keep their number; None is 1005; the rest are "other"."""
    assert close_code_label(code) == label


def test_node_counters__closes_by_code_bounded_whatever_clients_send():
    """Every code a client may choose lands in a bounded set of labels."""
    counters = NodeCounters()
    for code in [None, 1000, *range(3000, 5000)]:
        counters.closed(code)
    assert counters.closes_by_code == {"1005": 1, "1000": 1, "4001": 1, "other": 1999}
