"""Hostile requests to the five notifier RPCs, against the Bot API emulator and Redis:
only documented statuses, always with ErrorInfo, a healthy server afterwards, and no
plain-text message that Telegram refused to parse."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.v1 import notifier_pb2 as pb
from tests.reliability.notifier_support import CHAT, Notifier, running_notifier
from tests.reliability.support import (
    FUZZ,
    QUIET_REPR,
    Code,
    Outcomes,
    enums,
    expect,
    int64s,
    log_tail,
    oversize_bytes,
    requests,
    strings,
)
from voxmesh.errors import error_details

pytestmark = [
    # aiohttp warns (an error under pytest) when a form body passes 1 MB; production ignores it.
    pytest.mark.filterwarnings("ignore:Sending a large body directly:ResourceWarning"),
    QUIET_REPR,
]

BAD = Code.INVALID_ARGUMENT
# notifier.proto: idempotency reuse, Telegram's refusals (FAILED_PRECONDITION with
# TELEGRAM_BAD_REQUEST / _FORBIDDEN) and "queued, retry" (UNAVAILABLE).
ALLOWED = frozenset({BAD, Code.ALREADY_EXISTS, Code.FAILED_PRECONDITION, Code.UNAVAILABLE})


@pytest.fixture(scope="module")
def notifier(redis_url: str) -> Iterator[Notifier]:
    with running_notifier(redis_url) as run:
        yield run


# ------------------------------------------------------------------ strategies

uuid_keys = st.uuids().map(lambda u: f"fuzz-{u}")
keys = st.one_of(strings(128), uuid_keys)
# New chats each time so per-chat queues never back up behind one another.
fresh_chats = st.one_of(st.integers(1, 2**40), st.integers(-(2**40), -1))
chats = st.one_of(fresh_chats, int64s)
plain_text = st.text(st.characters(exclude_categories=["Cs", "Cc"]), min_size=1, max_size=300)
parse_modes = enums(pb.ParseMode.values())
chat_kinds = enums(pb.ChatKind.values())
good_buttons = st.lists(
    st.builds(
        lambda n: pb.ButtonRow(
            buttons=[pb.Button(text=f"b{i}", callback_data=f"d{i}") for i in range(n)]
        ),
        st.integers(1, 3),
    ),
    max_size=2,
)
hostile_buttons = st.lists(
    st.builds(
        lambda bs: pb.ButtonRow(buttons=bs),
        st.lists(st.builds(pb.Button, text=strings(64), callback_data=strings(64)), max_size=3),
    ),
    max_size=3,
)


def _fuzz(
    n: Notifier, method: str, strategy: st.SearchStrategy[Any], *, examples: int = 80
) -> Outcomes:
    outcomes = Outcomes()
    seen = len(n.errors.records)

    @settings(FUZZ, max_examples=examples)
    @given(request=strategy)
    def one(request: Any) -> None:
        rpc: Callable[..., Any] = getattr(n.stub, method)
        n.loop.run(expect(lambda: rpc(request, timeout=15), ALLOWED, outcomes, request), timeout=30)

    one()
    print(f"{method}: {outcomes}")
    assert not n.errors.records[seen:], log_tail(n.errors.records[seen:])
    assert outcomes.codes[BAD.name] > 0, f"never hit validation: {outcomes}"
    assert outcomes.codes["OK"] > 0, f"never succeeded: {outcomes}"
    return outcomes


def _no_plain_text_refused(n: Notifier) -> None:
    """A message without parse_mode can never be a Telegram 'can't parse entities'."""

    def refused() -> list[Any]:
        return [
            c
            for c in n.emulator.calls()
            if c.error_code == 400
            and "parse" in (c.description or "").lower()
            and not c.params.get("parse_mode")
        ]

    assert n.loop.run(_call(refused)) == []


async def _call(fn: Callable[[], Any]) -> Any:
    # The emulator's state belongs to its loop's thread.
    return fn()


# ------------------------------------------------------------------ tests


def test_send(notifier: Notifier) -> None:
    _fuzz(
        notifier,
        "Send",
        requests(
            pb.SendRequest,
            {
                "idempotency_key": uuid_keys,
                "chat_id": fresh_chats,
                "text": st.one_of(plain_text, strings(300).filter(bool)),
                "parse_mode": st.just(pb.PARSE_MODE_UNSPECIFIED),
                "reply_to_message_id": st.one_of(st.just(0), st.integers(1, 10)),
                "buttons": good_buttons,
                "chat_kind": st.sampled_from(list(pb.ChatKind.values())),
            },
            {
                "idempotency_key": keys,
                "chat_id": chats,
                "text": strings(65536),
                "parse_mode": parse_modes,
                "reply_to_message_id": int64s,
                "buttons": hostile_buttons,
                "chat_kind": chat_kinds,
            },
        ),
        examples=120,
    )
    _no_plain_text_refused(notifier)


