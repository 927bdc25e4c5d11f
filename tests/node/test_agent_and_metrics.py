"""The agent-check reply and the /metrics access rule, as pure functions."""

import asyncio
from dataclasses import replace
from ipaddress import ip_network
from types import SimpleNamespace

import pytest

from timer.health.monitor import Report
from timer.node.agent import agent_reply, spare_capacity
from timer.node.supervise import stop, supervise
from timer.web import metrics_collector as metrics
from timer.web.metrics_collector import NodeCollector, scrape_allowed

REPORT = Report(
    status="ok",
    reason="ok",
    usage=0.3,
    threshold=0.6,
    recovery_level=0.55,
    window=10,
    capacity_bits_per_second=10**9,
    capacity_source="link speed",
    interfaces=("eth0",),
    connections=0,
    max_connections=None,
    full_by=(),
    sampler_age=0.5,
    policy_source="settings",
)


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({}, "ready up 50%"),  # half the threshold used
        ({"usage": None}, "ready up 100%"),  # nothing known: full weight
        ({"usage": 0.0}, "ready up 100%"),
        ({"usage": 0.59}, "ready up 2%"),
        (
            {"usage": 0.1, "connections": 75, "max_connections": 100},
            "ready up 25%",
        ),  # tightest signal
        ({"status": "overloaded", "reason": "server is overloaded", "usage": 0.7}, "ready up 1%"),
    ],
)
def test_agent_reply__weight_follows_spare_capacity(changes, expected):
    """The weight is the room left before the node reports itself full."""
    assert agent_reply(replace(REPORT, **changes), draining=False, stale=False) == expected


def test_agent_reply__drain_and_stale():
    """Draining asks for no new connections; a stale sampler takes the node down with a reason."""
    assert agent_reply(REPORT, draining=True, stale=False) == "drain"
    assert agent_reply(REPORT, draining=False, stale=True) == "down#health sampler stale"


def test_agent_reply__a_serving_node_cancels_an_earlier_drain():
    """HAProxy keeps a server it was told to ``drain`` in DRAIN until the agent says ``ready``."""
    words = agent_reply(REPORT, draining=False, stale=False).split()
    assert words[0] == "ready" and words[1] == "up"
    overloaded = replace(REPORT, status="overloaded", reason="server is overloaded", usage=0.7)
    assert agent_reply(overloaded, draining=False, stale=False).split()[0] == "ready"


def test_spare_capacity__never_negative():
    """Past the threshold the room is zero, not negative."""
    assert spare_capacity(replace(REPORT, usage=0.9)) == 0.0


CFG = SimpleNamespace(
    metrics_token="s3cret", metrics_allow=(ip_network("127.0.0.0/8"), ip_network("::1/128"))
)


@pytest.mark.parametrize(
    "remote, authorization, allowed",
    [
        ("127.0.0.1", "", True),
        ("::1", "", True),
        ("10.1.2.3", "", False),
        ("10.1.2.3", "Bearer s3cret", True),
        ("10.1.2.3", "Bearer wrong", False),
        ("10.1.2.3", "s3cret", False),
        ("not-an-ip", "", False),
    ],
)
def test_scrape_allowed__allowlist_or_token(remote, authorization, allowed):
    """/metrics opens to the allowlist, or to anyone with the bearer token."""
    assert scrape_allowed(CFG, remote, authorization) is allowed


def test_scrape_allowed__no_token_configured_never_matches_empty_bearer():
    """An unset token does not make 'Bearer ' a key."""
    cfg = SimpleNamespace(metrics_token="", metrics_allow=())
    assert scrape_allowed(cfg, "10.0.0.1", "Bearer ") is False


def test_scrape_allowed__token_compared_in_constant_time(monkeypatch):
    """The bearer token is checked with hmac.compare_digest, whatever the allowlist says."""
    compared = []

    def compare_digest(a, b):
        compared.append((a, b))
        return a == b

    monkeypatch.setattr(metrics.hmac, "compare_digest", compare_digest)
    assert scrape_allowed(CFG, "10.1.2.3", "Bearer s3cret") is True
    assert scrape_allowed(CFG, "10.1.2.3", "Bearer s3creT") is False
    assert len(compared) == 2


async def test_metrics__background_task_state(node):
    """Each supervised task's running, restarts and crash-looping state is a metric."""

    async def crash() -> None:
        raise RuntimeError("boom")

    flaky = supervise("flaky", crash, first_delay=0.001, max_delay=0.004)
    node.tasks.append(flaky)
    try:
        async with asyncio.timeout(5):
            while flaky.restarts < 4:
                await asyncio.sleep(0.001)
        families = {family.name: family for family in NodeCollector(lambda: node).collect()}
    finally:
        node.tasks.remove(flaky)
        await stop([flaky])

    def value(family: str, task: str) -> float:
        return next(s.value for s in families[family].samples if s.labels["task"] == task)

    assert value("wstime_background_task_crash_looping", "flaky") == 1
    assert value("wstime_background_task_running", "ticker") == 1
    assert value("wstime_background_task_crash_looping", "ticker") == 0
    assert value("wstime_background_task_restarts", "flaky") >= 4
