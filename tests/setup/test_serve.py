"""The node launcher: the one source of the production daphne command line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from localcluster.cluster import data_dir_env
from localcluster.processes import REPO, start_node
from wstime.serve import APPLICATION, LISTEN_BACKLOG, daphne_argv, endpoint, main, parse_args


@pytest.mark.parametrize(
    "bind, port, backlog, expected",
    [
        ("0.0.0.0", 8001, 4096, "tcp:port=8001:interface=0.0.0.0:backlog=4096"),
        ("127.0.0.1", 9, 64, "tcp:port=9:interface=127.0.0.1:backlog=64"),
        ("::", 8000, 4096, r"tcp:port=8000:interface=\:\::backlog=4096"),
        ("[::1]", 8000, 4096, r"tcp:port=8000:interface=\:\:1:backlog=4096"),
    ],
)
def test_endpoint__tcp_description_with_backlog(bind, port, backlog, expected):
    """The endpoint names port, interface (IPv6 colons escaped) and backlog."""
    assert endpoint(bind=bind, port=port, backlog=backlog) == expected


def test_daphne_argv__production_defaults():
    """By default: every interface, port 8000, backlog 4096, and the application last."""
    assert daphne_argv() == ["-e", "tcp:port=8000:interface=0.0.0.0:backlog=4096", APPLICATION]
    assert LISTEN_BACKLOG == 4096


def test_daphne_argv__extra_arguments_before_the_application():
    """Arguments after ``--`` reach daphne unchanged, before the application path."""
    args, extra = parse_args(["--port", "8001", "--", "-v", "2", "-e", "tcp:9000"])
    assert (args.port, extra) == (8001, ["-v", "2", "-e", "tcp:9000"])
    assert daphne_argv(port=args.port, extra=extra)[-5:] == [
        "-v",
        "2",
        "-e",
        "tcp:9000",
        APPLICATION,
    ]


def test_daphne_argv__adds_no_proxy_or_size_flags():
    """Proxy trust and message sizes are the application's settings, not launcher flags."""
    joined = " ".join(daphne_argv())
    assert "--proxy-headers" not in joined and "max_message_size" not in joined
    assert "max_frame_size" not in joined


@pytest.mark.parametrize("argv", [["--port", "0"], ["--port", "70000"], ["--backlog", "0"]])
def test_parse_args__rejects_nonsense(argv):
    """Ports outside 1-65535 and a backlog under 1 are usage errors."""
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)
    assert exited.value.code == 2


def test_main__dry_run_prints_the_command_line(capsys):
    """``--dry-run`` prints the daphne command line it would run, as a shell would quote it."""
    assert main(["--bind", "127.0.0.1", "--port", "8123", "--dry-run"]) == 0
    assert capsys.readouterr().out.strip() == (
        "daphne -e tcp:port=8123:interface=127.0.0.1:backlog=4096 wstime.asgi:application"
    )


@pytest.mark.parametrize(
    "path",
    [
        "deploy/systemd/wstime@.service",
        "deploy/kubernetes/wstime.yaml",
        "README.md",
    ],
)
def test_launchers__deploy_files_and_readme_start_nodes_through_wstime_node(path):
    """Every documented node command goes through wstime-node, none spells out daphne's flags."""
    text = (REPO / path).read_text()
    assert "wstime-node" in text
    assert not re.search(r"daphne\s+-e|daphne\s+-b|--proxy-headers\s+wstime\.asgi", text), path


def listen_backlog(port: int) -> int:
    """The backlog of the socket listening on 127.0.0.1:``port``, as ss reports it (Send-Q)."""
    out = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True, timeout=10
    ).stdout
    return int(out.split()[2])


@pytest.mark.integration
def test_start_node__local_nodes_start_through_the_launcher(tmp_path):
    """A local cluster's node runs ``python -m wstime.serve`` and listens with its backlog."""
    node = start_node(name="launched", env=data_dir_env(tmp_path))
    try:
        cmdline = Path(f"/proc/{node.pid}/cmdline").read_bytes().split(b"\0")
        assert [part.decode() for part in cmdline[:3]] == [sys.executable, "-m", "wstime.serve"]
        somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
        assert listen_backlog(node.port) == min(LISTEN_BACKLOG, somaxconn)
    finally:
        node.stop()