def test_edit(notifier: Notifier) -> None:
    _fuzz(
        notifier,
        "Edit",
        requests(
            pb.EditRequest,
            {
                "idempotency_key": uuid_keys,
                "chat_id": st.just(CHAT),
                "message_id": st.sampled_from(notifier.message_ids),
                "text": st.one_of(plain_text, strings(300).filter(bool)),
                "parse_mode": st.just(pb.PARSE_MODE_UNSPECIFIED),
                "buttons": good_buttons,
                "chat_kind": st.sampled_from(list(pb.ChatKind.values())),
            },
            {
                "idempotency_key": keys,
                "chat_id": chats,
                "message_id": int64s,
                "text": strings(4096),
                "parse_mode": parse_modes,
                "buttons": hostile_buttons,
                "chat_kind": chat_kinds,
            },
        ),
        examples=120,
    )
    _no_plain_text_refused(notifier)


def test_send_document(notifier: Notifier) -> None:
    _fuzz(
        notifier,
        "SendDocument",
        requests(
            pb.SendDocumentRequest,
            {
                "idempotency_key": uuid_keys,
                "chat_id": fresh_chats,
                "filename": st.sampled_from(["transcript.txt", "a.srt", "нет.txt", "x"]),
                "content": st.binary(min_size=1, max_size=2000),
                "caption": st.one_of(st.just(""), plain_text),
                "reply_to_message_id": st.just(0),
                "chat_kind": st.sampled_from(list(pb.ChatKind.values())),
            },
            {
                "idempotency_key": keys,
                "chat_id": chats,
                "filename": strings(255),
                "content": oversize_bytes(),
                "caption": strings(1024),
                "reply_to_message_id": int64s,
                "chat_kind": chat_kinds,
            },
        ),
        examples=80,
    )
    _no_plain_text_refused(notifier)


def test_delete(notifier: Notifier) -> None:
    _fuzz(
        notifier,
        "Delete",
        requests(
            pb.DeleteRequest,
            {
                "idempotency_key": uuid_keys,
                "chat_id": st.just(CHAT),
                "message_id": st.integers(1, 50),
            },
            {"idempotency_key": keys, "chat_id": chats, "message_id": int64s},
        ),
        examples=60,
    )


def test_answer_callback(notifier: Notifier) -> None:
    _fuzz(
        notifier,
        "AnswerCallback",
        requests(
            pb.AnswerCallbackRequest,
            {
                "idempotency_key": uuid_keys,
                "callback_query_id": st.sampled_from(notifier.callback_ids),
                "text": st.one_of(st.just(""), st.text(max_size=200)),
                "show_alert": st.booleans(),
            },
            {
                "idempotency_key": keys,
                "callback_query_id": strings(64),
                "text": strings(200),
                "show_alert": st.booleans(),
            },
        ),
        examples=80,
    )


def test_filename_with_control_characters(redis_url: str) -> None:
    """A newline in a filename is INVALID_ARGUMENT, and the chat keeps working."""
    chat = 920001
    with running_notifier(redis_url) as n:

        async def scenario() -> tuple[grpc.StatusCode, str, str]:
            try:
                await n.stub.SendDocument(
                    pb.SendDocumentRequest(
                        idempotency_key="doc-newline",
                        chat_id=chat,
                        filename="transcript\r\nX-Injected: 1.txt",
                        content=b"text",
                    ),
                    timeout=4,
                )
                code, field = Code.OK, ""
            except grpc.aio.AioRpcError as err:
                code, field = err.code(), (error_details(err).metadata or {}).get("field", "")
            # Whatever the answer was, the next message to that chat goes out.
            reply = await n.stub.Send(
                pb.SendRequest(idempotency_key="after-doc", chat_id=chat, text="next"), timeout=4
            )
            return code, field, n.emulator.messages(chat)[-1].text or "" if reply else ""

        code, field, last = n.loop.run(scenario())
        assert (code, field) == (Code.INVALID_ARGUMENT, "filename")
        assert last == "next"
        assert not n.errors.records, log_tail(n.errors.records)
