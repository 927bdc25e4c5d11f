"""HAProxy's configuration for N nodes, made from the deploy template's node1 lines."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from localcluster.processes import HAPROXY_CFG, haproxy_config


def servers(text: str) -> list[str]:
    return re.findall(r"^\s*server\s+(node\d+)\s", text, flags=re.MULTILINE)


def test_haproxy_config__one_server_line_per_node_in_each_backend():
    """Every backend gets node1..nodeN, addressed by its own variables; nothing else changes."""
    template = HAPROXY_CFG.read_text()
    backends = len(re.findall(r"^\s*server\s+node1\s", template, flags=re.MULTILINE))
    text = haproxy_config(3)
    assert servers(text) == ["node1", "node2", "node3"] * backends
    assert "${WSTIME_NODE3_ADDR}" in text and "${WSTIME_NODE3_AGENT_PORT}" in text
    kept = [line for line in template.splitlines() if not re.match(r"^\s*server\s+node\d", line)]
    assert [
        line for line in text.splitlines() if not re.match(r"^\s*server\s+node\d", line)
    ] == kept


def test_haproxy_config__haproxy_accepts_it():
    """haproxy -c validates the configuration made for five nodes."""
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    env = dict(os.environ, WSTIME_LB_BIND="127.0.0.1:1")
    for k in range(1, 6):
        env[f"WSTIME_NODE{k}_ADDR"] = f"127.0.0.1:{10000 + k}"
        env[f"WSTIME_NODE{k}_AGENT_PORT"] = str(11000 + k)
    result = subprocess.run(
        [binary, "-c", "-f", "/dev/stdin"],
        input=haproxy_config(5),
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
