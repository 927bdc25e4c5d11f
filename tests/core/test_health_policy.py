"""Policy validation and which policy a node applies."""

import pytest

from tests.health.conftest import table_policy
from timer.core.health_policy import Policy, policy_problems, resolve_policy


def problems(threshold=0.6, recovery_margin=0.05, window=10.0, capacity=None, max_connections=None):
    return set(
        policy_problems(
            threshold=threshold,
            recovery_margin=recovery_margin,
            window=window,
            capacity=capacity,
            max_connections=max_connections,
        )
    )


@pytest.mark.parametrize(
    "values, fields",
    [
        ({}, set()),
        ({"threshold": 1.0}, set()),
        ({"threshold": 0.0}, {"threshold"}),
        ({"threshold": 1.01}, {"threshold"}),
        ({"recovery_margin": 0.0}, {"recovery_margin"}),  # recovery level == threshold
        ({"recovery_margin": 0.6}, {"recovery_margin"}),  # recovery level == 0
        ({"recovery_margin": -0.1}, {"recovery_margin"}),
        ({"window": 0}, {"window"}),
        ({"capacity": 0}, {"capacity"}),
        ({"capacity": 1}, set()),
        ({"max_connections": 0}, {"max_connections"}),
    ],
)
def test_policy_problems__table(values, fields):
    """0 < recovery level < threshold <= 1, a positive window and capacity."""
    assert problems(**values) == fields


SETTINGS = table_policy(threshold=0.6)
DEFAULT_ROW = table_policy(threshold=0.7, source="default policy")
NODE_ROW = table_policy(threshold=0.8, source="node policy a")


@pytest.mark.parametrize(
    "default_row, node_row, threshold, draining",
    [
        (None, None, 0.6, False),
        (DEFAULT_ROW, None, 0.7, False),
        (DEFAULT_ROW, NODE_ROW, 0.8, False),
        (None, NODE_ROW, 0.8, False),
        (
            table_policy(threshold=0.7, draining=True),
            NODE_ROW,
            0.8,
            True,
        ),  # default drains every node
        (DEFAULT_ROW, table_policy(threshold=0.8, draining=True), 0.8, True),
    ],
)
def test_resolve_policy__node_row_replaces_default(default_row, node_row, threshold, draining):
    """The node's row wins, the default row next, the settings last; draining is OR-ed."""
    policy = resolve_policy(SETTINGS, default_row, node_row)
    assert (policy.threshold, policy.draining) == (threshold, draining)


def test_policy__settings_backed_values_have_no_default_of_their_own():
    """threshold, recovery margin and window come only from the settings table."""
    with pytest.raises(TypeError):
        Policy()  # type: ignore[call-arg]


def test_settings_policy__follows_a_settings_override(settings):
    """Overriding WSTIME_HEALTH_THRESHOLD changes the policy a node applies without a row."""
    from timer.config.loader import config
    from timer.health.runtime import settings_policy

    assert settings_policy(config()) == table_policy()
    settings.WSTIME_HEALTH_THRESHOLD = 0.75
    settings.WSTIME_NET_WINDOW = 30
    policy = settings_policy(config())
    assert (policy.threshold, policy.recovery_margin, policy.window) == (0.75, 0.05, 30.0)
