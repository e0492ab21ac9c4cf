"""Load: many chats, 16 concurrent callers, Telegram's limits, exactly once, in order.

CI runs 600 messages (about 20 s, bound by the 30 msg/s limit itself);
NOTIFIER_LOAD_FULL=1 runs the full 3,000 messages to 300 chats (about 100 s).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import defaultdict
from typing import Any

import pytest
import redis.asyncio as aioredis

from notifier.v1 import notifier_pb2 as pb
from voxmesh_dev.telegram import BotApiEmulator

CALLERS = 16
CHATS = 300
GROUPS = 30  # every tenth chat is a group (20 msg/min)


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_load_within_limits_exactly_once_in_order(
    notifier: Any, emulator: BotApiEmulator, settings: Any
) -> None:
    total = 3000 if os.environ.get("NOTIFIER_LOAD_FULL") == "1" else 600
    rounds = total // CHATS
    chats = [(-1_000_000 - i) if i < GROUPS else 10_000 + i for i in range(CHATS)]
    results: dict[tuple[int, int], int] = {}
    r = aioredis.Redis.from_url(settings.redis_url)

    async def caller(mine: list[int], rnd: int) -> None:
        async def one(chat: int) -> None:
            kind = pb.CHAT_KIND_GROUP if chat < 0 else pb.CHAT_KIND_PRIVATE
            res = await notifier.stub.Send(
                pb.SendRequest(
                    idempotency_key=f"load-{chat}-{rnd}",
                    chat_id=chat,
                    text=f"{chat}:{rnd}",
                    chat_kind=kind,
                ),
                timeout=300,
            )
            results[(chat, rnd)] = res.message_id

        await asyncio.gather(*(one(c) for c in mine))

    t0 = time.monotonic()
    tasks: list[asyncio.Task[Any]] = []
    try:
        for rnd in range(rounds):
            tasks += [asyncio.create_task(caller(chats[i::CALLERS], rnd)) for i in range(CALLERS)]
            # Round r+1 starts once every message of round r is accepted (its
            # idempotency record exists), so per-chat order is well defined.
            keys = [f"{settings.key_prefix}idem:send:load-{c}-{rnd}" for c in chats]
            while await r.exists(*keys) < len(keys):  # noqa: ASYNC110 - polls Redis
                await asyncio.sleep(0.05)
        await asyncio.gather(*tasks)
    finally:
        await r.aclose()
    elapsed = time.monotonic() - t0

    sends = emulator.calls("sendMessage")
    ok = [c for c in sends if c.error_code is None]
    assert [c for c in emulator.calls() if c.error_code == 429] == []
    assert len(ok) == total
    for chat in chats:
        msgs = emulator.messages(chat)
        assert [m.text for m in msgs] == [f"{chat}:{i}" for i in range(rounds)]
        assert [m.message_id for m in msgs] == [results[(chat, i)] for i in range(rounds)]
    span = ok[-1].time - ok[0].time
    rate = (len(ok) - 1) / span
    per_sec: dict[int, int] = defaultdict(int)
    for c in ok:
        per_sec[int(c.time - ok[0].time)] += 1
    print(
        f"\nnotifier load: {total} messages to {CHATS} chats ({GROUPS} groups) from "
        f"{CALLERS} callers in {elapsed:.1f}s; delivery rate {rate:.2f} msg/s = "
        f"{rate / 30:.3f} of the 30 msg/s limit; busiest second {max(per_sec.values())}; "
        f"429s: 0"
    )
    # The goal is 0.95 (bench/notifier/run.py measures it); on a shared
    # 2-core CI machine the event loop stalls now and then, so the test only
    # guards against a gross regression.
    assert rate / 30 >= 0.75
