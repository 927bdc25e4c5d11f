"""The health policy in Django admin: an edit changes what ``/healthcheck`` answers."""

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from django.urls import reverse

from timer.health.capacity import FROM_SETTING, Capacity
from timer.health.rates import Counters, CounterSample
from timer.models import HealthPolicy

LINK = Capacity(80_000, FROM_SETTING)


def half_full(monitor, clock) -> None:
    """Two samples one second apart at half the link's capacity."""
    monitor.observe(CounterSample(clock.now, {"eth0": Counters(0, 0)}), LINK, 0)
    clock.now += 1
    monitor.observe(CounterSample(clock.now, {"eth0": Counters(5_000, 0)}), LINK, 0)


def form(**changes) -> dict:
    values = {
        "node": "",
        "draining": "",
        "threshold": "0.6",
        "recovery_margin": "0.05",
        "window": "10",
        "capacity": "",
        "max_connections": "",
        "_save": "Save",
    }
    values.update(changes)
    return {key: value for key, value in values.items() if value is not None}


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    """Creating the admin user need not take half a second of PBKDF2."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
async def admin(admin_user) -> AsyncClient:
    client = AsyncClient()
    await client.aforce_login(admin_user)
    return client


async def test_admin__threshold_edit_changes_the_answer(admin, monitor, clock):
    """Lowering the default row's threshold below the usage turns 200 into 503 at once."""
    half_full(monitor, clock)
    row = await HealthPolicy.objects.acreate(threshold=0.6, recovery_margin=0.05, window=10)
    assert (await admin.get("/healthcheck")).status_code == 200

    url = reverse("admin:timer_healthpolicy_change", args=[row.pk])
    response = await admin.post(url, form(threshold="0.4"))
    assert response.status_code == 302, response.content

    response = await admin.get("/healthcheck?format=json")
    assert response.status_code == 503
    assert response.json()["threshold"] == 0.4
    assert response.json()["policy_source"] == "default policy"

    await admin.post(url, form(threshold="0.8"))
    assert (await admin.get("/healthcheck")).status_code == 200


async def test_admin__draining_a_node_by_name(admin, monitor, clock, node):
    """Adding a row for this node with draining ticked drains it."""
    half_full(monitor, clock)
    response = await admin.post(
        reverse("admin:timer_healthpolicy_add"), form(node=node.name, draining="on")
    )
    assert response.status_code == 302, response.content
    response = await admin.get("/healthcheck")
    assert (response.status_code, response.content) == (503, b"draining")


@pytest.mark.parametrize(
    "changes, field, message",
    [
        ({"threshold": "1.5"}, "threshold", "at most 1"),
        ({"threshold": "0"}, "threshold", "greater than 0"),
        ({"recovery_margin": "0.7"}, "recovery_margin", "recovery level"),
        ({"recovery_margin": "0"}, "recovery_margin", "below the threshold"),
        ({"window": "0"}, "window", "positive number of seconds"),
        ({"capacity": "0"}, "capacity", "positive number of bits"),
        ({"node": "Not A Name"}, "node", "lowercase letters"),
    ],
)
async def test_admin__invalid_policy_shows_form_errors(admin, node, changes, field, message):
    """A policy a node could not apply is refused with an error on the field to fix."""
    response = await admin.post(reverse("admin:timer_healthpolicy_add"), form(**changes))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert message in " ".join(errors[field])
    assert not await HealthPolicy.objects.aexists()


async def test_admin__add_form_defaults_come_from_settings(admin, settings, node):
    """The add form starts from the settings this node runs with."""
    settings.WSTIME_HEALTH_THRESHOLD = 0.7
    response = await admin.get(reverse("admin:timer_healthpolicy_add"))
    assert response.context["adminform"].form["threshold"].value() == 0.7


@pytest.mark.parametrize(
    "node_name, text", [("", "default health policy"), ("web-1", "health policy for web-1")]
)
def test_health_policy__str(node_name, text):
    """Rows read as what they govern."""
    assert str(HealthPolicy(node=node_name)) == text


async def test_admin__changelist_lists_policies(admin, node):
    """The change list renders with a row in it."""
    await sync_to_async(HealthPolicy.objects.create)(threshold=0.6, recovery_margin=0.05, window=10)
    response = await admin.get(reverse("admin:timer_healthpolicy_changelist"))
    assert response.status_code == 200
    assert b"default health policy" in response.content
