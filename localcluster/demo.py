"""``make demo``: the article's whole demo on this machine.

Redis, two wstime nodes and HAProxy in front of them on http://127.0.0.1:8000, all on loopback.
Open the page, press Connect, kill the node that serves you (the command is printed) and watch
the count go on from the other node. Ctrl-C stops everything this started.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from .cluster import start_cluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("WSTIME_DEMO_PORT", 8000)),
        help="where HAProxy listens (default 8000)",
    )
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    cluster = None
    try:
        cluster = start_cluster(lb_port=args.port)
        redis, nodes, haproxy = cluster.redis, cluster.nodes, cluster.haproxy
        print(f"""
wstime demo is running (Ctrl-C stops everything):

  open      http://127.0.0.1:{args.port}/      the page (through HAProxy); press Connect
  redis     {redis.extra["url"]}   pid {redis.pid}
""")
        for node in nodes:
            print(
                f"  node      {node.extra['url']}   name {node.extra['name']}   pid {node.pid}"
                f"   log {node.log_path}"
            )
        print(
            f"""  haproxy   http://127.0.0.1:{args.port}/   pid {haproxy.pid}

Each frame names the node that sent it. To fail that node over, kill it:
  kill -9 <its pid above>
and watch the page reconnect to the other node with the count going on.
Health of a node: curl -s '<node url>/healthcheck?format=json'
Admin (thresholds, draining): DJANGO_SUPERUSER_PASSWORD=... .venv/bin/python manage.py \\
  ensure_admin --username admin, then open <node url>/admin/
Drain a node politely: kill -TERM <its pid>, or .venv/bin/python manage.py drain --node node-one
""",
            flush=True,
        )
        while True:
            time.sleep(1)
            for managed in cluster.processes():
                if not managed.alive() and managed.extra.get("reported") is None:
                    managed.extra["reported"] = True
                    print(f"{managed.name} (pid {managed.pid}) has stopped", flush=True)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    finally:
        if cluster is not None:
            cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
