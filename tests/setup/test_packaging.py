"""The built wheel carries everything a node needs, and runs from its own virtualenv."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import websockets

from localcluster.processes import REPO, http_get, start_node

# The page links its script by a content-hashed name (README: Static files).
HASHED_APP_JS = re.compile(r"/static/timer/app\.[0-9a-f]{12}\.js")

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# What the wheel may leave out: the checkout's own tools, which need deploy/ and manage.py.
CHECKOUT_ONLY = {"localcluster", "tests", "bench"}


def listed_packages() -> set[str]:
    return set(PYPROJECT["tool"]["setuptools"]["packages"])


def source_packages(top: str) -> set[str]:
    """Every package (a folder with ``__init__.py``) under ``top`` in the checkout."""
    return {
        ".".join(init.parent.relative_to(REPO).parts)
        for init in (REPO / top).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }


@pytest.mark.parametrize("top", ["wstime", "timer"])
def test_pyproject__lists_every_package_a_node_imports(top):
    """Each subpackage of wstime/ and timer/ (migrations, commands, health...) is packaged."""
    assert source_packages(top) - listed_packages() == set()


def test_pyproject__maps_templates_and_static_into_the_wheel():
    """templates/ and static/ stay at the checkout's top and go into the wheel under wstime/."""
    package_dir = PYPROJECT["tool"]["setuptools"]["package-dir"]
    assert package_dir == {"wstime.templates": "templates", "wstime.static": "static"}
    assert not listed_packages() & CHECKOUT_ONLY


def checkout_copy(destination: Path) -> Path:
    """Copy the checkout's files (tracked, and new ones git does not ignore) to ``destination``."""
    names = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    for name in filter(None, names.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


def run(argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (
        f"{argv} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory):
    """A wheel built from this checkout, installed with the node lock into a fresh virtualenv."""
    root = tmp_path_factory.mktemp("wheel")
    source = checkout_copy(root / "source")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE"}
    }
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(root / "dist"),
            str(source),
        ],
        cwd=root,
        env=env,
    )
    [wheel] = (root / "dist").glob("wstime-*.whl")
    venv = root / "venv"
    base_python = getattr(sys, "_base_executable", sys.executable)
    run([base_python, "-m", "venv", str(venv)], cwd=root, env=env)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    run(
        [*pip, "--require-hashes", "--no-deps", "-r", str(REPO / "requirements" / "node.txt")],
        cwd=root,
        env=env,
    )
    run([*pip, "--no-deps", str(wheel)], cwd=root, env=env)
    workdir = root / "elsewhere"  # outside the checkout: nothing imports from it
    workdir.mkdir()
    return {
        "wheel": wheel,
        "venv": venv,
        "cwd": workdir,
        "data": root / "data",
        "env": {
            **env,
            "PYTHONPATH": "",
            "DJANGO_SETTINGS_MODULE": "wstime.settings",
            "DJANGO_SECRET_KEY": "wheel-test-secret-key-not-for-production-0123456789abcdef",
            "WSTIME_DATA_DIR": str(root / "data"),
        },
    }


@pytest.mark.integration
def test_wheel__carries_templates_static_migrations_and_commands(installed_wheel):
    """The wheel holds every file a node reads, and none of the checkout-only tools."""
    names = set(zipfile.ZipFile(installed_wheel["wheel"]).namelist())
    for needed in [
        "wstime/templates/timer/index.html",
        "wstime/static/timer/app.js",
        "wstime/static/timer/app.css",
        "wstime/serve.py",
        "timer/migrations/0001_initial.py",
        "timer/management/commands/drain.py",
        "timer/management/commands/ensure_admin.py",
        "timer/health/monitor.py",
        "timer/sessions/redis_store.py",
    ]:
        assert needed in names
    assert not {name.split("/")[0] for name in names} & CHECKOUT_ONLY
    assert any(name.endswith("licenses/LICENSE") for name in names)


@pytest.mark.integration
def test_wheel__installed_node_checks_migrates_and_serves(installed_wheel):
    """From its own virtualenv: django-admin check and migrate pass, the node serves a tick."""
    venv, cwd, env = installed_wheel["venv"], installed_wheel["cwd"], installed_wheel["env"]
    python = str(venv / "bin" / "python")
    where = run(
        [python, "-c", "import timer, wstime; print(wstime.__file__, timer.__file__)"],
        cwd=cwd,
        env=env,
    )
    assert all(path.startswith(str(venv)) for path in where.split()), where
    run([str(venv / "bin" / "django-admin"), "check"], cwd=cwd, env=env)
    run([str(venv / "bin" / "django-admin"), "migrate", "--noinput", "-v", "0"], cwd=cwd, env=env)
    assert (installed_wheel["data"] / "wstime.sqlite3").is_file()

    node = start_node(
        name="wheel-node", python=python, cwd=cwd, env={**env, "WSTIME_TICK_INTERVAL": "0.2"}
    )
    try:
        status, page = http_get(node.extra["url"] + "/", timeout=10)
        assert status == 200 and HASHED_APP_JS.search(page), page
        assert http_get(node.extra["url"] + "/static/timer/app.js", timeout=10)[0] == 200

        async def first_frame() -> str:
            async with websockets.connect(node.extra["ws_url"] + "?id=wheel", origin=None) as ws:
                return await asyncio.wait_for(ws.recv(), 10)

        assert asyncio.run(first_frame()) == "wheel-node: you have been connected for 0 seconds"
    finally:
        node.stop()
