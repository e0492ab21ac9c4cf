"""Notifier throughput and queue delay against Telegram's 30 msg/s limit.

One command: ``.venv/bin/python bench/notifier/run.py``. Starts a Bot API
emulator (limits enforced) in this process, Redis (REDIS_URL, or an embedded
one) and the notifier as its own process (``python -m notifier``), then:

1. saturation: 900 messages to 300 private chats from 16 callers at once;
   sustained delivery rate / 30 (goal >= 0.95, zero 429s);
2. 80 % load: an open-loop 24 msg/s for 30 s to 300 chats; p50/p99 of the
   Send latency (accepted -> delivered -> answered), i.e. the queue delay.

The baseline is the limit itself (30 msg/s), enforced by the same emulator
in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import grpc

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from notifier.v1 import notifier_pb2 as pb  # noqa: E402
from notifier.v1 import notifier_pb2_grpc  # noqa: E402
from voxmesh_dev.embedded import EmbeddedRedis, free_port  # noqa: E402
from voxmesh_dev.telegram import BotApiEmulator  # noqa: E402

TOKEN = "123456:BENCH-TOKEN"
LIMIT = 30.0


async def saturation(
    stub: notifier_pb2_grpc.NotifierServiceStub,
    emu: BotApiEmulator,
    total: int,
    chats: int,
    callers: int,
) -> dict[str, float]:
    before = len(emu.calls("sendMessage"))
    queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait((100_000 + i % chats, i))

    async def caller() -> None:
        pending: list[Any] = []
        while not queue.empty():
            chat, i = queue.get_nowait()
            pending.append(
                stub.Send(
                    pb.SendRequest(idempotency_key=f"sat-{i}", chat_id=chat, text=f"m{i}"),
                    timeout=600,
                )
            )
            await asyncio.sleep(0)
        await asyncio.gather(*pending)

    t0 = time.monotonic()
    await asyncio.gather(*(caller() for _ in range(callers)))
    wall = time.monotonic() - t0
    ok = [c for c in emu.calls("sendMessage")[before:] if c.error_code is None]
    # Steady state: drop the first and last second (ramp-up, tail).
    times = sorted(c.time for c in ok)
    inner = [t for t in times if times[0] + 1 <= t <= times[-1] - 1]
    rate = (len(inner) - 1) / (inner[-1] - inner[0])
    return {"messages": len(ok), "wall_s": wall, "rate": rate}


async def steady(
    stub: notifier_pb2_grpc.NotifierServiceStub, offered: float, seconds: float, chats: int
) -> dict[str, float]:
    lat: list[float] = []
    loop = asyncio.get_running_loop()

    async def one(i: int) -> None:
        t = loop.time()
        await stub.Send(  # type: ignore[misc]
            pb.SendRequest(idempotency_key=f"st-{i}", chat_id=200_000 + i % chats, text=f"s{i}"),
            timeout=120,
        )
        lat.append(loop.time() - t)

    tasks = []
    start = loop.time()
    n = int(offered * seconds)
    for i in range(n):
        await asyncio.sleep(max(0.0, start + i / offered - loop.time()))
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    lat.sort()
    return {
        "messages": n,
        "p50_ms": statistics.median(lat) * 1000,
        "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000,
        "max_ms": lat[-1] * 1000,
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=900)
    ap.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="notifier-bench-")
    redis_server = None
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        redis_server = EmbeddedRedis(pathlib.Path(tmp.name) / "redis")
        redis_url = redis_server.start()
    emu = BotApiEmulator(token=TOKEN, enforce_limits=True)
    await emu.start()
    port = free_port()
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE": emu.base_url,
        "REDIS_URL": redis_url,
        "NOTIFIER_REDIS_PREFIX": f"bench{secrets.token_hex(3)}:",
        "NOTIFIER_LISTEN_ADDR": f"127.0.0.1:{port}",
        "VOXMESH_LOG_FORMAT": "text",
        "VOXMESH_LOG_LEVEL": "warning",
        "VOXMESH_TRACES_EXPORTER": "none",
    }
    # Popen only starts the process; nothing here blocks the loop.
    proc = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-m", "notifier"], env=env, cwd=REPO
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            await asyncio.wait_for(ch.channel_ready(), 30)
            stub = notifier_pb2_grpc.NotifierServiceStub(ch)
            sat = await saturation(stub, emu, args.messages, 300, 16)
            st = await steady(stub, 0.8 * LIMIT, args.seconds, 300)
        r429 = len([c for c in emu.calls() if c.error_code == 429])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        await emu.stop()
        if redis_server is not None:
            redis_server.stop()
        tmp.cleanup()

    ratio = sat["rate"] / LIMIT
    rows = [
        ("baseline: Telegram limit", f"{LIMIT:.1f} msg/s", "1.000", ""),
        (
            f"saturation ({sat['messages']:.0f} msgs, 300 chats, 16 callers)",
            f"{sat['rate']:.2f} msg/s",
            f"{ratio:.3f}",
            "goal >= 0.95",
        ),
        (
            f"80% load ({st['messages']:.0f} msgs at {0.8 * LIMIT:.0f}/s)",
            f"p50 {st['p50_ms']:.0f} ms",
            "",
            f"p99 {st['p99_ms']:.0f} ms, max {st['max_ms']:.0f} ms",
        ),
        ("429 answers from the emulator", str(r429), "", "goal 0"),
    ]
    w = max(len(r[0]) for r in rows)
    print(f"\n{'case':<{w}}  {'value':>16}  {'ratio':>6}  note")
    for name, value, rat, note in rows:
        print(f"{name:<{w}}  {value:>16}  {rat:>6}  {note}")
    ok = ratio >= 0.95 and r429 == 0
    print(f"\nresult: {'PASS' if ok else 'BELOW GOAL'}")


if __name__ == "__main__":
    asyncio.run(main())
