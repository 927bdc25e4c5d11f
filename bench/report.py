"""Judge a run against the performance targets and render it as Markdown. Pure: dicts in, text out."""

from __future__ import annotations

from typing import Any

from .servers import NODE_WS, WSTIME

# The performance targets, per node process with the Redis layer on.
DELIVERED_MIN_PCT = 99.9
JITTER_P99_MAX_MS = 100.0
CPU_VS_NODE_MAX = 1.5
CPU_VS_NODE_STRETCH = 1.2
RSS_MAX_KB = 20.0
HEALTH_P99_MAX_MS = 10.0
LAG_P99_MAX_MS = 10.0  # the node's own event-loop lag, a bucket bound of its histogram
RESUMED_MIN_PCT = 99.0
# The failover storm: the survivor stays responsive while a killed node's clients land on it.
STORM_HEALTH_P99_MAX_MS = 250.0
STORM_LAG_P99_MAX_MS = 250.0
# "The steady Redis command rate does not grow with connections": the rate at the largest N
# may exceed the rate at the smallest by this factor (plus a command a second) at most.
REDIS_GROWTH_MAX = 1.2


def _row(rows: list[dict[str, Any]], server: str, connections: int) -> dict[str, Any] | None:
    return next(
        (r for r in rows if r["server"] == server and r["connections"] == connections), None
    )


def cpu_vs_node(rows: list[dict[str, Any]], row: dict[str, Any]) -> float | None:
    """CPU per held connection of ``row`` ÷ Node ws's at the same N, in the same run.

    Per connection established, so that a server holding a third of its connections does
    not look cheap.
    """
    node = _row(rows, NODE_WS, row["connections"])
    if (
        node is None
        or not node.get("cpu_pct")
        or row.get("cpu_pct") is None
        or not node["load"]["established"]
        or not row["load"]["established"]
    ):
        return None
    return (row["cpu_pct"] / row["load"]["established"]) / (
        node["cpu_pct"] / node["load"]["established"]
    )


