"""The policy from the database: which rows apply, and the periodic refresh off the request path."""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from tests.health.conftest import table_policy
from timer.core.health_policy import SOURCE_DEFAULT_ROW, SOURCE_SETTINGS
from timer.health.monitor import HealthMonitor
from timer.health.policy_store import database_state, load_policy, refresh_forever
from timer.models import HealthPolicy

SETTINGS = table_policy(threshold=0.6)


def row(node: str = "", **values) -> HealthPolicy:
    fields = {"threshold": 0.6, "recovery_margin": 0.05, "window": 10.0, **values}
    return HealthPolicy.objects.create(node=node, **fields)


@pytest.mark.django_db
def test_load_policy__settings_until_a_row_exists():
    """Without rows, the settings' policy applies."""
    assert load_policy("web-1", SETTINGS) == SETTINGS


@pytest.mark.django_db
def test_load_policy__own_row_over_default_other_nodes_ignored():
    """The node's row wins over the default; other nodes' rows do not apply."""
    row(threshold=0.7)
    row("web-1", threshold=0.8)
    row("web-2", threshold=0.9, draining=True)
    assert (
        load_policy("web-1", SETTINGS).threshold,
        load_policy("web-3", SETTINGS).threshold,
        load_policy("web-1", SETTINGS).draining,
    ) == (0.8, 0.7, False)
    assert load_policy("web-3", SETTINGS).source == SOURCE_DEFAULT_ROW


@pytest.mark.django_db(transaction=True)
async def test_refresh_forever__picks_up_an_edit_without_restart():
    """A row written elsewhere reaches the monitor within the refresh period."""
    monitor = HealthMonitor(SETTINGS, sample_interval=1.0)
    refresher = asyncio.create_task(refresh_forever(monitor, "web-1", 0.05))
    try:
        await sync_to_async(row)("web-1", threshold=0.3, recovery_margin=0.1)
        for _ in range(100):
            if monitor.policy.source != SOURCE_SETTINGS:
                break
            await asyncio.sleep(0.02)
        assert (monitor.policy.threshold, monitor.policy.recovery_level) == (
            0.3,
            pytest.approx(0.2),
        )
        assert database_state() == "up"
    finally:
        refresher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await refresher
