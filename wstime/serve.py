"""Start a node with the production daphne flags: ``wstime-node`` or ``python -m wstime.serve``.

This is the one place that knows how a node is launched; the systemd unit, the Kubernetes
example, the local cluster (``make demo`` and the tests) and the README all go through it. It
builds daphne's command line and runs daphne's own command-line interface in this process, so
the process is the node: signals (SIGTERM drains, SIGINT stops) reach it directly.

``daphne wstime.asgi:application`` still works; it lacks only the raised listen backlog.

Usage: ``wstime-node [--bind ADDRESS] [--port PORT] [--backlog N] [--dry-run] [-- DAPHNE_ARGS]``;
anything after ``--`` is passed to daphne as it is (an extra ``-e`` endpoint, ``-v 2``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

APPLICATION = "wstime.asgi:application"
DEFAULT_BIND = "0.0.0.0"
DEFAULT_PORT = 8000
# A failover sends hundreds of handshakes per second to the surviving nodes; Twisted's default
# listen backlog of 50 overflows, and the kernel then drops SYNs (seconds of retransmits).
# Linux caps it at net.core.somaxconn (4096 by default since 5.4).
LISTEN_BACKLOG = 4096


def endpoint(*, bind: str, port: int, backlog: int = LISTEN_BACKLOG) -> str:
    """Return the Twisted endpoint description daphne's ``-e`` takes for a TCP listener."""
    interface = bind.strip("[]").replace(":", r"\:")  # IPv6 colons are escaped in endpoints
    return f"tcp:port={port}:interface={interface}:backlog={backlog}"


def daphne_argv(
    *,
    bind: str = DEFAULT_BIND,
    port: int = DEFAULT_PORT,
    backlog: int = LISTEN_BACKLOG,
    extra: Sequence[str] = (),
) -> list[str]:
    """Return daphne's arguments (without the program name) for a production node."""
    return ["-e", endpoint(bind=bind, port=port, backlog=backlog), *extra, APPLICATION]


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port 1-65535, got {text}")
    return value


def _backlog(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a backlog of at least 1, got {text}")
    return value


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """Split ``argv`` into this launcher's options and the daphne arguments after ``--``."""
    own, extra = list(argv), []
    if "--" in own:
        own, extra = own[: own.index("--")], own[own.index("--") + 1 :]
    parser = argparse.ArgumentParser(
        prog="wstime-node",
        description="Start a wstime node with the production daphne flags.",
        epilog="Arguments after -- go to daphne unchanged.",
    )
    parser.add_argument(
        "--bind", default=DEFAULT_BIND, help=f"address to listen on (default {DEFAULT_BIND})"
    )
    parser.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--backlog",
        type=_backlog,
        default=LISTEN_BACKLOG,
        help=f"listen backlog (default {LISTEN_BACKLOG})",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the daphne command line instead of running it"
    )
    return parser.parse_args(own), extra


def main(argv: Sequence[str] | None = None) -> int:
    """Run a node in this process (or print its command line with ``--dry-run``)."""
    args, extra = parse_args(sys.argv[1:] if argv is None else argv)
    arguments = daphne_argv(bind=args.bind, port=args.port, backlog=args.backlog, extra=extra)
    if args.dry_run:
        print(shlex.join(["daphne", *arguments]))
        return 0
    from daphne.cli import CommandLineInterface

    CommandLineInterface().run(arguments)
    return 0


if __name__ == "__main__":
    sys.exit(main())
