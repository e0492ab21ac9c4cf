"""Shared by the gateway's end-to-end tests: a mesh per module, clips, waits, billing."""

from __future__ import annotations

import asyncio
import io
import pathlib
import wave
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

import av
import numpy as np

from billing.v1 import billing_pb2, billing_pb2_grpc
from voxmesh.audiofiles import encode
from voxmesh.channels import dial
from voxmesh_dev.mesh import Mesh, MeshOptions
from voxmesh_dev.telegram import RecordedMessage

ADMIN_ID = 990001


async def start_mesh(
    *,
    state: pathlib.Path,
    postgres_dsn: str,
    redis_url: str,
    env: Mapping[str, str],
    mesh_class: type[Mesh] = Mesh,
) -> Mesh:
    prefix = f"gw{state.name[-6:]}:"
    mesh = mesh_class(
        MeshOptions(
            state_dir=state,
            database_url=postgres_dsn,
            redis_url=redis_url,
            env={
                "NOTIFIER_REDIS_PREFIX": f"{prefix}n:",
                "NOTIFIER_KEY_PREFIX": f"{prefix}n:",
                "GATEWAY_KEY_PREFIX": f"{prefix}g:",
                "GATEWAY_EDIT_INTERVAL_SECONDS": "0.5",
                # Telegram allows 1 message/s in a private chat; five keeps the
                # limits enforced end to end and the suite short.
                "NOTIFIER_PRIVATE_PER_SECOND": "5",
                "BILLING_ADMIN_USER_IDS": str(ADMIN_ID),
                "VOXMESH_LOG_LEVEL": "info",
                "VOXMESH_LOG_FORMAT": "text",
                **env,
            },
        )
    )
    try:
        await mesh.start()
    except BaseException:
        for name in ("billing", "transcriber", "notifier", "gateway"):
            print(f"--- {name} log ---\n{mesh.log_text(name)[-3000:]}")
        await mesh.stop()
        raise
    mesh.emulator.limits.private_chat = 5
    return mesh


@asynccontextmanager
async def billing_stub(mesh: Mesh) -> AsyncIterator[billing_pb2_grpc.BillingServiceAsyncStub]:
    async with dial(mesh.target("billing")) as channel:
        yield billing_pb2_grpc.BillingServiceStub(channel)  # type: ignore[misc]


async def balance(mesh: Mesh, user_id: int) -> billing_pb2.GetBalanceResponse:
    async with billing_stub(mesh) as billing:
        return await billing.GetBalance(billing_pb2.GetBalanceRequest(user_id=user_id), timeout=5)


async def settled(mesh: Mesh, user_id: int, timeout: float = 20) -> billing_pb2.GetBalanceResponse:
    """The user's balance once no hold is pending (a job captures after answering)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        money = await balance(mesh, user_id)
        if money.held_credits == 0:
            return money
        if loop.time() > end:
            raise AssertionError(f"user {user_id} still has {money.held_credits} credits held")
        await asyncio.sleep(0.1)


async def transactions(mesh: Mesh, user_id: int) -> list[billing_pb2.Transaction]:
    async with billing_stub(mesh) as billing:
        page = await billing.ListTransactions(
            billing_pb2.ListTransactionsRequest(user_id=user_id, page_size=100), timeout=5
        )
    return list(page.transactions)


async def ensure_user(mesh: Mesh, user_id: int, language_code: str = "en") -> None:
    async with billing_stub(mesh) as billing:
        await billing.EnsureUser(
            billing_pb2.EnsureUserRequest(user_id=user_id, language_code=language_code), timeout=5
        )


def reply_to(mesh: Mesh, chat_id: int, note_id: int) -> list[RecordedMessage]:
    """The bot's messages in chat_id that reply to note_id, oldest first."""
    return [m for m in mesh.emulator.messages(chat_id) if m.reply_to_message_id == note_id]


def is_final(message: RecordedMessage) -> bool:
    text = message.text or ""
    return not (text.endswith("…") or text.startswith("⏳"))


async def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def final_reply(
    mesh: Mesh, chat_id: int, note_id: int, timeout: float = 60
) -> RecordedMessage:
    """The job's status message, once it holds the final word."""

    def done() -> bool:
        msgs = reply_to(mesh, chat_id, note_id)
        return bool(msgs) and is_final(msgs[0])

    await wait_for(done, timeout, f"the answer to message {note_id} in chat {chat_id}")
    return reply_to(mesh, chat_id, note_id)[0]


async def texts_in(mesh: Mesh, chat_id: int, count: int, timeout: float = 20) -> list[str]:
    """Wait for at least ``count`` bot messages in the chat; their current texts."""
    await wait_for(
        lambda: len(mesh.emulator.messages(chat_id)) >= count, timeout, f"{count} messages"
    )
    return [m.text or "" for m in mesh.emulator.messages(chat_id)]


def pcm_of(path: pathlib.Path, rate: int = 16000) -> np.ndarray:
    """Mono s16 samples of an audio file."""
    chunks = []
    with av.open(str(path)) as src:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        for frame in src.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
    return np.concatenate(chunks)


def repeated_clip(path: pathlib.Path, times: int) -> bytes:
    """OGG/Opus of ``path`` played ``times`` over: a long note from a short clip."""
    samples = np.tile(pcm_of(path), times)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(samples.astype("<i2").tobytes())
    return encode(buf.getvalue())
