"""PNG plots of a benchmark run, written next to its JSON and linked from its Markdown.

``capacity``: CPU and memory per connection against N, one line per server (wstime beside the
baselines). ``failover`` and ``storm``: when the clients of the killed node got their next
frame. Reads the run's JSON only, so ``python -m bench.run --render`` draws an old run again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SERVER_STYLE = {
    "wstime": ("tab:blue", "o"),
    "node-ws": ("tab:green", "s"),
    "python-websockets": ("tab:orange", "^"),
    "wstime-uvicorn": ("tab:purple", "D"),
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server
    import matplotlib.pyplot as plt

    return plt


def capacity_series(
    rows: list[dict[str, Any]],
) -> dict[str, list[tuple[int, float | None, float | None]]]:
    """Per server, sorted by N: (N, CPU % of a core per 1,000 connections, KB per connection)."""
    series: dict[str, list[tuple[int, float | None, float | None]]] = {}
    for row in rows:
        established = row["load"]["established"]
        cpu = (
            row["cpu_pct"] / established * 1000
            if row.get("cpu_pct") is not None and established
            else None
        )
        series.setdefault(row["server"], []).append(
            (row["connections"], cpu, row.get("kb_per_conn"))
        )
    return {server: sorted(points) for server, points in series.items()}


def plot_capacity(result: dict[str, Any], path: Path) -> Path | None:
    """Write the capacity curve to ``path``; None when the run has no capacity rows."""
    rows = result.get("capacity") or []
    if not rows:
        return None
    plt = _pyplot()
    figure, (cpu_axes, memory_axes) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for server, points in capacity_series(rows).items():
        colour, marker = SERVER_STYLE.get(server, (None, "x"))
        for axes, index in ((cpu_axes, 1), (memory_axes, 2)):
            shown = [(point[0], point[index]) for point in points if point[index] is not None]
            if shown:
                axes.plot(
                    [n for n, _ in shown],
                    [v for _, v in shown],
                    marker=marker,
                    color=colour,
                    label=server,
                )
    cpu_axes.set(
        title="CPU per connection",
        xlabel="connections (N)",
        ylabel="CPU % of a core per 1,000 connections",
    )
    memory_axes.set(
        title="Memory per connection", xlabel="connections (N)", ylabel="KB of RSS per connection"
    )
    sizes = sorted({row["connections"] for row in rows})
    for axes in (cpu_axes, memory_axes):
        axes.set_xscale("log")
        axes.set_xticks(sizes, [f"{n:,}" for n in sizes])
        axes.minorticks_off()
        axes.set_ylim(bottom=0)
        axes.grid(True, alpha=0.3)
        axes.legend()
    figure.suptitle(f"wstime capacity, {result.get('started_utc', '')}")
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_failover(result: dict[str, Any], path: Path) -> Path | None:
    """Write the time-to-resume distribution to ``path``; None when the run had no failover."""
    failover = result.get("failover")
    if not failover:
        return None
    return _plot_recovery(failover["recovery"], "Failover", path)


def plot_storm(result: dict[str, Any], path: Path) -> Path | None:
    """Write the storm's time-to-resume distribution to ``path``; None without a storm."""
    storm = result.get("storm")
    if not storm:
        return None
    return _plot_recovery(
        storm["recovery"], f"Storm onto a node holding {storm['survivor_clients']:,}", path
    )


def _plot_recovery(recovery: dict[str, Any], title: str, path: Path) -> Path:
    """A histogram of the times from the kill to the next frame, with the cumulative share."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(8, 4.2), layout="constrained")
    times = recovery.get("reconnect_ms")
    if times:
        seconds = [t / 1000 for t in times]
        axes.hist(
            seconds,
            bins=min(60, max(10, len(seconds) // 20)),
            color="tab:blue",
            alpha=0.8,
            label="clients",
        )
        cumulative = axes.twinx()
        ranked = sorted(seconds)
        cumulative.plot(
            ranked,
            [100 * (i + 1) / recovery["affected"] for i in range(len(ranked))],
            color="tab:red",
            label="resumed, % of affected",
        )
        cumulative.set(ylabel="% of affected clients resumed", ylim=(0, 100))
        axes.set(xlabel="seconds from the kill to the next frame")
    else:  # runs from before the raw times were kept: the report's buckets
        buckets = recovery["histogram"]
        axes.bar(list(buckets), list(buckets.values()), color="tab:blue")
        axes.tick_params(axis="x", labelrotation=30)
        axes.set(xlabel="time from the kill to the next frame")
    for label, key, style in (("p50", "reconnect_p50_ms", "--"), ("p99", "reconnect_p99_ms", ":")):
        value = recovery.get(key)
        if times and value is not None and value != float("inf"):
            axes.axvline(
                value / 1000, color="black", linestyle=style, label=f"{label} {value / 1000:.2f} s"
            )
    axes.set(
        ylabel="clients",
        title=(
            f"{title}: {recovery['affected']:,} clients of the killed node, "
            f"{recovery['resumed']:,} resumed, {recovery['histogram'].get('never', 0):,} never"
        ),
    )
    if times:
        axes.legend(loc="upper left")
    axes.grid(True, alpha=0.3)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def write_plots(result: dict[str, Any], base: Path) -> dict[str, str]:
    """Draw every plot the run allows as ``<base>-<kind>.png``; return their file names."""
    written = {}
    for kind, draw in (
        ("capacity", plot_capacity),
        ("failover", plot_failover),
        ("storm", plot_storm),
    ):
        path = draw(result, base.with_name(f"{base.name}-{kind}.png"))
        if path is not None:
            written[kind] = path.name
    return written
