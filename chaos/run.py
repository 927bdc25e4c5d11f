"""``python -m chaos``: a cluster, page-like clients, a nemesis, then the checker's verdict.

Phases: start the cluster and the clients; inject faults for ``--duration`` seconds; heal
(every fault undone, every dead process restarted); wait until every session ticks again, at
most ``--recovery`` seconds; let it settle and count live connections per session; stop the
clients; check /healthcheck and /metrics on every node; stop everything and read the node logs;
check; write the histories and the summary; exit 1 on any violation. ``--seed`` replays a
schedule: the same faults, in the same order, on the same targets, with the same parameters.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import signal
import sys
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

from localcluster.processes import REPO

from . import checker, netns
from .client import PageClient
from .cluster import ChaosCluster
from .nemesis import ALL_KINDS, NETNS_KINDS, PROCESS_KINDS, Nemesis

logger = logging.getLogger("chaos")

EXAMPLES = 3  # violations shown per kind in the summary


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seed", type=int, default=None, help="replay this schedule (default: random)"
    )
    parser.add_argument("--duration", type=float, default=120, help="seconds of faults (120)")
    parser.add_argument(
        "--clients", type=int, default=200, help="page-like clients (200; at most 1000)"
    )
    parser.add_argument("--nodes", type=int, default=3, help="nodes (3; at most 9)")
    parser.add_argument(
        "--tick", type=float, default=1.0, help="WSTIME_TICK_INTERVAL of the nodes (1)"
    )
    parser.add_argument(
        "--recovery",
        type=float,
        default=45.0,
        help="seconds after healing by which every session must tick again (45: "
        "the page's 30 s backoff cap, a handshake and a tick, with margin)",
    )
    parser.add_argument(
        "--kinds",
        default="all",
        help=f"comma-separated fault kinds, or all (default): {', '.join(ALL_KINDS)}",
    )
    parser.add_argument(
        "--netns",
        choices=("auto", "yes", "no"),
        default="auto",
        help="use network namespaces for the partition faults (auto: when root with ip and nft)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="fail on skips after a lossy or cut client link too (see README)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for histories, faults, summary, node logs (var/chaos/<time>-seed<seed>)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 1000:
        parser.error("--clients must be 1-1000")
    if not 2 <= args.nodes <= 9:
        parser.error("--nodes must be 2-9")
    if args.duration <= 0 or args.duration > 3600:
        parser.error("--duration must be in (0, 3600] seconds")
    return args


def choose_kinds(spec: str, with_netns: bool) -> tuple[str, ...]:
    wanted = ALL_KINDS if spec == "all" else tuple(k.strip() for k in spec.split(",") if k.strip())
    unknown = [k for k in wanted if k not in ALL_KINDS]
    if unknown:
        raise SystemExit(
            f"unknown fault kinds: {', '.join(unknown)} (known: {', '.join(ALL_KINDS)})"
        )
    if not with_netns:
        skipped = [k for k in wanted if k in NETNS_KINDS]
        if skipped and spec != "all":
            raise SystemExit(f"{', '.join(skipped)} need network namespaces (root, ip, nft)")
        wanted = tuple(k for k in wanted if k in PROCESS_KINDS)
    return wanted


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout
    )
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    with_netns = args.netns == "yes" or (args.netns == "auto" and netns.available())
    kinds = choose_kinds(args.kinds, with_netns)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%SZ")
    out = args.out or REPO / "var" / "chaos" / f"{stamp}-seed{seed}"
    (out / "logs").mkdir(parents=True, exist_ok=True)
    print(
        f"chaos: seed {seed}  (replay: python -m chaos --seed {seed} --duration "
        f"{args.duration:g} --clients {args.clients} --nodes {args.nodes} --tick {args.tick:g} "
        f"--kinds {','.join(kinds)})",
        flush=True,
    )
    print(
        f"chaos: output in {out}; network namespaces: {'yes' if with_netns else 'no'}", flush=True
    )

    # SIGTERM ends the run like Ctrl-C: through the clean-up below.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    namespaces = None
    cluster = None
    try:
        if with_netns:
            namespaces = netns.Namespaces(prefix=f"wsc{os.getpid() % 100000}", count=args.nodes)
            namespaces.create()
            namespaces.enter_hub()  # before any thread: Redis, HAProxy and clients live in the hub
        cluster = ChaosCluster(
            logs_dir=out / "logs", tick=args.tick, count=args.nodes, namespaces=namespaces
        )
        cluster.start()
        verdict = asyncio.run(_run(args, seed, kinds, cluster, out))
    except KeyboardInterrupt:
        print("chaos: interrupted; cleaning up", flush=True)
        verdict = 130
    finally:
        if cluster is not None:
            cluster.close()
        if namespaces is not None:
            namespaces.remove()
    return verdict


async def _run(args, seed: int, kinds: tuple[str, ...], cluster: ChaosCluster, out: Path) -> int:
    t0 = time.monotonic()
    clock = lambda: time.monotonic() - t0  # noqa: E731 - the run's clock, in seconds
    schedule = random.Random(seed)
    jitter = random.Random(seed ^ 0x5EED)
    run_tag = uuid.UUID(int=random.Random(seed).getrandbits(128)).hex[:8]
    history = []
    clients: list[PageClient] = []
    tasks: list[asyncio.Task] = []

    def add_client(client_id: str, label: str) -> PageClient:
        client = PageClient(
            cluster.lb_url,
            client_id,
            label,
            tick=args.tick,
            clock=clock,
            rng=random.Random(jitter.random()),
            history=history,
        )
        clients.append(client)
        tasks.append(asyncio.create_task(client.run()))
        return client

    duplicates_left = max(1, args.clients // 10)

    def duplicate(rng: random.Random, count: int) -> str | None:
        """Open ``count`` more clients, at once, with the id of a running one."""
        nonlocal duplicates_left
        running = [c for c in clients if c.outcome == "running" and "-dup" not in c.label]
        if not running or duplicates_left < count:
            return None
        duplicates_left -= count
        victim = rng.choice(running)
        for k in range(count):
            # A duplicated browser tab starts with a copy of the original's sessionStorage: its
            # id and the last count it saw.
            add_client(victim.id, f"{victim.label}-dup{k}").last_seen = victim.last_seen
        return victim.id

    try:
        for i in range(args.clients):
            add_client(f"chaos-{run_tag}-{i:04d}", f"c{i}")
            await asyncio.sleep(3.0 / args.clients)  # a ramp, not a herd
        await _wait_until(lambda: all(c.current and c.current.frames for c in clients), timeout=30)
        # Before any fault every client must tick: one that does not is a finding too.
        not_started = [
            c.id for c in clients if not any(conn.frames for conn in history if conn.id == c.id)
        ]
        warm = clock()
        print(
            f"chaos: {len(clients)} clients ticking at t={warm:.1f}s; faults for "
            f"{args.duration:g}s: {', '.join(kinds)}",
            flush=True,
        )
        nemesis = Nemesis(cluster, kinds=kinds, rng=schedule, clock=clock, duplicate=duplicate)
        await nemesis.run(args.duration)
        await asyncio.to_thread(cluster.heal_all)
        healed_at = clock()
        print(
            f"chaos: healed at t={healed_at:.1f}s; waiting up to {args.recovery:g}s for "
            "every session to tick",
            flush=True,
        )
        by_id: dict[str, list[PageClient]] = defaultdict(list)
        for client in clients:
            by_id[client.id].append(client)

        def recovered() -> bool:
            for group in by_id.values():
                if all(c.outcome != "running" for c in group):
                    continue
                if not any(
                    c.current and c.current.frames and c.current.frames[-1][2] >= healed_at
                    for c in group
                ):
                    return False
            return True

        await _wait_until(recovered, timeout=args.recovery)
        recovery_end = clock()
        await asyncio.sleep(3 * args.tick)  # takeovers in flight settle
        now = clock()
        live = {
            sid: sum(c.live(now, 2.5 * args.tick) for c in group) for sid, group in by_id.items()
        }
    finally:
        for client in clients:
            client.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
    endpoints = await asyncio.to_thread(cluster.endpoints)
    logs = await asyncio.to_thread(cluster.stop_and_collect_logs)

    records = [conn.as_json() for conn in history]
    outcomes = {
        sid: [c.outcome if c.outcome != "stopped" else "running" for c in group]
        for sid, group in by_id.items()
    }
    link_faults = [
        checker.LinkFault(f.target, f.started, f.healed if f.healed is not None else now)
        for f in nemesis.faults
        if f.kind in ("clients-cut", "lossy")
    ]
    violations = checker.check_continuity(records, link_faults)
    violations += checker.check_recovery(
        records, healed_at=healed_at, deadline=healed_at + args.recovery, outcomes=outcomes
    )
    violations += checker.check_quiescence(live)
    violations += checker.check_logs(logs)
    violations += [
        checker.Violation("no-start", sid, "no frame within 30 s before any fault")
        for sid in not_started
    ]
    violations += [
        checker.Violation("harness-error", c.id, c.outcome)
        for c in clients
        if c.outcome.startswith("crashed")
    ]
    for node, statuses in endpoints.items():
        for path, status in statuses.items():
            if status != 200:
                violations.append(checker.Violation("endpoint", node, f"{path} answered {status}"))
    return _report(
        seed,
        args,
        kinds,
        nemesis,
        records,
        violations,
        out,
        healed_at=healed_at,
        recovery_end=recovery_end,
        live=live,
        clients=clients,
    )


async def _wait_until(predicate, *, timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)
    return True


def _report(
    seed,
    args,
    kinds,
    nemesis,
    records,
    violations,
    out: Path,
    *,
    healed_at,
    recovery_end,
    live,
    clients,
) -> int:
    with open(out / "histories.jsonl", "w") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    with open(out / "faults.jsonl", "w") as f:
        for fault in nemesis.faults:
            f.write(json.dumps(fault.as_json()) + "\n")
    frames = sum(len(r["frames"]) for r in records)
    opened = sum(r["opened"] is not None for r in records)
    refused = Counter(str(r["status"] or r["error"]) for r in records if r["end"] == "refused")
    ends = Counter(f"{r['end']} {r['code']}" if r["end"] == "close" else r["end"] for r in records)
    times = checker.recovery_times(records, healed_at)
    by_kind: dict[str, list[checker.Violation]] = defaultdict(list)
    for violation in violations:
        by_kind[violation.kind].append(violation)
    faults = [fault.as_json() for fault in nemesis.faults]
    # Which faults were under way when each frame rule broke: a lead, not a proof.
    around: dict[str, Counter] = defaultdict(Counter)
    for violation in violations:
        if violation.window is not None:
            kinds_near = {f["kind"] for f in checker.faults_in(violation.window, faults)}
            around[violation.kind].update(kinds_near or {"none"})

    def example(v: checker.Violation) -> str:
        if v.window is None:
            return f"{v.id}: {v.detail}"
        near = ", ".join(
            f"{f['kind']}@{f['target']} t={f['started']:.1f}-{f['healed']:.1f}"
            for f in checker.faults_in(v.window, faults)
        )
        return f"{v.id}: {v.detail}; faults: {near or 'none'}"

    summary = {
        "seed": seed,
        "duration_s": args.duration,
        "clients": args.clients,
        "sessions": len({r["id"] for r in records}),
        "client_objects": len(clients),
        "kinds": list(kinds),
        "faults": dict(nemesis.counts()),
        "skipped_faults": sum(bool(f.skipped) for f in nemesis.faults),
        "fault_errors": [f.as_json() for f in nemesis.faults if f.error],
        "frames": frames,
        "connections": opened,
        "reconnects": opened - len(clients),
        "refused_handshakes": dict(refused),
        "connection_ends": dict(ends),
        "recovery_s": {
            "p50": _pct(times, 0.5),
            "max": times[-1] if times else None,
            "sessions": len(times),
            "waited": round(recovery_end - healed_at, 1),
        },
        "live_at_quiescence": dict(Counter(live.values())),
        "violations": {kind: len(items) for kind, items in sorted(by_kind.items())},
        "informational": sorted(checker.INFORMATIONAL & set(by_kind)) if not args.strict else [],
        "faults_around_violations": {
            kind: dict(counter.most_common()) for kind, counter in sorted(around.items())
        },
        "examples": {
            kind: [example(v) for v in items[:EXAMPLES]] for kind, items in sorted(by_kind.items())
        },
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: summary[k] for k in summary if k != "examples"}, indent=2))
    for kind, examples in summary["examples"].items():
        print(f"  {kind} ({summary['violations'][kind]}):")
        for example in examples:
            print(f"    {example}")
    failing = [v for v in violations if args.strict or v.kind not in checker.INFORMATIONAL]
    verdict = "FAIL" if failing else "OK"
    print(
        f"chaos: {verdict}: seed {seed}, {sum(nemesis.counts().values())} faults, "
        f"{frames} frames, {len(failing)} violations"
        f" ({len(violations) - len(failing)} informational); histories in "
        f"{out / 'histories.jsonl'}",
        flush=True,
    )
    return 1 if failing else 0


def _pct(values: list[float], q: float) -> float | None:
    return round(values[min(len(values) - 1, int(q * len(values)))], 2) if values else None
