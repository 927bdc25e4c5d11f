"""The benchmark harness end to end in its quick mode, so that it never rots.

It asserts that the harness ran and produced figures, not how fast anything was: timing
targets are judged by `make bench` on a quiet machine, never by the test suite. The Node
baseline is left out (its npm dependency is installed by `make bench`, not by `make test`).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from localcluster.processes import REPO

pytestmark = pytest.mark.integration


@pytest.mark.timeout(240)
def test_bench_quick__runs_every_scenario_and_writes_figures(tmp_path):
    """`python -m bench.run --quick` measures the baseline, a wstime node, failover and storm."""
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--quick",
            "--skip-node",
            "--results-dir",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    [json_file] = tmp_path.glob("*.json")
    [markdown_file] = tmp_path.glob("*.md")
    result = json.loads(json_file.read_text())

    by_server = {row["server"]: row for row in result["capacity"]}
    assert set(by_server) == {"python-websockets", "wstime"}
    for row in by_server.values():
        assert row["load"]["established"] > 0
        assert row["load"]["frames_delivered"] > 0
        assert row["cpu_pct"] is not None and row["kb_per_conn"] is not None
    assert by_server["wstime"]["redis_cmds_per_s"] is not None
    assert by_server["wstime"]["healthcheck"]["requests"] > 0
    assert by_server["wstime"]["loop_lag"]["samples"] > 0
    assert by_server["python-websockets"]["loop_lag"] is None  # not a wstime node

    recovery = result["failover"]["recovery"]
    assert recovery["affected"] > 0 and recovery["recovered"] > 0
    storm = result["storm"]
    assert storm["recovery"]["affected"] > 0 and storm["recovery"]["recovered"] > 0
    assert sum(storm["resume_kinds"].values()) == storm["recovery"]["affected"]
    assert storm["survivor_health"]["storm"]["requests"] > 0
    assert storm["survivor_loop_lag"]["storm"]["samples"] > 0
    assert storm["survivor_own_load"]["frames_delivered"] > 0
    assert storm["survivor_cpu_pct"] is not None
    assert result["targets"], "the run was judged against the performance targets"
    assert any(v["where"].startswith("storm:") for v in result["targets"])
    assert any(v["target"].startswith("event-loop lag p99") for v in result["targets"])
    assert "## Failover storm" in markdown_file.read_text()
    assert "| wstime |" in markdown_file.read_text()
    assert "| wstime |" in completed.stdout
    # Progress on stderr, and the plots next to the tables, linked from them.
    assert "[1/4] capacity: python-websockets with 200 connections" in completed.stderr
    assert "about " in completed.stderr and "[4/4] done in " in completed.stderr
    for kind in ("capacity", "failover", "storm"):
        png = json_file.with_name(f"{json_file.stem}-{kind}.png")
        assert png.read_bytes().startswith(b"\x89PNG")
        assert f"]({png.name})" in markdown_file.read_text()


@pytest.mark.timeout(120)
def test_handshake_cost__measures_each_server():
    """`python -m bench.handshake_cost` ramps clients into each server and prints its cost."""
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.handshake_cost",
            "--connections",
            "200",
            "--rate",
            "100",
            "--servers",
            "node-ws,python-websockets,wstime,wstime-uvicorn",
            "--skip-node",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    rows = {
        line.split("|")[1].strip(): line.split("|")[2:-1]
        for line in completed.stdout.splitlines()
        if line.startswith("| ")
    }
    assert list(rows)[1:] == ["python-websockets", "wstime", "wstime-uvicorn"]  # after the header
    for server in ("python-websockets", "wstime", "wstime-uvicorn"):
        established, failed, ms, _node, _python, _per_core = (cell.strip() for cell in rows[server])
        assert established == "200" and failed == "0"
        float(ms)  # a figure, whatever its value on a busy machine
