"""``voxmesh up``: the whole mesh on this machine, its demo voice note, its record.

``up`` is the CLI's one door to the development package ``voxmesh_dev`` (the Bot API
emulator, the Zipkin collector, the embedded servers, the local mesh), imported
lazily: a service image leaves that package out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pathlib
import subprocess
import sys
import time
from typing import IO, Any

from voxmesh.cli.targets import RECORD, Subparsers, read_record, write_record


def add_up(sub: Subparsers) -> None:
    p = sub.add_parser(
        "up",
        help="start the whole mesh (embedded PostgreSQL/Redis if unset), serve until Ctrl-C",
        description=(
            "Start the four services, plus an embedded PostgreSQL and Redis unless DATABASE_URL "
            "and REDIS_URL are set, and the local Bot API emulator unless TELEGRAM_BOT_TOKEN is "
            "set; send a demo voice note; serve until Ctrl-C. Where it listens is recorded in "
            "STATE_DIR/mesh.json for the other subcommands."
        ),
    )
    p.add_argument("--no-demo", action="store_true", help="do not send the demo voice note")
    p.add_argument("--demo-only", action="store_true", help="stop after the demo")
    p.set_defaults(func=cmd_up)


def demo_clip() -> tuple[bytes, str]:
    """The demo voice note shipped in the package (public domain) and what it says."""
    from importlib.resources import files

    folder = files("voxmesh") / "demo"
    return (folder / "jfk.ogg").read_bytes(), (folder / "jfk.txt").read_text().strip()


async def _demo(mesh: Any) -> None:
    """Send a real voice note through the emulator and show the chat as it changes."""
    if mesh.emulator is None:
        print("demo skipped: a real Telegram token is in use")
        return
    emu = mesh.emulator
    ogg, said = demo_clip()
    file_id = emu.add_file(ogg, mime_type="audio/ogg")
    chat = 424242
    # A message id no earlier run used: billing keeps every note's idempotency key
    # (reserve:<chat>:<message>) in .state/, and the emulator numbers each chat's
    # messages from 1 again on every start.
    message_id = time.time_ns() // 1_000_000
    emu.push_update(
        emu.make_message_update(
            chat_id=chat, user_id=chat, voice=(file_id, 11), username="demo", message_id=message_id
        )
    )
    print(f"demo: a voice note was sent to the bot in chat {chat} (JFK, 1961: “{said}”)")
    seen: list[str] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        msgs = emu.messages(chat)
        for m in msgs:
            for text in [m.first_text or "", *m.edits]:
                if text and text not in seen:
                    seen.append(text)
                    print(f"  bot: {text}")
        if msgs and msgs[-1].edits and not msgs[-1].edits[-1].endswith("…"):
            break
        await asyncio.sleep(0.3)
    else:
        print("demo: no final text after 180 s; see the logs in STATE_DIR/logs/")
    if mesh.collector is not None:
        await asyncio.sleep(1.5)
        for trace_id, spans in mesh.collector.traces().items():
            # The update's trace: the one an SRE would open from the user's reference.
            if not any(s["name"].startswith("telegram.update/") for s in spans):
                continue
            services = sorted({s["localEndpoint"]["serviceName"] for s in spans})
            print(f"trace {trace_id}: {len(spans)} spans from {', '.join(services)}")
            print(f"  (`voxmesh trace {trace_id}` shows it as a tree)")


def _lock_state(state: pathlib.Path) -> IO[str] | None:
    """Hold STATE_DIR/up.lock while running; None if another `voxmesh up` holds it.

    An flock dies with its process, so a killed run never leaves it held.
    """
    import fcntl

    state.mkdir(parents=True, exist_ok=True)
    f = (state / "up.lock").open("a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    return f


def _mesh_record(mesh: Any) -> dict[str, Any]:
    targets = {name: mesh.target(name) for name in ("billing", "transcriber", "notifier")}
    return {
        "targets": targets,
        "gateway": f"http://{mesh.target('gateway')}",
        "metrics": {n: mesh.metrics_url(n) for n in (*targets, "gateway")},
        "zipkin_endpoint": mesh.env["OTEL_EXPORTER_ZIPKIN_ENDPOINT"],
        "otlp_endpoint": mesh.env.get("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
        "collector": mesh.collector.base_url if mesh.collector is not None else None,
        "emulator": mesh.emulator.base_url if mesh.emulator is not None else None,
        # The children's pids, for an operator (and the tests) to check they died with it.
        "pids": {name: proc.pid for name, proc in mesh.procs.items()},
        "database_url": mesh.database_url,
        "redis_url": mesh.redis_url,
    }


async def _up(args: argparse.Namespace, state: pathlib.Path) -> int:
    import signal

    from voxmesh_dev.mesh import Mesh, MeshOptions

    options = MeshOptions.from_env(os.environ, state)
    if not options.bot_token:
        print("TELEGRAM_BOT_TOKEN is not set: running against the local Bot API emulator")
    mesh = Mesh(options)
    print(f"starting voxmesh (state in {state})…")
    # Ctrl-C or SIGTERM while starting still stops what has started.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        starting = asyncio.create_task(mesh.start())
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait({starting, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
            return 130
        waiter.cancel()
        starting.result()
        write_record(state, _mesh_record(mesh))
        print("voxmesh is up:")
        for name in ("billing", "transcriber", "notifier"):
            addr = mesh.target(name)
            print(f"  {name:12} grpc://{addr}   (grpcurl -plaintext {addr} list)")
        for name in ("billing", "transcriber", "notifier", "gateway"):
            print(f"  {name + ' metrics':20} {mesh.metrics_url(name)}")
        if mesh.emulator is not None:
            print(f"  Bot API emulator {mesh.emulator.base_url}")
        if mesh.collector is not None:
            print(f"  Zipkin v2 API    {mesh.collector.base_url}/api/v2/traces")
        print(f"  recorded in {state / RECORD} (`voxmesh transcribe FILE` finds it there)")
        if not args.no_demo:
            demo = asyncio.create_task(_demo(mesh))
            waiter = asyncio.create_task(stop.wait())
            await asyncio.wait({demo, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if not demo.done():
                demo.cancel()
            waiter.cancel()
        if args.demo_only or stop.is_set():
            return 0
        print("press Ctrl-C to stop")
        sys.stdout.flush()
        await stop.wait()
        return 0
    finally:
        print("stopping…")
        (state / RECORD).unlink(missing_ok=True)
        await mesh.stop()


def cmd_up(args: argparse.Namespace) -> int:
    # `up` is the CLI's one door to the development package (the emulator, the collector,
    # the embedded servers); a service image leaves that package out.
    try:
        from voxmesh_dev.embedded import StaleServerError
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != "voxmesh_dev":
            raise
        print(
            "voxmesh up: the development package voxmesh_dev is not installed (service images "
            "leave it out); install the voxmesh wheel with its embedded extra, or use scripts/run",
            file=sys.stderr,
        )
        return 1

    state = pathlib.Path(args.state_dir).resolve()
    lock = _lock_state(state)
    if lock is None:
        pid = (read_record(state) or {}).get("pid", "?")
        print(
            f"voxmesh up: another `voxmesh up` (pid {pid}) is using {state}; stop it first, "
            "or pass --state-dir",
            file=sys.stderr,
        )
        return 1
    try:
        return asyncio.run(_up(args, state))
    except StaleServerError as exc:
        print(f"voxmesh up: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:  # initdb or pg_ctl
        said = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
        tool = pathlib.Path(str(exc.cmd[0])).name
        print(f"voxmesh up: {tool} failed: {said[-1] if said else exc}", file=sys.stderr)
        return 1
    except (RuntimeError, TimeoutError) as exc:  # a service that would not become ready
        print(f"voxmesh up: {exc} (logs in {state / 'logs'})", file=sys.stderr)
        return 1
    finally:
        lock.close()
