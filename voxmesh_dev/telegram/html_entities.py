"""Telegram's ``parse_mode=HTML`` parser, close enough to catch what the real one rejects.

Modelled on tdlib's ``parse_html`` (the Bot API server runs it): the same tag set, the same
error wording ("Unsupported start tag", "Can't find end tag corresponding to start tag", ...),
byte offsets counted in UTF-8 and entity offsets in UTF-16 code units, as the Bot API reports
them. Named HTML entities other than ``&lt; &gt; &amp; &quot;`` stay literal, as in Telegram.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_SIMPLE_TAGS: dict[str, str] = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "code": "code",
    "pre": "pre",
}
_SUPPORTED_TAGS = frozenset({*_SIMPLE_TAGS, "a", "span", "tg-emoji", "blockquote"})
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY_RE = re.compile(r"&(#[xX][0-9a-fA-F]{1,8}|#[0-9]{1,10}|[a-zA-Z]{2,8});")
_TAG_NAME_RE = re.compile(r"[a-zA-Z0-9-]*")
_ATTR_NAME_RE = re.compile(r"[a-zA-Z0-9_-]+")


class EntityParseError(ValueError):
    """The text is not valid Telegram HTML; str(self) is Telegram's reason."""


@dataclass
class _OpenTag:
    name: str
    attrs: dict[str, str]
    offset: int  # UTF-16 offset into the plain text
    children: list[dict[str, Any]] = field(default_factory=list)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of MessageEntity offsets."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(src: str, index: int) -> int:
    return len(src[:index].encode("utf-8"))


def _decode_entity(src: str, i: int) -> tuple[str, int]:
    match = _ENTITY_RE.match(src, i)
    if match is None:
        return "&", i + 1
    body = match.group(1)
    if body.startswith(("#x", "#X")):
        code = int(body[2:], 16)
    elif body.startswith("#"):
        code = int(body[1:])
    elif body in _NAMED_ENTITIES:
        return _NAMED_ENTITIES[body], match.end()
    else:
        return "&", i + 1
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return "&", i + 1
    return chr(code), match.end()


_ATTR_RE = re.compile(r"""\s*([a-zA-Z0-9_-]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>"']+))?""")


def _parse_attrs(src: str, i: int, begin: int) -> tuple[dict[str, str], int]:
    """Parse attributes up to and including '>'; return them and the index after '>'."""
    attrs: dict[str, str] = {}
    while True:
        while i < len(src) and src[i].isspace():
            i += 1
        if i < len(src) and src[i] == ">":
            return attrs, i + 1
        match = _ATTR_RE.match(src, i)
        if match is None or match.end() >= len(src):
            if i >= len(src) or match is not None:
                raise EntityParseError(
                    f"Unclosed start tag at byte offset {_byte_offset(src, begin)}"
                )
            raise EntityParseError(
                f"Empty attribute name in the tag at byte offset {_byte_offset(src, begin)}"
            )
        raw = match.group(2) or ""
        if raw[:1] in ("'", '"'):
            raw = raw[1:-1]
        attrs[match.group(1).lower()] = _unescape(raw)
        i = match.end()


