"""The benchmark's PNG plots (drawn from a saved run) and its progress lines (a fake clock)."""

from __future__ import annotations

import io
import json
import shutil
import struct
import time

import pytest

from bench import report
from bench.plots import capacity_series, write_plots
from bench.progress import Progress, Step, format_duration
from bench.run import main as bench_main
from localcluster.processes import REPO

SAVED_RUN = REPO / "bench" / "results" / "2026-11-27T11-30-11Z.json"


@pytest.fixture
def saved_run(tmp_path):
    """A copy of a recorded run (capacity rows for three servers, and a failover)."""
    path = tmp_path / SAVED_RUN.name
    shutil.copy(SAVED_RUN, path)
    return path


def _png_size(path) -> tuple[int, int]:
    """Width and height from a PNG's signature and IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_write_plots__capacity_and_failover_pngs(saved_run):
    """Both plots are PNGs of a readable size, named after the run."""
    result = json.loads(saved_run.read_text())
    written = write_plots(result, saved_run.with_suffix(""))
    stem = saved_run.stem
    assert written == {"capacity": f"{stem}-capacity.png", "failover": f"{stem}-failover.png"}
    for name in written.values():
        width, height = _png_size(saved_run.parent / name)
        assert width >= 600 and height >= 300


def test_write_plots__failover_from_raw_times(saved_run):
    """With every client's time kept (newer runs), the failover plot draws their distribution."""
    result = json.loads(saved_run.read_text())
    result["failover"]["recovery"]["reconnect_ms"] = [1000.0 + 3 * i for i in range(1000)]
    written = write_plots(result, saved_run.with_suffix(""))
    assert _png_size(saved_run.parent / written["failover"])[0] >= 600


def test_write_plots__a_run_without_scenarios_draws_nothing(tmp_path):
    """A run that skipped both scenarios gets no plot and no link."""
    assert write_plots({"capacity": [], "failover": None}, tmp_path / "run") == {}
    assert list(tmp_path.iterdir()) == []


def test_capacity_series__cpu_per_thousand_and_kb_per_connection():
    """CPU is scaled to 1,000 established connections; rows sort by N per server."""
    rows = [
        {
            "server": "wstime",
            "connections": 5000,
            "cpu_pct": 50.0,
            "kb_per_conn": 27.0,
            "load": {"established": 5000},
        },
        {
            "server": "wstime",
            "connections": 1000,
            "cpu_pct": 12.0,
            "kb_per_conn": None,
            "load": {"established": 1000},
        },
        {
            "server": "node-ws",
            "connections": 1000,
            "cpu_pct": None,
            "kb_per_conn": 6.0,
            "load": {"established": 0},
        },
    ]
    assert capacity_series(rows) == {
        "wstime": [(1000, 12.0, None), (5000, 10.0, 27.0)],
        "node-ws": [(1000, None, 6.0)],
    }


def test_render__links_the_plots(saved_run):
    """`--render` of a saved run writes the plots and the Markdown links them by file name."""
    bench_main(["--render", str(saved_run)])
    markdown = saved_run.with_suffix(".md").read_text()
    for kind in ("capacity", "failover"):
        name = f"{saved_run.stem}-{kind}.png"
        assert f"]({name})" in markdown
        assert (saved_run.parent / name).exists()
    # Without plots the report is the tables alone.
    assert "![" not in report.render(json.loads(saved_run.read_text()))


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0, "0 s"),
        (42.4, "42 s"),
        (60, "1 min 00 s"),
        (185, "3 min 05 s"),
        (3720, "1 h 02 min"),
    ],
)
def test_format_duration__table(seconds, text):
    """Durations read as a person would say them."""
    assert format_duration(seconds) == text


def test_progress__step_share_and_time_left_learn_the_pace():
    """Lines name the step, how far into it, and the time left, rescaled after each step."""
    clock, stream = FakeClock(), io.StringIO()
    progress = Progress(
        [
            Step("capacity: wstime with 1,000 connections", 40),
            Step("capacity: wstime with 5,000 connections", 60),
            Step("failover: 2,000 clients through HAProxy", 100),
        ],
        stream=stream,
        clock=clock,
        every=0,
    )
    progress.start(0)
    clock.now += 10
    assert progress.line(clock.now) == (
        "[1/3] capacity: wstime with 1,000 connections: "
        "10 s of ~40 s (25%); about 3 min 10 s left in all"
    )
    clock.now += 70  # the first step took 80 s, twice its estimate
    progress.start(1)
    assert progress.time_left(clock.now) == pytest.approx(2 * (60 + 100))
    clock.now += 300  # far past its estimate: the step shows 100 %, never a negative time
    assert progress.line(clock.now).startswith(
        "[2/3] capacity: wstime with 5,000 connections: 5 min 00 s of ~2 min 00 s (100%)"
    )
    progress.start(2)
    progress.done()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("[1/3] capacity: wstime with 1,000 connections: 0 s of ~40 s")
    assert lines[2].startswith("[3/3] failover: 2,000 clients through HAProxy")
    assert lines[-1] == "[3/3] done in 6 min 20 s"


def test_progress__heartbeat_repeats_the_line():
    """During a long step the line comes again every `every` seconds."""
    stream = io.StringIO()
    progress = Progress(
        [Step("capacity: wstime with 200 connections", 10)], stream=stream, every=0.01
    )
    progress.start(0)
    deadline = time.monotonic() + 5
    while stream.getvalue().count("[1/1]") < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    progress.done()
    assert stream.getvalue().count("[1/1] capacity: wstime with 200 connections") >= 3
