"""The article's server written with Python ``websockets`` (asyncio), a baseline for wstime.

One task per connection sleeps an interval and sends ``<name>: you have been connected for N
seconds``, like the Node server's ``setInterval``. No client id, no sessions, no cluster.

    python -m bench.baselines.python_websockets --port 8765 [--name python-websockets]
        [--interval 1.0] [--backlog 4096]
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed


async def _tick(connection: ServerConnection, name: str, interval: float) -> None:
    n = 0
    try:
        while True:
            await asyncio.sleep(interval)
            await connection.send(f"{name}: you have been connected for {n} seconds")
            n += 1
    except ConnectionClosed:
        pass


async def serve_forever(*, port: int, name: str, interval: float, backlog: int) -> None:
    """Serve on 127.0.0.1:``port`` until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)

    async def handler(connection: ServerConnection) -> None:
        await _tick(connection, name, interval)

    # websockets' defaults otherwise (keepalive pings every 20 s); clients that offer no
    # permessage-deflate, as the load generator, get none.
    async with serve(handler, "127.0.0.1", port, backlog=backlog):
        print(f"{name} listening on 127.0.0.1:{port}", flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="python-websockets")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between frames")
    parser.add_argument("--backlog", type=int, default=4096, help="TCP listen backlog")
    args = parser.parse_args()
    asyncio.run(
        serve_forever(port=args.port, name=args.name, interval=args.interval, backlog=args.backlog)
    )


if __name__ == "__main__":
    main()
