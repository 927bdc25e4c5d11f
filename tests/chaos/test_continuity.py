"""The continuity checker's short seeded run: a real cluster under a minute of faults."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from chaos import netns
from chaos.cluster import LIBFAKETIME
from chaos.nemesis import NETNS_KINDS, PROCESS_KINDS
from localcluster.processes import REPO

SEED = 20261128
FAULT_SECONDS = 60


def kinds_here() -> list[str]:
    """Every fault kind this machine can inject: namespaces need root, ip and nft."""
    kinds = [kind for kind in PROCESS_KINDS if kind != "skew" or LIBFAKETIME.exists()]
    if netns.available():
        kinds += NETNS_KINDS
    return kinds


@pytest.mark.integration
@pytest.mark.timeout(420)
def test_continuity__seeded_run_finds_no_violation(tmp_path):
    """A fixed seed's minute of faults on three nodes: every rule of the checker holds."""
    argv = [
        sys.executable,
        "-m",
        "chaos",
        "--seed",
        str(SEED),
        "--duration",
        str(FAULT_SECONDS),
        "--clients",
        "100",
        "--kinds",
        ",".join(kinds_here()),
        "--out",
        str(tmp_path),
    ]
    run = subprocess.Popen(
        argv,
        cwd=REPO,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = run.communicate(timeout=360)
    except subprocess.TimeoutExpired:
        run.terminate()  # SIGTERM: the harness removes its processes and namespaces
        stdout, stderr = run.communicate(timeout=60)
        pytest.fail(f"the run did not finish in 360 s:\n{stdout[-3000:]}\n{stderr[-3000:]}")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["frames"] > 100 * FAULT_SECONDS // 2, stdout[-3000:]
    assert sum(summary["faults"].values()) >= 10, summary["faults"]
    assert run.returncode == 0, f"{' '.join(argv)}\n{stdout[-6000:]}\n{stderr[-3000:]}"
