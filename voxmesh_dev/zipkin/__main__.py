"""``python -m voxmesh_dev.zipkin``: the collector on its own, until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from voxmesh_dev.zipkin.collector import ZipkinCollector


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m voxmesh_dev.zipkin", description="Zipkin v2 collector"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9411)
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    collector = ZipkinCollector()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sys.stdout.write(await collector.start(args.host, args.port) + "\n")
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await collector.stop()


def main(argv: list[str] | None = None) -> None:
    """Run the collector standalone: print the base URL, serve until SIGTERM or SIGINT."""
    logging.basicConfig(level=logging.INFO)
    asyncio.run(_serve(_parse_args(argv)))


if __name__ == "__main__":
    main()
