"""The admin's cluster page in real headless Chromium against two real nodes sharing Redis."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from websockets.sync.client import connect

from localcluster.cluster import data_dir_env, manage, start_cluster
from localcluster.processes import REPO

pytestmark = [pytest.mark.browser, pytest.mark.integration]

ARTIFACTS = REPO / "var" / "test-artifacts"
PASSWORD = "cluster page test password"
WAIT_MS = 20_000  # policy refresh (2 s) + a publish (1 s) + a poll (2 s), on a loaded machine


def row(page, name: str):
    return page.locator(f"#cluster-nodes tr[data-node='{name}']")


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def test_cluster_page__rows_states_charts_and_drain_from_the_page(page, tmp_path):
    """One node over its connection limit shows overloaded; one drained by clicking shows
    draining; both rows carry a chart; the page refreshes itself; a killed node turns stale,
    then unreachable."""
    cluster = start_cluster(
        names=("busy-node", "calm-node"),
        with_haproxy=False,
        with_agents=False,
        env={"WSTIME_NET_INTERFACES": "lo", "WSTIME_LINK_CAPACITY": "1G", **data_dir_env(tmp_path)},
        per_node_env=[{"WSTIME_MAX_CONNECTIONS": "1"}, {}],
    )
    busy, calm = cluster.nodes
    try:
        manage({**cluster.env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD}, "ensure_admin")
        page.set_default_timeout(WAIT_MS)
        with connect(f"{busy.extra['ws_url']}?id=fills-busy-node") as ws:
            assert ws.recv(timeout=10).startswith("busy-node: ")
            page.goto(f"{busy.extra['url']}/admin/cluster/")
            page.fill("#id_username", "admin")
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_url("**/admin/cluster/")

            busy_row, calm_row = row(page, "busy-node"), row(page, "calm-node")
            busy_row.and_(page.locator("[data-state='overloaded']")).wait_for()
            calm_row.and_(page.locator("[data-state='ok']")).wait_for()
            assert "server is overloaded" in busy_row.inner_text()
            assert busy_row.locator("td.cluster-connections").inner_text() == "1 / 1"
            page.locator("#cluster-totals", has_text="2 node(s)").wait_for()
            # Charts from the published history: a connections line per node once two points exist.
            for each in (busy_row, calm_row):
                each.locator("svg.cluster-chart polyline.chart-connections").wait_for(
                    state="attached"
                )
            screenshot(page, "cluster-page-overloaded.png")

            calm_row.locator("a.cluster-drain").click()
            page.wait_for_url("**/admin/cluster/drain/**")
            assert "Drain node calm-node?" in page.locator("#content-main").inner_text()
            page.click("#confirm")
            page.wait_for_url("**/admin/cluster/")
            assert "Node calm-node is draining" in page.locator(".messagelist").inner_text()
            # No reload from here on: the poll brings the node's own report of its drain.
            page.evaluate("window.sameDocument = true")
            calm_row.and_(page.locator("[data-state='draining']")).wait_for()
            assert page.evaluate("window.sameDocument") is True
            busy_row.and_(page.locator("[data-state='overloaded']")).wait_for()
            assert calm_row.locator("a.cluster-undo").count() == 1
            # Its drain row kept its own limits (none), not those of the node serving the page.
            assert calm_row.locator("td.cluster-connections").inner_text() == "0"
            assert page.locator("svg.cluster-chart").count() == 2
            shot = screenshot(page, "cluster-page-draining.png")
            shutil.copyfile(shot, "/tmp/cluster-page.png")

            calm_row.locator("a.cluster-undo").click()
            page.click("#confirm")
            calm_row.and_(page.locator("[data-state='ok']")).wait_for()
            assert page.evaluate("window.sameDocument") is None  # the undo's redirect reloaded

            # A node that stops publishing turns stale after 3 intervals; once its keys expire
            # (10 intervals, at least 5 s) the open page keeps its row as unreachable.
            calm.kill()
            calm_row.and_(page.locator("[data-state='stale']")).wait_for()
            calm_row.and_(page.locator("[data-state='unreachable']")).wait_for()
            assert "gone from the cluster state since" in calm_row.inner_text()
            screenshot(page, "cluster-page-unreachable.png")
    finally:
        cluster.stop()
    assert "Traceback" not in busy.log(), busy.log()[-3000:]
