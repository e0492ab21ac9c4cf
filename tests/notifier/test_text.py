"""Splitting and escaping hostile text, alone and through Telegram (the emulator parses HTML)."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest

from notifier.text import escape_html, split_text, utf16_len
from notifier.v1 import notifier_pb2 as pb
from voxmesh_dev.telegram import BotApiEmulator

_TAG_OR_ENTITY = re.compile(r"<[^<>]*>|&[#A-Za-z0-9]+;")


def _cuts_clean(parts: list[str]) -> None:
    for p in parts:
        assert p
        assert utf16_len(p) <= 4096
        # No part starts with a joiner/modifier or ends with a lone high surrogate.
        assert not ("\u200d" in p[:1] or "\ufe0f" in p[:1])
        assert not ("\U0001f3fb" <= p[0] <= "\U0001f3ff")
        assert not p.endswith("\u200d")


def test_plain_10000_characters_split_on_sentences() -> None:
    sentence = "The quick brown fox jumps over the lazy dog. "
    text = (sentence * 223)[:10_000]
    parts = split_text(text)
    assert len(parts) == 3
    assert "".join(parts) == text
    _cuts_clean(parts)
    assert all(p.endswith(". ") for p in parts[:-1])


@pytest.mark.parametrize("emoji", ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🇺🇦", "❤️", "é"])
def test_emoji_at_the_cut_stays_whole(emoji: str) -> None:
    # No spaces at all: the cut has to fall between graphemes.
    text = "x" * 4095 + emoji * 30 + "y" * 5000
    parts = split_text(text)
    assert "".join(parts) == text
    _cuts_clean(parts)
    for a, b in itertools.pairwise(parts):
        boundary = a[-8:] + b[:8]
        assert emoji in boundary or a.endswith("x") or b.startswith("y")
        assert (a + b).count(emoji) == a.count(emoji) + b.count(emoji)


def test_utf16_length_is_what_counts() -> None:
    text = "😀" * 3000  # 6000 UTF-16 units, 3000 code points
    parts = split_text(text)
    assert [utf16_len(p) for p in parts] == [4096, 1904]


def test_html_tags_and_entities_are_never_cut_and_stay_balanced() -> None:
    text = (
        "<b>bold &amp; "
        + "word &lt;tag&gt; " * 800
        + '</b> <a href="https://x.y/?a=1&amp;b=2">link</a>'
    )
    parts = split_text(text, html_mode=True)
    assert len(parts) > 1
    for p in parts:
        assert utf16_len(p) <= 4096
        # Every '<' opens a complete tag, every '&' a complete entity.
        stripped = _TAG_OR_ENTITY.sub("", p)
        assert "<" not in stripped and ">" not in stripped and "&" not in stripped
        assert p.count("<b>") == p.count("</b>")


def test_unbalanced_html_is_split_without_breaking_tags() -> None:
    text = ("<b>unclosed <i>deeper " * 300) + "</u> stray close " * 200
    parts = split_text(text, html_mode=True)
    assert all(utf16_len(p) <= 4096 for p in parts)
    for p in parts:
        stripped = _TAG_OR_ENTITY.sub("", p)
        assert "<" not in stripped and ">" not in stripped


def test_escape_html() -> None:
    hostile = '<script>alert("x")</script> & <b>'
    escaped = escape_html(hostile)
    assert "<" not in escaped and ">" not in escaped
    assert escaped == "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;"
    assert escape_html("a'b", quote=False) == "a'b"


async def test_hostile_text_through_telegram(notifier: Any, emulator: BotApiEmulator) -> None:
    user_text = ("<i>not a tag</i> & emoji 👨‍👩‍👧‍👦 at cuts. " * 400)[:10_000]
    html = "<b>Transcript</b>\n" + escape_html(user_text)
    res = await notifier.stub.Send(
        pb.SendRequest(idempotency_key="h", chat_id=88, text=html, parse_mode=pb.PARSE_MODE_HTML),
        timeout=30,
    )
    msgs = emulator.messages(88)
    assert [m.message_id for m in msgs] == list(res.message_ids)
    assert res.message_id == res.message_ids[-1]
    assert len(msgs) >= 3
    # The emulator parsed each part's HTML: what the user reads is the original
    # text (Telegram trims whitespace at a message's ends, so compare without it).
    seen = "".join(m.text or "" for m in msgs)
    assert "".join(seen.split()) == "".join(("Transcript" + user_text).split())
