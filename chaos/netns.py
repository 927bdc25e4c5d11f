"""Network namespaces for the partition faults: one hub, one namespace per node, veth pairs.

Layout (``K`` from 1): the harness itself, Redis and HAProxy move into the hub namespace, where
every address they use is their own loopback or a veth end created here; node ``K`` runs in
namespace ``<prefix>nK`` and reaches the hub over a veth pair, ``10.231.K.1`` on the hub side
and ``10.231.K.2`` on the node side. No address is added outside these namespaces, and
deleting the namespaces removes the veth pairs with them.

Faults are nftables rules in a node's namespace (its table only): cut from Redis, cut from its
clients (HAProxy), or a lossy link. ``tc netem`` (delay, loss) is used where the kernel has it;
where it does not (``sch_netem`` missing), loss comes from nftables' random drops and there is
no delay fault.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

CLONE_NEWNET = 0x40000000
SUBNET = "10.231"
TABLE = "wstime_chaos"


class NetnsUnavailable(RuntimeError):
    """This machine cannot create network namespaces (not root, or no ``ip``)."""


def available() -> bool:
    """Whether the harness can create namespaces here: root with ``ip`` and ``nft``."""
    return os.geteuid() == 0 and bool(shutil.which("ip")) and bool(shutil.which("nft"))


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=10)


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def netem_available(namespace: str, device: str) -> bool:
    """Whether ``tc netem`` works on this kernel (probed on ``device``, then removed)."""
    probe = _run(
        "ip",
        "netns",
        "exec",
        namespace,
        "tc",
        "qdisc",
        "add",
        "dev",
        device,
        "root",
        "netem",
        "delay",
        "1ms",
        check=False,
    )
    if probe.returncode != 0:
        return False
    _run("ip", "netns", "exec", namespace, "tc", "qdisc", "del", "dev", device, "root", check=False)
    return True


@dataclass
class Namespaces:
    """The hub and node namespaces of one run; :meth:`remove` deletes what :meth:`create` made."""

    prefix: str
    count: int
    created: list[str] = field(default_factory=list)
    netem: bool = False
    _root_fd: int | None = None

    @property
    def hub(self) -> str:
        return f"{self.prefix}hub"

    def node_ns(self, k: int) -> str:
        return f"{self.prefix}n{k}"

    @staticmethod
    def hub_addr(k: int) -> str:
        """The hub's address on node ``k``'s link: where node ``k`` reaches Redis."""
        return f"{SUBNET}.{k}.1"

    @staticmethod
    def node_addr(k: int) -> str:
        """Node ``k``'s address: where HAProxy and the harness reach it."""
        return f"{SUBNET}.{k}.2"

    def wrapper(self, k: int) -> tuple[str, ...]:
        return ("ip", "netns", "exec", self.node_ns(k))

    def create(self) -> None:
        """Create the hub and node namespaces with their veth pairs and addresses."""
        if not available():
            raise NetnsUnavailable("network namespaces need root, ip and nft")
        self._add_ns(self.hub)
        for k in range(1, self.count + 1):
            ns = self.node_ns(k)
            self._add_ns(ns)
            hub_dev, node_dev = f"{self.prefix}h{k}", f"{self.prefix}v{k}"
            _run(
                "ip",
                "-n",
                self.hub,
                "link",
                "add",
                hub_dev,
                "type",
                "veth",
                "peer",
                "name",
                node_dev,
                "netns",
                ns,
            )
            _run("ip", "-n", self.hub, "addr", "add", f"{self.hub_addr(k)}/24", "dev", hub_dev)
            _run("ip", "-n", self.hub, "link", "set", hub_dev, "up")
            _run("ip", "-n", ns, "addr", "add", f"{self.node_addr(k)}/24", "dev", node_dev)
            _run("ip", "-n", ns, "link", "set", node_dev, "up")
            _run("ip", "netns", "exec", ns, "nft", "add", "table", "inet", TABLE)
            for hook in ("input", "output"):
                _run(
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "nft",
                    "add",
                    "chain",
                    "inet",
                    TABLE,
                    hook,
                    f"{{ type filter hook {hook} priority 0; policy accept; }}",
                )
        self.netem = netem_available(self.node_ns(1), f"{self.prefix}v1")

    def _add_ns(self, name: str) -> None:
        _run("ip", "netns", "add", name)
        self.created.append(name)
        _run("ip", "-n", name, "link", "set", "lo", "up")

    def enter_hub(self) -> None:
        """Move this thread (call it before starting any other) into the hub namespace."""
        self._root_fd = os.open("/proc/self/ns/net", os.O_RDONLY)
        fd = os.open(f"/var/run/netns/{self.hub}", os.O_RDONLY)
        try:
            _setns(fd)
        finally:
            os.close(fd)

    def leave_hub(self) -> None:
        if self._root_fd is not None:
            _setns(self._root_fd)
            os.close(self._root_fd)
            self._root_fd = None

    def remove(self) -> None:
        """Delete every namespace created (their veth pairs go with them); never raises."""
        try:
            self.leave_hub()
        except OSError:
            logger.exception("could not return to the original network namespace")
        for name in reversed(self.created):
            result = _run("ip", "netns", "del", name, check=False)
            if result.returncode != 0:
                logger.error("could not delete namespace %s: %s", name, result.stderr.strip())
        self.created.clear()

    # Faults: each is one nftables rule set (or netem qdisc) in node k's namespace.

    def _nft(self, k: int, *rule: str) -> None:
        _run("ip", "netns", "exec", self.node_ns(k), "nft", *rule)

    def cut_redis(self, k: int, redis_port: int) -> None:
        """Drop every packet between node ``k`` and Redis (silently: no reset, no error)."""
        self._nft(
            k, "add", "rule", "inet", TABLE, "output", "tcp", "dport", str(redis_port), "drop"
        )
        self._nft(k, "add", "rule", "inet", TABLE, "input", "tcp", "sport", str(redis_port), "drop")

    def cut_clients(self, k: int, redis_port: int) -> None:
        """Drop every packet between node ``k`` and anything but Redis (HAProxy, clients)."""
        self._nft(
            k,
            "add",
            "rule",
            "inet",
            TABLE,
            "output",
            "oifname",
            "!=",
            "lo",
            "tcp",
            "sport",
            "!=",
            str(redis_port),
            "tcp",
            "dport",
            "!=",
            str(redis_port),
            "drop",
        )
        self._nft(
            k,
            "add",
            "rule",
            "inet",
            TABLE,
            "input",
            "iifname",
            "!=",
            "lo",
            "tcp",
            "sport",
            "!=",
            str(redis_port),
            "tcp",
            "dport",
            "!=",
            str(redis_port),
            "drop",
        )

    def lossy(self, k: int, percent: int, delay_ms: int) -> None:
        """Lose ``percent`` % of node ``k``'s packets (and delay them, where netem exists)."""
        device = f"{self.prefix}v{k}"
        if self.netem:
            _run(
                "ip",
                "netns",
                "exec",
                self.node_ns(k),
                "tc",
                "qdisc",
                "add",
                "dev",
                device,
                "root",
                "netem",
                "delay",
                f"{delay_ms}ms",
                "loss",
                f"{percent}%",
            )
            return
        for hook in ("input", "output"):
            self._nft(
                k,
                "add",
                "rule",
                "inet",
                TABLE,
                hook,
                f"{'iif' if hook == 'input' else 'oif'}name",
                device,
                "numgen",
                "random",
                "mod",
                "100",
                "<",
                str(percent),
                "drop",
            )

    def heal(self, k: int) -> None:
        """Remove every fault from node ``k``'s namespace."""
        for hook in ("input", "output"):
            self._nft(k, "flush", "chain", "inet", TABLE, hook)
        if self.netem:
            _run(
                "ip",
                "netns",
                "exec",
                self.node_ns(k),
                "tc",
                "qdisc",
                "del",
                "dev",
                f"{self.prefix}v{k}",
                "root",
                check=False,
            )
