"""Send, Edit, SendDocument, Delete, AnswerCallback end to end.

gRPC over a real socket -> notifier -> real Redis -> Bot API emulator over real HTTP.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis

from notifier.v1 import notifier_pb2 as pb
from notifier.v1 import notifier_pb2_grpc
from voxmesh.channels import dial
from voxmesh.errors import error_details
from voxmesh_dev.telegram import BotApiEmulator

TOKEN_SECRET = "TEST-TOKEN"


async def test_send_then_edit(notifier: Any, emulator: BotApiEmulator) -> None:
    sent = await notifier.stub.Send(
        pb.SendRequest(idempotency_key="k1", chat_id=42, text="transcribing…"), timeout=10
    )
    assert sent.message_id > 0
    assert list(sent.message_ids) == [sent.message_id]
    edited = await notifier.stub.Edit(
        pb.EditRequest(
            idempotency_key="e1", chat_id=42, message_id=sent.message_id, text="hello world"
        ),
        timeout=10,
    )
    assert edited.message_id == sent.message_id
    assert not edited.coalesced
    msgs = emulator.messages(42)
    assert len(msgs) == 1
    assert msgs[0].text == "hello world"
    assert msgs[0].edits == ["hello world"]


async def test_edit_not_modified_is_success(notifier: Any, emulator: BotApiEmulator) -> None:
    sent = await notifier.stub.Send(
        pb.SendRequest(idempotency_key="s", chat_id=7, text="same"), timeout=10
    )
    res = await notifier.stub.Edit(
        pb.EditRequest(idempotency_key="e", chat_id=7, message_id=sent.message_id, text="same"),
        timeout=10,
    )
    assert res.message_id == sent.message_id
    not_modified = [c for c in emulator.calls("editMessageText") if c.error_code == 400]
    assert len(not_modified) == 1
    assert "not modified" in (not_modified[0].description or "")


async def test_concurrent_sends_with_one_key_make_one_message(
    start_notifier: Any, emulator: BotApiEmulator
) -> None:
    # Two replicas share the Redis prefix: the key is unique across both.
    a = await start_notifier()
    b = await start_notifier()
    req = pb.SendRequest(idempotency_key="once", chat_id=1001, text="only once")
    results = await asyncio.gather(
        *((a if i % 2 else b).stub.Send(req, timeout=15) for i in range(10))
    )
    assert {r.message_id for r in results} == {results[0].message_id}
    assert [m.text for m in emulator.messages(1001)] == ["only once"]
    # A restarted notifier (new process state, same Redis) still knows the key.
    c = await start_notifier()
    again = await c.stub.Send(req, timeout=10)
    assert again.message_id == results[0].message_id
    assert len(emulator.calls("sendMessage")) == 1


async def test_same_key_different_request_is_already_exists(notifier: Any) -> None:
    await notifier.stub.Send(pb.SendRequest(idempotency_key="k", chat_id=5, text="a"), timeout=10)
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await notifier.stub.Send(
            pb.SendRequest(idempotency_key="k", chat_id=5, text="b"), timeout=10
        )
    details = error_details(exc.value)
    assert details.code == grpc.StatusCode.ALREADY_EXISTS
    assert details.reason == "IDEMPOTENCY_KEY_REUSED"


async def test_edits_that_pile_up_are_coalesced(notifier: Any, emulator: BotApiEmulator) -> None:
    sent = await notifier.stub.Send(
        pb.SendRequest(idempotency_key="p", chat_id=77, text="placeholder"), timeout=10
    )
    # The chat just had a message, so it may not send for about a second:
    # these edits pile up in its queue meanwhile.
    calls = []
    for i in range(5):
        calls.append(
            asyncio.ensure_future(
                notifier.stub.Edit(
                    pb.EditRequest(
                        idempotency_key=f"e{i}",
                        chat_id=77,
                        message_id=sent.message_id,
                        text=f"partial {i}",
                    ),
                    timeout=10,
                )
            )
        )
        await asyncio.sleep(0.05)
    results = await asyncio.gather(*calls)
    assert [r.coalesced for r in results] == [True, True, True, True, False]
    assert all(r.message_id == sent.message_id for r in results)
    assert emulator.messages(77)[0].edits == ["partial 4"]
    assert len(emulator.calls("editMessageText")) == 1


async def test_bad_request_maps_to_failed_precondition(notifier: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await notifier.stub.Send(
            pb.SendRequest(
                idempotency_key="bad", chat_id=9, text="<b>unclosed", parse_mode=pb.PARSE_MODE_HTML
            ),
            timeout=10,
        )
    d = error_details(exc.value)
    assert d.code == grpc.StatusCode.FAILED_PRECONDITION
    assert d.reason == "TELEGRAM_BAD_REQUEST"
    assert d.domain == "notifier.voxmesh"
    assert "parse" in (d.metadata or {}).get("description", "").lower()
    assert TOKEN_SECRET not in str(exc.value)


async def test_forbidden_marks_chat_blocked(notifier: Any, emulator: BotApiEmulator) -> None:
    emulator.block_chat(555)
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await notifier.stub.Send(
            pb.SendRequest(idempotency_key="f1", chat_id=555, text="hi"), timeout=10
        )
    d = error_details(exc.value)
    assert (d.code, d.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "TELEGRAM_FORBIDDEN")
    calls = len(emulator.calls("sendMessage"))
    assert calls == 1  # 403 is not retried
    # The next message to a blocked chat fails without asking Telegram again.
    with pytest.raises(grpc.aio.AioRpcError) as exc2:
        await notifier.stub.Send(
            pb.SendRequest(idempotency_key="f2", chat_id=555, text="hi"), timeout=10
        )
    assert error_details(exc2.value).reason == "TELEGRAM_FORBIDDEN"
    assert len(emulator.calls("sendMessage")) == calls


async def test_invalid_request(notifier: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await notifier.stub.Send(pb.SendRequest(idempotency_key="", chat_id=1, text="x"), timeout=5)
    d = error_details(exc.value)
    assert (d.code, d.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST")
    assert (d.metadata or {}).get("field") == "idempotency_key"


async def test_deadline_while_telegram_throttles_then_retry_same_key(
    notifier: Any, emulator: BotApiEmulator
) -> None:
    emulator.faults.rate_429 = 1.0
    emulator.faults.retry_after = 1
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await notifier.stub.Send(
            pb.SendRequest(idempotency_key="slow", chat_id=31, text="x"), timeout=1.5
        )
    # The answer leaves a quarter of the deadline spare, so a stalled loop
    # still gets it back before the caller's deadline does.
    assert time.monotonic() - started < 1.5 - 0.3
    d = error_details(exc.value)
    assert (d.code, d.reason) == (grpc.StatusCode.UNAVAILABLE, "TELEGRAM_UNAVAILABLE")
    assert d.retry_after is not None and d.retry_after >= 1.0
    emulator.faults.rate_429 = 0.0
    res = await notifier.stub.Send(
        pb.SendRequest(idempotency_key="slow", chat_id=31, text="x"), timeout=10
    )
    assert [m.message_id for m in emulator.messages(31)] == [res.message_id]


async def test_a_meshs_own_channel_gets_queued_not_a_deadline(
    notifier: Any, emulator: BotApiEmulator
) -> None:
    # The mesh's channels retry UNAVAILABLE on their own. "Queued" is not a
    # failure a retry could cure within the call: retried, it spent the rest of
    # the caller's deadline and reached it as DEADLINE_EXCEEDED, so the gateway
    # could not tell a queued reply from a lost one.
    emulator.faults.rate_429 = 1.0
    emulator.faults.retry_after = 1
    channel = dial(notifier.server.address)
    try:
        stub = notifier_pb2_grpc.NotifierServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await stub.Send(pb.SendRequest(idempotency_key="q", chat_id=33, text="x"), timeout=2)
    finally:
        await channel.close()
    d = error_details(exc.value)
    assert (d.code, (d.metadata or {}).get("queued")) == (grpc.StatusCode.UNAVAILABLE, "true")
    emulator.faults.rate_429 = 0.0
    await emulator.wait_for(lambda: bool(emulator.messages(33)), timeout=10)
    assert [m.text for m in emulator.messages(33)] == ["x"]


async def test_telegrams_flood_waits_do_not_use_up_the_attempts(
    start_notifier: Any, emulator: BotApiEmulator
) -> None:
    # A 429 says when to come back; it is not a failed attempt. A minute of them
    # (a flood wait, a storm) used up the eight attempts and buried the message.
    n = await start_notifier(max_attempts=2)
    emulator.faults.rate_429 = 1.0
    emulator.faults.retry_after = 1

    async def send() -> pb.SendResponse:
        request = pb.SendRequest(idempotency_key="flood", chat_id=34, text="x")
        return await n.stub.Send(request, timeout=30)

    sending = asyncio.create_task(send())
    await emulator.wait_for(lambda: len(emulator.calls("sendMessage")) >= 4, timeout=10)
    emulator.faults.rate_429 = 0.0
    res = await sending
    assert [m.message_id for m in emulator.messages(34)] == [res.message_id]


async def test_failing_message_goes_to_dead_letter(
    start_notifier: Any, emulator: BotApiEmulator, settings: Any
) -> None:
    n = await start_notifier(max_attempts=3)
    emulator.faults.rate_500 = 1.0
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await n.stub.Send(pb.SendRequest(idempotency_key="dead", chat_id=32, text="x"), timeout=10)
    d = error_details(exc.value)
    assert (d.code, d.reason) == (grpc.StatusCode.UNAVAILABLE, "TELEGRAM_UNAVAILABLE")
    assert len(emulator.calls("sendMessage")) == 3
    client = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        dead = await client.xrange(settings.key_prefix + "dead")
    finally:
        await client.aclose()
    assert len(dead) == 1
    assert dead[0][1]["chat"] == "32"
    assert "500" in dead[0][1]["reason"] or "Server" in dead[0][1]["reason"]
    assert TOKEN_SECRET not in dead[0][1]["reason"]
    # A retry with the same key is a fresh attempt once Telegram is back.
    emulator.faults.rate_500 = 0.0
    res = await n.stub.Send(
        pb.SendRequest(idempotency_key="dead", chat_id=32, text="x"), timeout=10
    )
    assert [m.message_id for m in emulator.messages(32)] == [res.message_id]


async def test_redis_unavailable_fails_fast(start_notifier: Any) -> None:
    n = await start_notifier(redis_url="redis://127.0.0.1:1/0", redis_timeout_seconds=0.5)
    t0 = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await n.stub.Send(pb.SendRequest(idempotency_key="r", chat_id=1, text="x"), timeout=10)
    d = error_details(exc.value)
    assert (d.code, d.reason) == (grpc.StatusCode.UNAVAILABLE, "DEPENDENCY_UNAVAILABLE")
    assert time.monotonic() - t0 < 3.0


async def test_document_delete_and_callback(notifier: Any, emulator: BotApiEmulator) -> None:
    doc = await notifier.stub.SendDocument(
        pb.SendDocumentRequest(
            idempotency_key="d",
            chat_id=-100123,
            filename="transcript.txt",
            content=b"hello\n" * 1000,
            caption="Transcript",
        ),
        timeout=10,
    )
    [msg] = emulator.messages(-100123)
    assert msg.message_id == doc.message_id
    assert msg.document is not None
    assert msg.document.file_name == "transcript.txt"
    assert msg.document.content == b"hello\n" * 1000
    assert msg.caption == "Transcript"
    gone = await notifier.stub.Delete(
        pb.DeleteRequest(idempotency_key="x", chat_id=-100123, message_id=doc.message_id),
        timeout=10,
    )
    assert gone.deleted
    assert emulator.messages(-100123)[0].deleted
    again = await notifier.stub.Delete(
        pb.DeleteRequest(idempotency_key="y", chat_id=-100123, message_id=doc.message_id),
        timeout=10,
    )
    assert not again.deleted
    update = emulator.make_callback_update(chat_id=5, user_id=5, data="retry", message_id=1)
    emulator.push_update(update)
    cq_id = update["callback_query"]["id"]
    await notifier.stub.AnswerCallback(
        pb.AnswerCallbackRequest(idempotency_key="cb", callback_query_id=cq_id, text="ok"),
        timeout=10,
    )
    await notifier.stub.AnswerCallback(
        pb.AnswerCallbackRequest(idempotency_key="cb", callback_query_id=cq_id, text="ok"),
        timeout=10,
    )
    assert emulator.callback_answers[cq_id]["text"] == "ok"
    assert len(emulator.calls("answerCallbackQuery")) == 1
