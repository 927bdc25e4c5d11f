"""The embedded database's folder on a fresh checkout."""

from __future__ import annotations

import subprocess
import sys

from localcluster.processes import REPO, node_env


def test_migrate__creates_a_missing_data_dir(tmp_path):
    """``manage.py migrate`` before any node has run creates WSTIME_DATA_DIR (as make demo does)."""
    data_dir = tmp_path / "fresh" / "var"
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=REPO,
        env=node_env(WSTIME_DATA_DIR=str(data_dir)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (data_dir / "wstime.sqlite3").is_file()