def _unescape(raw: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(raw):
        if raw[i] == "&":
            text, i = _decode_entity(raw, i)
            out.append(text)
        else:
            out.append(raw[i])
            i += 1
    return "".join(out)


def _link_entity(href: str) -> dict[str, Any] | None:
    if not href:
        return None
    user = re.fullmatch(r"tg://user\?id=(\d+)", href)
    if user is not None:
        return {
            "type": "text_mention",
            "user": {"id": int(user.group(1)), "is_bot": False, "first_name": "user"},
        }
    return {"type": "text_link", "url": href}


def _entity_for(tag: _OpenTag, end: int) -> dict[str, Any] | None:
    name = tag.name
    entity: dict[str, Any] | None
    if name == "a":
        entity = _link_entity(tag.attrs.get("href", ""))
    elif name == "span":
        entity = {"type": "spoiler"}
    elif name == "blockquote":
        expandable = "expandable" in tag.attrs
        entity = {"type": "expandable_blockquote" if expandable else "blockquote"}
    elif name == "tg-emoji":
        entity = {"type": "custom_emoji", "custom_emoji_id": tag.attrs.get("emoji-id", "")}
    else:
        entity = {"type": _SIMPLE_TAGS[name]}
        # <pre><code class="language-x">: the inner code's language moves onto the pre
        languages = [c["_language"] for c in tag.children if c.get("_language")]
        if name == "pre" and languages:
            entity["language"] = languages[0]
        cls = tag.attrs.get("class", "")
        if name == "code" and cls.startswith("language-"):
            entity["_language"] = cls.removeprefix("language-")
    if entity is None or end <= tag.offset:
        return None
    entity["offset"] = tag.offset
    entity["length"] = end - tag.offset
    return entity


class _Parser:
    def __init__(self, src: str) -> None:
        self.src = src
        self.out: list[str] = []
        self.pos16 = 0
        self.stack: list[_OpenTag] = []
        self.entities: list[dict[str, Any]] = []

    def _error(self, reason: str, index: int) -> EntityParseError:
        return EntityParseError(f"{reason} at byte offset {_byte_offset(self.src, index)}")

    def _emit(self, text: str) -> None:
        self.out.append(text)
        self.pos16 += utf16_len(text)

    def run(self) -> tuple[str, list[dict[str, Any]]]:
        src = self.src
        i = 0
        while i < len(src):
            ch = src[i]
            if ch == "&":
                text, i = _decode_entity(src, i)
                self._emit(text)
            elif ch != "<":
                self._emit(ch)
                i += 1
            elif src.startswith("</", i):
                i = self._end_tag(i)
            else:
                i = self._start_tag(i)
        if self.stack:
            raise EntityParseError(
                f'Can\'t find end tag corresponding to start tag "{self.stack[-1].name}"'
            )
        return "".join(self.out), self.entities

    def _end_tag(self, begin: int) -> int:
        src = self.src
        name_match = _TAG_NAME_RE.match(src, begin + 2)
        assert name_match is not None  # the pattern matches the empty string
        name = name_match.group(0).lower()
        j = name_match.end()
        while j < len(src) and src[j].isspace():
            j += 1
        if j >= len(src) or src[j] != ">":
            raise self._error("Unclosed end tag", begin)
        if not self.stack:
            raise self._error("Unexpected end tag", begin)
        if self.stack[-1].name != name:
            expected = self.stack[-1].name
            raise EntityParseError(
                f"Unmatched end tag at byte offset {_byte_offset(src, begin)}, "
                f'expected "</{expected}>", found "</{name}>"'
            )
        tag = self.stack.pop()
        entity = _entity_for(tag, self.pos16)
        if entity is not None:
            self.entities.append(entity)
            if self.stack:
                self.stack[-1].children.append(entity)
        return j + 1

    def _start_tag(self, begin: int) -> int:
        name_match = _TAG_NAME_RE.match(self.src, begin + 1)
        assert name_match is not None
        name = name_match.group(0).lower()
        if name not in _SUPPORTED_TAGS:
            raise self._error(f'Unsupported start tag "{name}"', begin)
        attrs, i = _parse_attrs(self.src, name_match.end(), begin)
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise self._error('Tag "span" must have class "tg-spoiler"', begin)
        if name == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
            raise self._error('Tag "tg-emoji" must have attribute "emoji-id"', begin)
        self.stack.append(_OpenTag(name=name, attrs=attrs, offset=self.pos16))
        return i


def parse_html(src: str) -> tuple[str, list[dict[str, Any]]]:
    """Return (plain text, MessageEntity dicts) or raise :class:`EntityParseError`."""
    text, entities = _Parser(src).run()
    result = [{k: v for k, v in e.items() if not k.startswith("_")} for e in entities]
    result = [e for e in result if not (e["type"] == "code" and _inside_pre(e, result))]
    result.sort(key=lambda e: (e["offset"], -e["length"]))
    return text, result


def _inside_pre(code: dict[str, Any], entities: list[dict[str, Any]]) -> bool:
    return any(
        e["type"] == "pre" and e["offset"] == code["offset"] and e["length"] == code["length"]
        for e in entities
    )


def strip_text(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Trim surrounding whitespace as Telegram does, shifting and clipping the entities."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    lead = utf16_len(text[: len(text) - len(text.lstrip())])
    size = utf16_len(stripped)
    kept: list[dict[str, Any]] = []
    for entity in entities:
        start = max(entity["offset"] - lead, 0)
        end = min(entity["offset"] + entity["length"] - lead, size)
        if end > start:
            kept.append({**entity, "offset": start, "length": end - start})
    return stripped, kept
