"""The emulator's HTML parse mode: entities in UTF-16 units, tdlib's error wording."""

from __future__ import annotations

import pytest

from voxmesh_dev.telegram.html_entities import EntityParseError, parse_html, strip_text


def test_entities_use_utf16_offsets() -> None:
    text, entities = parse_html(
        "😀 <b>bold</b> &lt;&amp;&gt; <a href='https://x.org/?a=1&amp;b'>l</a>"
    )
    assert text == "😀 bold <&> l"
    assert entities == [
        {"type": "bold", "offset": 3, "length": 4},
        {"type": "text_link", "url": "https://x.org/?a=1&b", "offset": 12, "length": 1},
    ]


def test_pre_with_language_and_nested_tags() -> None:
    text, entities = parse_html(
        '<pre><code class="language-python">x = 1</code></pre><b><i>bi</i></b>'
    )
    assert text == "x = 1bi"
    assert {"type": "pre", "language": "python", "offset": 0, "length": 5} in entities
    assert {"type": "bold", "offset": 5, "length": 2} in entities
    assert {"type": "italic", "offset": 5, "length": 2} in entities
    assert not any(e["type"] == "code" for e in entities)


def test_unknown_named_entities_stay_literal() -> None:
    assert parse_html("a &nbsp; b &#65;")[0] == "a &nbsp; b A"


@pytest.mark.parametrize(
    ("html", "message"),
    [
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("é<b>x</i>", 'Unmatched end tag at byte offset 6, expected "</b>", found "</i>"'),
        ("<script>", 'Unsupported start tag "script" at byte offset 0'),
        ("<b", "Unclosed start tag at byte offset 0"),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
    ],
)
def test_errors(html: str, message: str) -> None:
    with pytest.raises(EntityParseError) as info:
        parse_html(html)
    assert str(info.value) == message


def test_strip_shifts_and_clips_entities() -> None:
    text, entities = strip_text("  <b>  x", [{"type": "bold", "offset": 0, "length": 8}])
    assert text == "<b>  x"
    assert entities == [{"type": "bold", "offset": 0, "length": 6}]
