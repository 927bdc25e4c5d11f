"""Hashed static files: built when the sources change, kept otherwise, served with the right cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.templatetags.static import static
from django.test import AsyncClient

from localcluster.processes import REPO, node_env
from timer.web.static_files import collect_static


@pytest.fixture
def own_static(settings, tmp_path):
    """A static source folder and a STATIC_ROOT of this test's own, holding timer/app.js."""
    source = tmp_path / "src"
    (source / "timer").mkdir(parents=True)
    (source / "timer" / "app.js").write_text("console.log('v1');\n")
    settings.STATICFILES_DIRS = [source]
    settings.STATIC_ROOT = tmp_path / "data" / "static"
    # Without the admin's hundred files the builds take milliseconds.
    settings.INSTALLED_APPS = [
        app for app in settings.INSTALLED_APPS if app != "django.contrib.admin"
    ]
    yield source / "timer" / "app.js"


def test_collect_static__builds_once_then_only_on_change(own_static, settings):
    """A second start with the same sources does nothing; a changed app.js gets a new name."""
    assert collect_static() is True
    first = static("timer/app.js")
    assert first != "/static/timer/app.js" and first.startswith("/static/timer/app.")
    assert collect_static() is False
    own_static.write_text("console.log('v2');\n")
    assert collect_static() is True
    second = static("timer/app.js")
    assert second != first
    root = settings.STATIC_ROOT
    assert (root / second.removeprefix("/static/")).read_text() == "console.log('v2');\n"
    # The previous release's file stays, for pages rendered before the deploy.
    assert (root / first.removeprefix("/static/")).read_text() == "console.log('v1');\n"


def test_collect_static__rollback_to_an_older_file_rebuilds(own_static, settings):
    """A source older than the built copy (a rollback that keeps mtimes) still replaces it."""
    collect_static()
    v1 = static("timer/app.js")
    own_static.write_text("console.log('v0');\n")
    os.utime(own_static, (1_000_000_000, 1_000_000_000))
    assert collect_static() is True
    assert static("timer/app.js") != v1
    assert (settings.STATIC_ROOT / "timer" / "app.js").read_text() == "console.log('v0');\n"


@pytest.mark.django_db
async def test_page__links_hashed_names(node):
    """The page links app.<hash>.js and app.<hash>.css through {% static %}."""
    client = AsyncClient()
    page = (await client.get("/")).content.decode()
    hashed = static("timer/app.js")
    assert hashed != "/static/timer/app.js" and f'src="{hashed}"' in page
    assert static("timer/app.css") in page


def test_collect_static__nodes_starting_together_build_once(tmp_path):
    """Three processes on one fresh data folder: one builds, all read the same manifest."""
    script = (
        "import django; django.setup()\n"
        "from django.templatetags.static import static\n"
        "from timer.web.static_files import collect_static\n"
        "print(collect_static(), static('timer/app.js'))\n"
    )
    env = node_env(DJANGO_SETTINGS_MODULE="wstime.settings", WSTIME_DATA_DIR=str(tmp_path))
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=REPO,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], [err for _, err in outputs]
    answers = [out.split() for out, _ in outputs]
    assert sorted(built for built, _ in answers) == ["False", "False", "True"]
    [url] = {name for _, name in answers}
    manifest = json.loads((tmp_path / "static" / "staticfiles.json").read_text())
    assert url == "/static/" + manifest["paths"]["timer/app.js"]
