"""Redis, two nodes sharing it, and HAProxy in front: the demo's and the tests' cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

from .processes import REPO, Managed, free_port, node_env, start_haproxy, start_node, start_redis


@dataclass
class Cluster:
    """The processes of a running cluster; :meth:`stop` ends every one still running."""

    redis: Managed
    nodes: list[Managed] = field(default_factory=list)
    haproxy: Managed | None = None
    env: dict[str, str] = field(default_factory=dict)

    def processes(self) -> list[Managed]:
        return [self.redis, *self.nodes, *([self.haproxy] if self.haproxy else [])]

    def node_named(self, name: str) -> Managed:
        return next(node for node in self.nodes if node.extra["name"] == name)

    def stop(self) -> None:
        for managed in reversed(self.processes()):
            managed.stop()


def migrate(env: Mapping[str, str]) -> None:
    """Create or update the shared database once, before several nodes open it."""
    manage(env, "migrate", "--noinput", "-v", "0")


def manage(env: Mapping[str, str], *args: str) -> str:
    """Run ``manage.py *args`` against the cluster's database; return what it printed."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=node_env(**env),
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout


def start_cluster(
    *,
    names: tuple[str, str] = ("node-one", "node-two"),
    env: Mapping[str, str] | None = None,
    lb_port: int | None = None,
    with_haproxy: bool = True,
    per_node_env: list[Mapping[str, str]] | None = None,
    with_agents: bool = True,
    redis_data_dir: str | os.PathLike | None = None,
) -> Cluster:
    """Start Redis, two nodes named ``names`` and (optionally) HAProxy; stop all on failure.

    ``env`` goes to every node, ``per_node_env[i]`` to node ``i`` only. With ``with_agents`` each
    node answers HAProxy's agent check on a port of its own. With ``redis_data_dir`` Redis keeps
    its data there across restarts (see :func:`~localcluster.processes.start_redis`).
    """
    redis = start_redis(data_dir=redis_data_dir)
    cluster = Cluster(redis=redis, env={"WSTIME_REDIS_URL": redis.extra["url"], **(env or {})})
    try:
        migrate(cluster.env)
        agent_ports = [free_port() for _ in names]
        for i, name in enumerate(names):
            own = dict((per_node_env or [{}] * len(names))[i])
            if with_agents:
                own.setdefault("WSTIME_AGENT_PORT", str(agent_ports[i]))
            node = start_node(name=name, env={**cluster.env, **own})
            node.extra["name"] = name
            node.extra["agent_port"] = agent_ports[i]
            cluster.nodes.append(node)
        if with_haproxy:
            cluster.haproxy = start_haproxy(
                [node.port for node in cluster.nodes], agent_ports=agent_ports, port=lb_port
            )
    except BaseException:
        cluster.stop()
        raise
    return cluster


def data_dir_env(path: str | os.PathLike) -> dict[str, str]:
    """Settings that give a cluster its own database folder."""
    return {"WSTIME_DATA_DIR": str(path)}
