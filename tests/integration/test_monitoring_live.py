"""A real node's /metrics names every metric the alert rules and the dashboard query, and its
JSON log carries node, client and event as fields."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from localcluster.cluster import data_dir_env
from localcluster.processes import start_node, wait_for
from tests.node.test_monitoring import dashboard_expressions, metric_names, rule_expressions

pytestmark = pytest.mark.integration


def scrape(url: str) -> set[str]:
    """Every sample name in the node's /metrics, and each family's declared name."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name + ("_total" if family.type == "counter" else ""))
        names.update(sample.name for sample in family.samples)
    return names


async def one_connection(ws_url: str) -> None:
    async with websockets.connect(f"{ws_url}?id=monitoring-1", open_timeout=10) as ws:
        await asyncio.wait_for(ws.recv(), timeout=10)


@pytest.fixture
def json_node(tmp_path):
    node = start_node(
        name="watched",
        env={
            **data_dir_env(tmp_path),
            "WSTIME_LOG_FORMAT": "json",
            "WSTIME_TICK_INTERVAL": "0.2",
            "WSTIME_SAMPLE_INTERVAL": "0.2",
            "WSTIME_LINK_CAPACITY": "1G",
        },
    )
    yield node
    node.stop()


async def test_live_node__exports_every_metric_the_rules_and_dashboard_use(json_node):
    """Drive a connection, a close and a refusal, then compare the queries' names to a scrape."""
    await one_connection(json_node.extra["ws_url"])
    with pytest.raises(websockets.InvalidStatus):  # a refused handshake: a refusal sample
        async with websockets.connect(
            f"{json_node.extra['ws_url']}?id=not%20valid", open_timeout=10
        ):
            pass
    url = json_node.extra["url"]
    # The usage gauge appears after the sampler's second reading.
    await asyncio.to_thread(
        wait_for,
        lambda: "wstime_network_usage" in scrape(url),
        timeout=20,
        what="wstime_network_usage",
    )
    exported = scrape(url)
    queried = set().union(*map(metric_names, rule_expressions() + dashboard_expressions()))
    assert queried - exported == set()
    for name in (
        "wstime_connections_closed_total",
        "wstime_handshakes_refused_total",
        "wstime_sessions_opened_total",
    ):
        assert name in exported


async def test_live_node__json_log_has_connection_fields(json_node):
    """With WSTIME_LOG_FORMAT=json, connect and disconnect are JSON with node/client/event."""
    await one_connection(json_node.extra["ws_url"])

    def events() -> dict[str, dict]:
        found = {}
        for line in json_node.log().splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("client") == "monitoring-1":
                    found[entry.get("event")] = entry
        return found

    await asyncio.to_thread(
        wait_for,
        lambda: {"connect", "disconnect"} <= events().keys(),
        timeout=20,
        what="connect and disconnect in the JSON log",
    )
    connect = events()["connect"]
    assert connect["node"] == "watched" and connect["level"] == "INFO"
    assert connect["message"].startswith("node=watched client=monitoring-1 event=connect")
    assert events()["disconnect"]["code"] == "1000"