def judge(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Return one verdict per target: what, the measured value, and met (None: not measured)."""
    rows = result.get("capacity", [])
    wstime = sorted((r for r in rows if r["server"] == WSTIME), key=lambda r: r["connections"])
    verdicts: list[dict[str, Any]] = []

    def add(target: str, value: Any, met: bool | None, where: str = "") -> None:
        verdicts.append({"target": target, "value": value, "met": met, "where": where})

    for row in wstime:
        n = row["connections"]
        load = row["load"]
        where = f"wstime, {n:,} conns"
        add(
            f"delivered >= {DELIVERED_MIN_PCT} %",
            load["delivered_pct"],
            _at_least(load["delivered_pct"], DELIVERED_MIN_PCT),
            where,
        )
        add(
            f"tick jitter p99 < {JITTER_P99_MAX_MS:g} ms",
            load["jitter_p99_ms"],
            _below(load["jitter_p99_ms"], JITTER_P99_MAX_MS),
            where,
        )
        add(
            "no connection refused or dropped while ramping",
            f"{load['failed']} failed, {load['dropped']} dropped",
            load["failed"] == 0 and load["dropped"] == 0,
            where,
        )
        ratio = cpu_vs_node(rows, row)
        add(
            f"CPU per conn <= {CPU_VS_NODE_MAX:g}x Node ws (stretch {CPU_VS_NODE_STRETCH:g}x)",
            None if ratio is None else f"{ratio:.1f}x",
            None if ratio is None else ratio <= CPU_VS_NODE_MAX,
            where,
        )
        add(
            f"RSS <= {RSS_MAX_KB:g} KB/conn",
            row["kb_per_conn"],
            _below(row["kb_per_conn"], RSS_MAX_KB, inclusive=True),
            where,
        )
        health = row.get("healthcheck") or {}
        statuses = health.get("statuses", {})
        ok = statuses.get("200", 0) == health.get("requests", 0) and health.get("requests", 0) > 0
        add(
            f"/healthcheck p99 < {HEALTH_P99_MAX_MS:g} ms (all 200)",
            f"{_fmt(health.get('p99_ms'))} ms, statuses {statuses}",
            None if not health else ok and _below(health.get("p99_ms"), HEALTH_P99_MAX_MS),
            where,
        )
        lag = row.get("loop_lag") or {}
        add(
            f"event-loop lag p99 <= {LAG_P99_MAX_MS:g} ms (bucket bound)",
            f"{_fmt(lag.get('p99_ms'))} ms of {lag.get('samples', 0)} samples",
            _below(lag.get("p99_ms"), LAG_P99_MAX_MS, inclusive=True)
            if lag.get("samples")
            else None,
            where,
        )
    rates = [
        (r["connections"], r["redis_cmds_per_s"])
        for r in wstime
        if r.get("redis_cmds_per_s") is not None
    ]
    if len(rates) >= 2:
        (n1, r1), (n2, r2) = rates[0], rates[-1]
        add(
            "steady Redis command rate does not grow with connections",
            f"{r1:g}/s at {n1:,} -> {r2:g}/s at {n2:,}",
            r2 <= REDIS_GROWTH_MAX * r1 + 1.0,
            "wstime",
        )
    failover = result.get("failover")
    if failover:
        recovery = failover["recovery"]
        add(
            f"failover: >= {RESUMED_MIN_PCT:g} % resumed within {recovery['within_s']:g} s",
            recovery["resumed_within_pct"],
            _at_least(recovery["resumed_within_pct"], RESUMED_MIN_PCT),
            f"{failover['connections']:,} clients through HAProxy",
        )
    if result.get("storm"):
        for verdict in judge_storm(result["storm"]):
            add(**verdict)
    return verdicts


def judge_storm(storm: dict[str, Any]) -> list[dict[str, Any]]:
    """The storm's verdicts: the victim's clients resumed, the survivor and its clients fine."""
    recovery, kinds = storm["recovery"], storm["resume_kinds"]
    where = f"storm: {storm['clients']:,} onto a node holding {storm['survivor_clients']:,}"
    health = storm["survivor_health"]["storm"]
    lag = storm["survivor_loop_lag"]["storm"]
    own = storm["survivor_own_load"]
    statuses = health.get("statuses", {})
    all_ok = health.get("requests", 0) > 0 and statuses.get("200", 0) == health["requests"]
    lost = sum(storm["refused_for_good"].values())
    refused = ", ".join(f"{n:,} {kind}" for kind, n in sorted(storm["refused_for_good"].items()))
    return [
        {
            "target": f">= {RESUMED_MIN_PCT:g} % resumed within {recovery['within_s']:g} s",
            "value": recovery["resumed_within_pct"],
            "met": _at_least(recovery["resumed_within_pct"], RESUMED_MIN_PCT),
            "where": where,
        },
        {
            "target": "none refused for good (no 4001, every client back within the storm)",
            "value": f"{lost:,}" + (f" ({refused})" if refused else ""),
            "met": lost == 0 if recovery["affected"] else None,
            "where": where,
        },
        {
            "target": "no count repeated or reset",
            "value": f"{kinds['repeated']:,} repeated, {kinds['reset']:,} reset",
            "met": kinds["repeated"] == 0 and kinds["reset"] == 0 if recovery["affected"] else None,
            "where": where,
        },
        {
            "target": f"survivor /healthcheck p99 < {STORM_HEALTH_P99_MAX_MS:g} ms (all 200)",
            "value": f"{_fmt(health.get('p99_ms'))} ms, statuses {statuses}",
            "met": None
            if not health.get("requests")
            else all_ok and _below(health.get("p99_ms"), STORM_HEALTH_P99_MAX_MS),
            "where": where,
        },
        {
            "target": f"survivor event-loop lag p99 <= {STORM_LAG_P99_MAX_MS:g} ms (bucket bound)",
            "value": f"{_fmt(lag.get('p99_ms'))} ms",
            "met": None
            if not lag.get("samples")
            else lag.get("p99_ms") is not None and lag["p99_ms"] <= STORM_LAG_P99_MAX_MS,
            "where": where,
        },
        {
            "target": f"survivor's own clients delivered >= {DELIVERED_MIN_PCT} % during the storm",
            "value": own["delivered_pct"],
            "met": _at_least(own["delivered_pct"], DELIVERED_MIN_PCT),
            "where": where,
        },
    ]


def _at_least(value: float | None, floor: float) -> bool | None:
    return None if value is None else value >= floor


def _below(value: float | None, ceiling: float, *, inclusive: bool = False) -> bool | None:
    if value is None:
        return None
    return value <= ceiling if inclusive else value < ceiling


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value + 0.0 if round(value, digits) else 0.0:,.{digits}f}"  # no "-0"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "**MISSED**", None: "not measured"}[met]


def render(result: dict[str, Any]) -> str:
    """The run as Markdown: capacity table, failover, targets, environment."""
    lines = [f"# wstime benchmark, {result['started_utc']}", ""]
    env = result.get("environment", {})
    lines += [
        "One noisy shared machine; the load generator, the servers and Redis share its "
        f"{env.get('cpus', '?')} cores, so compare rows of this run with each other. "
        f"Ramp {_fmt(result['options']['rate'], 0)} new connections/s, steady window "
        f"{_fmt(result['options']['window'], 0)} s, tick interval "
        f"{result['options']['interval']:g} s.",
        "",
    ]
    rows = result.get("capacity", [])
    plots = result.get("plots", {})
    if rows:
        lines += [
            "## Capacity (one server process; wstime with the Redis layer on)",
            "",
            *_plot_link(plots, "capacity", "CPU and memory per connection against N"),
            "| N | server | established | dropped | delivered % | jitter p99 ms | "
            "connect p50 / p99 ms | CPU % of a core (peak) | CPU ÷ Node | KB/conn | "
            "Redis cmd/s | /healthcheck p50 / p99 ms | client lag p99 ms | load gen / others' "
            "CPU % |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in rows:
            load = row["load"]
            ratio = cpu_vs_node(rows, row)
            health = row.get("healthcheck")
            lines.append(
                f"| {row['connections']:,} | {row['server']} "
                f"| {load['established']:,}/{load['attempted']:,}"
                f"{_failures(load['failures'])} | {load['dropped']:,} "
                f"| {_fmt(load['delivered_pct'], 2)} | {_fmt(load['jitter_p99_ms'])} "
                f"| {_fmt(load['handshake_p50_ms'])} / {_fmt(load['handshake_p99_ms'])} "
                f"| {_fmt(row['cpu_pct'])} ({_fmt(row['cpu_peak_pct'], 0)}) "
                f"| {'–' if ratio is None else f'{ratio:.1f}x'} | {_fmt(row['kb_per_conn'])} "
                f"| {_fmt(row['redis_cmds_per_s'])} "
                f"| {'–' if not health else _health(health)} "
                f"| {_fmt(load['client_loop_lag_p99_ms'])} "
                f"| {_fmt(row.get('loadgen_cpu_pct'), 0)} / {_fmt(row.get('others_cpu_pct'), 0)} |"
            )
        lines.append("")
    failover = result.get("failover")
    if failover:
        lines += _render_failover(failover, plots)
    if result.get("storm"):
        lines += _render_storm(result["storm"], plots)
    verdicts = result.get("targets", [])
    if verdicts:
        lines += ["## Targets", "", "| target | where | measured | verdict |", "|---|---|---|---|"]
        for v in verdicts:
            lines.append(
                f"| {v['target']} | {v['where']} | {_fmt(v['value'], 2)} | {_verdict(v['met'])} |"
            )
        lines.append("")
    profiles = [(r["server"], r["connections"], r["profile"]) for r in rows if r.get("profile")]
    for server, n, summary in profiles:
        lines += _render_profile(server, n, summary)
    storm_profile = (result.get("storm") or {}).get("profile")
    if storm_profile:
        lines += _render_profile(
            "the storm's survivor",
            None,
            storm_profile,
            span="from the kill to the end of the storm",
        )
    lines += _render_notes(result)
    return "\n".join(lines) + "\n"


def _failures(failures: dict[str, int]) -> str:
    if not failures:
        return ""
    return " (" + ", ".join(f"{n:,} {kind}" for kind, n in sorted(failures.items())) + ")"


def _health(health: dict[str, Any]) -> str:
    statuses = health.get("statuses", {})
    text = f"{_fmt(health.get('p50_ms'))} / {_fmt(health.get('p99_ms'))}"
    if set(statuses) - {"200"}:
        text += (
            " ("
            + ", ".join(
                f"{n}× {code if code != '0' else 'no answer'}" for code, n in statuses.items()
            )
            + ")"
        )
    return text


def _render_failover(failover: dict[str, Any], plots: dict[str, str]) -> list[str]:
    recovery = failover["recovery"]
    before = ", ".join(f"{name} {n:,}" for name, n in sorted(failover["before_kill"].items()))
    lines = [
        "## Failover through HAProxy (2 nodes + Redis)",
        "",
        f"{failover['connections']:,} clients (full-jitter reconnect like the page: random in "
        f"[0, min(30 s, 0.5 s × 2^attempt))). Before the kill: {before}. `kill -9` of "
        f"{failover['killed']}; watched for {failover['observe_s']:g} s.",
        "",
        "| clients on the killed node | next frame p50 / p99 / max ms | resumed (N+1 or N+2) | "
        f"resumed within {recovery['within_s']:g} s | never came back | count jumps | "
        "reconnect opens p50 / p99 ms | peak opens per 100 ms | survivor CPU % (peak) |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {recovery['affected']:,} | {_fmt(recovery['reconnect_p50_ms'])} / "
        f"{_fmt(recovery['reconnect_p99_ms'])} / {_fmt(recovery['reconnect_max_ms'])} "
        f"| {recovery['resumed']:,} | {_fmt(recovery['resumed_within_pct'], 2)} % "
        f"| {recovery['histogram'].get('never', 0):,} "
        f"| {', '.join(f'{k}: {v}' for k, v in recovery['jumps'].items()) or '–'} "
        f"| {_fmt(recovery['reopened_p50_ms'])} / {_fmt(recovery['reopened_p99_ms'])} "
        f"| {recovery['reconnects_peak_per_100ms']:,} "
        f"| {_fmt(failover['survivor_cpu_pct'])} ({_fmt(failover['survivor_cpu_peak_pct'], 0)}) |",
        "",
        f"Clients saw their connection end {_fmt(recovery['noticed_p50_ms'])} ms (p50) / "
        f"{_fmt(recovery['noticed_p99_ms'])} ms (p99) after the kill; failed reconnect "
        f"attempts: {_failures(recovery['failed_attempts']).strip(' ()') or 'none'}; "
        f"attempts per client p99: {_fmt(recovery['attempts_p99'])}.",
        "",
        "Time from the kill to each affected client's next frame:",
        "",
        *_plot_link(plots, "failover", "time from the kill to the next frame"),
        *_histogram_table(recovery["histogram"]),
    ]
    return lines


def _render_storm(storm: dict[str, Any], plots: dict[str, str]) -> list[str]:
    recovery, kinds = storm["recovery"], storm["resume_kinds"]
    health, lag = storm["survivor_health"], storm["survivor_loop_lag"]
    own = storm["survivor_own_load"]
    before = "; ".join(
        f"{who} clients: " + ", ".join(f"{name} {n:,}" for name, n in sorted(census.items()))
        for who, census in storm["before_kill"].items()
    )
    failed = _failures(recovery["failed_attempts"]).strip(" ()") or "none"
    refused = _failures(storm["refused_for_good"]).strip(" ()") or "none"
    counters = (
        ", ".join(
            f"`{name}` +{_fmt(n, 0)}" for name, n in storm.get("survivor_counters", {}).items()
        )
        or "–"
    )
    lags = ", ".join(
        f"{who} clients {_fmt(ms)} ms"
        for who, ms in storm.get("client_loop_lag_p99_ms", {}).items()
    )
    lines = [
        "## Failover storm (2 nodes + Redis + HAProxy)",
        "",
        f"{storm['survivor_clients']:,} clients connected straight to {storm['survivor']} and "
        f"{storm['clients']:,} straight to {storm['killed']} (rebalancing off); then `kill -9` of "
        f"{storm['killed']}. Its clients reconnected through HAProxy like the page (full-jitter "
        f"backoff, silence timeout); watched for {storm['observe_s']:g} s. Before the kill: "
        f"{before}.",
        "",
        "| clients of the killed node | next frame p50 / p90 / p99 / max ms | resumed within "
        f"{recovery['within_s']:g} s | resumed (N+1 or N+2) | repeated | reset to 0 | skipped "
        "ahead | never came back | failed attempts | peak opens per 100 ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {recovery['affected']:,} | {_fmt(recovery['reconnect_p50_ms'])} / "
        f"{_fmt(recovery.get('reconnect_p90_ms'))} / {_fmt(recovery['reconnect_p99_ms'])} / "
        f"{_fmt(recovery['reconnect_max_ms'])} | {_fmt(recovery['resumed_within_pct'], 2)} % "
        f"| {kinds['resumed']:,} | {kinds['repeated']:,} | {kinds['reset']:,} "
        f"| {kinds['skipped']:,} | {kinds['never']:,} | {failed} "
        f"| {recovery['reconnects_peak_per_100ms']:,} |",
        "",
        "Time from the kill to each client's next frame:",
        "",
        *_plot_link(plots, "storm", "time from the kill to the next frame, storm"),
        *_histogram_table(recovery["histogram"]),
        f"Clients the page would have lost (closed with 4001, where it stops; or no frame "
        f"within the {storm['observe_s']:g} s watched, by their last attempt's failure): "
        f"{refused}.",
        "",
        *_server_changes(storm.get("haproxy_server_changes", [])),
        f"The survivor ({storm['survivor']}), before the kill and during the storm "
        "(/healthcheck timed about 20 times a second; its own event-loop lag from two scrapes of "
        "`wstime_event_loop_lag_seconds`, bucket bounds):",
        "",
        "| survivor | /healthcheck p50 / p99 / max ms | event-loop lag p50 / p99 / max ms "
        "| CPU % of a core |",
        "|---|---|---|---|",
        f"| before the kill | {_health_max(health['before_kill'])} "
        f"| {_lag(lag['before_kill'])} | {_fmt(storm.get('survivor_cpu_before_kill_pct'))} |",
        f"| storm | {_health_max(health['storm'])} | {_lag(lag['storm'])} "
        f"| {_fmt(storm['survivor_cpu_pct'])} (peak {_fmt(storm['survivor_cpu_peak_pct'], 0)}) |",
        "",
        f"The survivor's own {storm['survivor_clients']:,} clients during the storm: delivered "
        f"{_fmt(own['delivered_pct'], 2)} %, {own['dropped']:,} dropped, jitter p99 "
        f"{_fmt(own['jitter_p99_ms'])} ms, {own['continuity_breaks']:,} count breaks.",
        "",
        f"Where the CPU went during the storm: the survivor {_fmt(storm['survivor_cpu_pct'])} % of "
        f"a core, Redis {_fmt(storm.get('redis_cpu_pct'))} %, HAProxy "
        f"{_fmt(storm.get('haproxy_cpu_pct'))} %, the load generators "
        f"{_fmt(storm.get('loadgen_cpu_pct'))} %, the whole machine "
        f"{_fmt(storm.get('machine_busy_pct'))} % (the kernel and other processes included). "
        f"The load generators' own event-loop lag p99: {lags or '–'}. The survivor's counters "
        f"grew by: {counters}.",
        "",
    ]
    return lines


def _server_changes(changes: list[str]) -> list[str]:
    if not changes:
        return ["HAProxy marked no server up or down.", ""]
    return ["HAProxy's server changes:", "", *(f"- `{line}`" for line in changes), ""]


def _health_max(health: dict[str, Any]) -> str:
    """p50 / p99 / max, and the statuses when any was not 200."""
    if not health.get("requests"):
        return "–"
    statuses = health.get("statuses", {})
    text = (
        f"{_fmt(health.get('p50_ms'))} / {_fmt(health.get('p99_ms'))} / "
        f"{_fmt(health.get('max_ms'))}"
    )
    if set(statuses) - {"200"}:
        text += (
            " ("
            + ", ".join(
                f"{n}× {code if code != '0' else 'no answer'}" for code, n in statuses.items()
            )
            + ")"
        )
    return text


def _lag(lag: dict[str, Any]) -> str:
    if not lag.get("samples"):
        return "–"
    top = _fmt(lag["max_ms"]) if not lag.get("over_last_bound") else "> 10,000"
    return f"{_fmt(lag['p50_ms'])} / {_fmt(lag['p99_ms'])} / {top}"


def _histogram_table(histogram: dict[str, int]) -> list[str]:
    """One row of clients per bucket of time from the kill to the next frame."""
    return [
        "| " + " | ".join(histogram) + " |",
        "|" + "---|" * len(histogram),
        "| " + " | ".join(f"{n:,}" for n in histogram.values()) + " |",
        "",
    ]


def _plot_link(plots: dict[str, str], kind: str, caption: str) -> list[str]:
    """A Markdown image of the run's ``kind`` plot (a PNG next to the .md), if drawn."""
    return [f"![{caption}]({plots[kind]})", ""] if kind in plots else []


def _render_profile(
    server: str,
    n: int | None,
    summary: dict[str, Any],
    *,
    span: str = "from the start of the load to the end of the window",
) -> list[str]:
    title = f"Profile of {server}" + (f" at {n:,} connections" if n is not None else "")
    if "error" in summary:
        return [f"## {title}", "", f"py-spy: {summary['error']}", ""]
    lines = [
        f"## {title} (py-spy, {summary['samples']:,} samples of busy threads, {span})",
        "",
        "| where (a sample counts for each that its stack passes through) | % of samples |",
        "|---|---|",
    ]
    lines += [f"| {label} | {pct} |" for label, pct in summary.get("categories_pct", [])]
    lines += ["", "| function (own time) | % of samples |", "|---|---|"]
    lines += [f"| `{name}` | {pct} |" for name, pct in summary["own_pct"]]
    lines += ["", f"Folded stacks: `{summary['folded']}`", ""]
    return lines


def _render_notes(result: dict[str, Any]) -> list[str]:
    lines = [
        "## How measured",
        "",
        "- delivered %: frames received in the window ÷ (connections attempted × window ÷ "
        "interval); jitter: |gap − interval| between consecutive frames (N, N+1) of a "
        "connection; connect: TCP connect + WebSocket handshake.",
        "- CPU: user + system time of the server process over the window (peak: busiest "
        "½ s); CPU ÷ Node: CPU per established connection ÷ Node ws's at the same N; "
        "KB/conn: (median RSS in the window − RSS before load) ÷ established connections.",
        "- Redis cmd/s: `total_commands_processed` delta over the window (the sampler's "
        "own INFO calls removed); /healthcheck: a new HTTP connection per request, "
        f"{result['options']['health_rate']:g}/s.",
        "- client lag p99: the load generator's own event-loop lag; when it is high the "
        "client, not the server, adds jitter. Others' CPU: the machine's busy time in the "
        "window less the server, the load generator and Redis: other processes, and the "
        "kernel's loopback TCP work that no process is charged for.",
        "",
    ]
    env = result.get("environment")
    if env:
        lines += ["## Environment", "", ", ".join(f"{k} {v}" for k, v in env.items()), ""]
    command = result.get("command")
    if command:
        lines += [f"Rerun: `{command}`", ""]
    return lines
