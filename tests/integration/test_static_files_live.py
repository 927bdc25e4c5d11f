"""A node started on an empty data folder builds its hashed static files and serves them."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import pytest

from localcluster.cluster import data_dir_env
from localcluster.processes import http_get, start_node
from timer.web.static_files import IMMUTABLE

pytestmark = pytest.mark.integration


@pytest.fixture
def fresh_node(tmp_path):
    """A bare node whose data folder (database, static files) does not exist yet."""
    node = start_node(name="fresh-node", env=data_dir_env(tmp_path / "var"))
    yield node
    node.stop()


def get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), b""


def test_node__serves_hashed_static_files_for_a_year(fresh_node, tmp_path):
    """The page names app.<hash>.js; that name is immutable for a year, app.js stays short-lived."""
    status, page = http_get(fresh_node.extra["url"] + "/")
    assert status == 200
    script = re.search(r'src="(/static/timer/app\.[0-9a-f]{12}\.js)"', page)
    style = re.search(r'href="(/static/timer/app\.[0-9a-f]{12}\.css)"', page)
    assert script and style, page
    status, headers, body = get(fresh_node.extra["url"] + script.group(1))
    assert status == 200 and headers["Cache-Control"] == IMMUTABLE
    assert b"WebSocket" in body
    status, headers, _ = get(fresh_node.extra["url"] + style.group(1))
    assert status == 200 and headers["Cache-Control"] == IMMUTABLE
    # The unhashed name still answers, with the short cache and revalidation.
    status, headers, plain = get(fresh_node.extra["url"] + "/static/timer/app.js")
    assert status == 200 and headers["Cache-Control"] == "public, max-age=3600"
    assert plain == body
    status, headers, _ = get(
        fresh_node.extra["url"] + "/static/timer/app.js",
        **{"If-Modified-Since": headers["Last-Modified"]},
    )
    assert status == 304
    assert get(fresh_node.extra["url"] + "/static/timer/missing.js")[0] == 404
    assert (tmp_path / "var" / "static" / "staticfiles.json").exists()
