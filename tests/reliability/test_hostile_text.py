"""HTML-like user text through the notifier never becomes a Telegram 400 "can't parse
entities": plain text goes verbatim, escaped HTML renders as the raw text, and long
escaped HTML is split without cutting an entity or a tag in half."""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any

import pytest

from notifier.v1 import notifier_pb2 as pb
from tests.reliability.notifier_support import Notifier, running_notifier

HOSTILE = [
    "<b>",
    "</code>",
    "a & b &amp; c &#x41; &unknown;",
    "<script>alert('x')</script>",
    '<a href="javascript:alert(1)">click</a>',
    "<b>bold <i>crossed</b> tags</i>",
    '<pre><code class="language-<x>">',
    "1 < 2 > 0 <<>> </>",
    "<tg-spoiler>",
    "\u202e<b>\u202c & \x0b x",
]


@pytest.fixture(scope="module")
def notifier(redis_url: str) -> Iterator[Notifier]:
    with running_notifier(redis_url) as run:
        yield run


def _refused(n: Notifier, chat_id: int) -> list[Any]:
    async def calls() -> list[Any]:
        return [
            (c.method, c.description)
            for c in n.emulator.calls()
            if c.error_code is not None and str(c.params.get("chat_id")) == str(chat_id)
        ]

    return n.loop.run(calls())


def _texts(n: Notifier, chat_id: int) -> list[str]:
    async def texts() -> list[str]:
        return [m.text or m.caption or "" for m in n.emulator.messages(chat_id)]

    return n.loop.run(texts())


@pytest.mark.parametrize("index", range(len(HOSTILE)))
def test_plain_and_escaped_text_reach_the_user_verbatim(notifier: Notifier, index: int) -> None:
    text = HOSTILE[index]
    chat_id = 930_000 + index
    stub = notifier.stub

    async def scenario() -> None:
        sent = await stub.Send(
            pb.SendRequest(idempotency_key=f"plain-{index}", chat_id=chat_id, text=text),
            timeout=10,
        )
        await stub.Send(
            pb.SendRequest(
                idempotency_key=f"html-{index}",
                chat_id=chat_id,
                text=f"<b>Transcript</b>\n{html.escape(text)}",
                parse_mode=pb.PARSE_MODE_HTML,
            ),
            timeout=10,
        )
        await stub.Edit(
            pb.EditRequest(
                idempotency_key=f"edit-{index}",
                chat_id=chat_id,
                message_id=sent.message_id,
                text=text + " (edited)",
            ),
            timeout=10,
        )
        await stub.SendDocument(
            pb.SendDocumentRequest(
                idempotency_key=f"doc-{index}",
                chat_id=chat_id,
                filename="transcript.txt",
                content=text.encode(),
                caption=text,
            ),
            timeout=10,
        )

    notifier.loop.run(scenario())
    assert _refused(notifier, chat_id) == []
    assert _texts(notifier, chat_id) == [
        text + " (edited)",
        f"Transcript\n{text}",
        text,
    ]


def test_long_escaped_html_is_split_on_safe_bounds(notifier: Notifier) -> None:
    """Past 4096 characters the split must not cut '&lt;' or a tag in two."""
    chat_id = 931_000
    body = " ".join(["<script>&amp;</code>"] * 900)  # ~19 000 characters once escaped
    text = f"<i>{html.escape(body)}</i>"

    async def scenario() -> Any:
        return await notifier.stub.Send(
            pb.SendRequest(
                idempotency_key="long-html",
                chat_id=chat_id,
                text=text,
                parse_mode=pb.PARSE_MODE_HTML,
            ),
            timeout=30,
        )

    reply = notifier.loop.run(scenario())
    assert len(reply.message_ids) > 1
    assert _refused(notifier, chat_id) == []
    visible = _texts(notifier, chat_id)
    assert all(len(part) <= 4096 for part in visible)
    # Nothing lost or mangled: an entity cut in two would show as "&am" + "p;".
    assert "".join("".join(visible).split()) == "".join(body.split())
