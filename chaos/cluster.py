"""The cluster under test: Redis (append-only, so it can come back with its data), N nodes and
HAProxy from the deploy template, on loopback or in the harness's network namespaces.

Every process ever started is kept, so that :meth:`ChaosCluster.close` can end them all and the
checker can read every node log, restarted ones included.
"""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from localcluster.cluster import migrate
from localcluster.processes import (
    LOOPBACK,
    Managed,
    free_port,
    http_get,
    start_haproxy_nodes,
    start_node,
    start_redis,
)

from .netns import Namespaces

logger = logging.getLogger(__name__)

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")


@dataclass
class NodeSlot:
    """Node ``k``: its fixed port (HAProxy's configuration names it) and current process."""

    k: int
    name: str
    host: str
    port: int
    agent_port: int
    env: dict[str, str]
    wrapper: tuple[str, ...] = ()
    process: Managed | None = None
    skew: int = 0
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass
class ChaosCluster:
    """Redis, the nodes and HAProxy; restartable by slot; logs kept in ``logs_dir``."""

    logs_dir: Path
    tick: float
    count: int = 3
    namespaces: Namespaces | None = None
    redis: Managed | None = None
    redis_port: int = 0
    redis_dir: Path | None = None
    haproxy: Managed | None = None
    slots: list[NodeSlot] = field(default_factory=list)
    everything: list[Managed] = field(default_factory=list)
    data_dir: Path | None = None

    @property
    def lb_url(self) -> str:
        assert self.haproxy is not None
        return self.haproxy.extra["ws_url"]

    def start(self) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="wstime-chaos-db-"))
        self.redis_dir = Path(tempfile.mkdtemp(prefix="wstime-chaos-redis-"))
        self.redis_port = free_port()
        self.start_redis()
        ns = self.namespaces
        hosts = [ns.node_addr(k) if ns else LOOPBACK for k in range(1, self.count + 1)]
        allowed = ",".join(["localhost", "127.0.0.1", "[::1]", *hosts])
        # Production's drain timings and hints: a finding must not come from a shortened one.
        common = {
            "WSTIME_DATA_DIR": str(self.data_dir),
            "WSTIME_TICK_INTERVAL": f"{self.tick:g}",
            "WSTIME_METRICS_ALLOW": "127.0.0.0/8,::1,10.231.0.0/16",
            "DJANGO_ALLOWED_HOSTS": allowed,
        }
        migrate({**common, "WSTIME_REDIS_URL": self.redis_url(1)})
        for k in range(1, self.count + 1):
            slot = NodeSlot(
                k=k,
                name=f"chaos-{k}",
                host=hosts[k - 1],
                port=free_port(),
                agent_port=free_port(),
                env={**common, "WSTIME_REDIS_URL": self.redis_url(k)},
                wrapper=ns.wrapper(k) if ns else (),
            )
            slot.env["WSTIME_AGENT_PORT"] = str(slot.agent_port)
            slot.env["WSTIME_AGENT_BIND"] = slot.host
            self.slots.append(slot)
            self.start_node(slot)
        self.haproxy = start_haproxy_nodes(
            [f"{s.host}:{s.port}" for s in self.slots],
            agent_ports=[s.agent_port for s in self.slots],
        )
        self.everything.append(self.haproxy)

    def redis_url(self, k: int) -> str:
        host = self.namespaces.hub_addr(k) if self.namespaces else LOOPBACK
        return f"redis://{host}:{self.redis_port}/0"

    def start_redis(self) -> None:
        bind = LOOPBACK
        if self.namespaces:
            bind = " ".join(
                [LOOPBACK, *(self.namespaces.hub_addr(k) for k in range(1, self.count + 1))]
            )
        self.redis = start_redis(self.redis_port, data_dir=self.redis_dir, bind=bind)
        self.everything.append(self.redis)

    def wipe_redis_data(self) -> None:
        """Empty Redis's data folder (Redis must be stopped): the next start is empty."""
        assert self.redis_dir is not None
        for path in self.redis_dir.iterdir():
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()

    def start_node(self, slot: NodeSlot, skew: int = 0) -> None:
        """Start node ``slot`` on its port; ``skew`` seconds of wall-clock offset (libfaketime)."""
        env = dict(slot.env)
        if skew:
            env.update(LD_PRELOAD=str(LIBFAKETIME), FAKETIME=f"{skew:+d}")
        slot.starts += 1
        slot.skew = skew
        slot.process = start_node(
            name=slot.name,
            env=env,
            port=slot.port,
            host=slot.host,
            wrapper=slot.wrapper,
            timeout=60,
        )
        slot.process.extra["log_name"] = f"{slot.name}.{slot.starts}"
        self.everything.append(slot.process)

    def node_alive(self, slot: NodeSlot) -> bool:
        return slot.process is not None and slot.process.alive()

    def heal_all(self) -> None:
        """Resume stopped processes and restart any that died, so the cluster is whole."""
        for managed in self.everything:
            if managed.alive():
                _signal(managed, signal.SIGCONT)
        if self.redis is None or not self.redis.alive():
            self.start_redis()
        for slot in self.slots:
            if not self.node_alive(slot):
                self.start_node(slot)
        if self.namespaces:
            for slot in self.slots:
                self.namespaces.heal(slot.k)

    def endpoints(self) -> dict[str, dict[str, int]]:
        """Status of /healthcheck and /metrics on every node."""
        return {
            slot.name: {
                path: http_get(f"{slot.url}{path}", timeout=5)[0]
                for path in ("/healthcheck", "/metrics")
            }
            for slot in self.slots
        }

    def stop_and_collect_logs(self) -> dict[str, str]:
        """Stop every process; copy node logs to ``logs_dir``; return them by name."""
        logs: dict[str, str] = {}
        for managed in reversed(self.everything):
            if managed.alive():
                _signal(managed, signal.SIGCONT)
                managed.process.send_signal(managed.stop_signal)
                try:
                    managed.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    managed.process.kill()
                    managed.process.wait(timeout=10)
            name = managed.extra.get("log_name", f"{managed.name}.{managed.pid}")
            text = managed.log()
            if text:
                (self.logs_dir / f"{name}.log").write_text(text)
            if managed.name.startswith("node-"):
                logs[name] = text
        return logs

    def close(self) -> None:
        """End every process and remove every folder this cluster made; never raises."""
        for managed in reversed(self.everything):
            try:
                if managed.alive():
                    _signal(managed, signal.SIGCONT)
                managed.stop(timeout=15)
            except Exception:
                logger.exception("could not stop %s (pid %s)", managed.name, managed.pid)
        for path in (self.data_dir, self.redis_dir):
            if path:
                shutil.rmtree(path, ignore_errors=True)


def _signal(managed: Managed, sig: int) -> None:
    try:
        managed.process.send_signal(sig)
    except ProcessLookupError:
        pass
