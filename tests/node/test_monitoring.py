"""deploy/prometheus and deploy/grafana: the rules pass promtool, their unit tests pass, and
every dashboard query is valid PromQL. (That their metric names exist in a real node's /metrics
is tests/integration/test_monitoring_live.py.)"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "wstime.rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "wstime.rules.test.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "wstime-dashboard.json"

# Every series the rules and the dashboard read is the node's own (wstime_*) or prometheus-
# client's process collector (process_*); label names never carry these prefixes.
_METRIC = re.compile(r"\b((?:wstime|process)_[a-z0-9_]+)\b")
# Grafana's variables, replaced by something PromQL accepts so that promtool can parse queries.
_GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$node": ".*", "$job": "wstime"}


def promtool(*args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("promtool") or "/usr/bin/promtool"  # Debian's prometheus package
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)


def rule_expressions() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    exprs += [
        variable["definition"]
        for variable in dashboard["templating"]["list"]
        if variable["type"] == "query"
    ]
    return exprs


def metric_names(expression: str) -> set[str]:
    return set(_METRIC.findall(expression))


def test_rules__promtool_check_rules():
    """`promtool check rules` accepts the alerting rules."""
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 6 rules found" in result.stdout


def test_rules__promtool_unit_tests():
    """Each alert fires on its input series and stays quiet on the harmless ones."""
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rules__every_alert_has_a_unit_test():
    """No alert goes untested: each one is named in the rule tests."""
    alerts = {
        rule["alert"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
    }
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
    }
    assert alerts == tested


def test_prometheus_config__promtool_check_config():
    """The example scrape configuration is valid and loads the rules."""
    result = promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard__queries_are_valid_promql(tmp_path):
    """Every panel query parses (promtool, as recording rules, with Grafana's variables set)."""
    exprs = [e for e in dashboard_expressions() if not e.startswith("label_values(")]
    for variable, value in _GRAFANA_VARIABLES.items():
        exprs = [e.replace(variable, value) for e in exprs]
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"wstime:dashboard_query_{i}", "expr": e}
                    for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard__covers_what_operators_watch():
    """Connections, usage vs threshold, health, closes, sessions, refusals and drain are there."""
    used = set().union(*map(metric_names, dashboard_expressions()))
    assert {
        "wstime_open_connections",
        "wstime_network_usage",
        "wstime_health_threshold",
        "wstime_health_ok",
        "wstime_connections_closed_total",
        "wstime_sessions_opened_total",
        "wstime_handshakes_refused_total",
        "wstime_drain_closed",
        "wstime_drain_total",
    } <= used


def test_metric_names__every_query_names_a_metric():
    """The name pattern finds a metric in every expression (so the live check sees them all)."""
    assert all(metric_names(e) for e in rule_expressions() + dashboard_expressions())
