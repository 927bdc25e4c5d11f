"""The open-file limit and the connections it leaves room for."""

import resource

from timer.core.open_files import RESERVE, connection_limit
from timer.node.descriptors import process_connection_limit, raise_soft_limit


def test_connection_limit__the_limit_less_the_reserve_and_never_below_one():
    assert connection_limit(65536) == 65536 - RESERVE
    assert connection_limit(600, reserve=512) == 88
    assert connection_limit(100, reserve=512) == 1
    assert connection_limit(None) is None


def test_raise_soft_limit__up_to_the_hard_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 1024), hard))
        assert process_connection_limit() == min(soft, 1024) - RESERVE
        assert raise_soft_limit() == hard
        assert process_connection_limit() == hard - RESERVE
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
