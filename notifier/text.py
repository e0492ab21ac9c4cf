"""Text safety for Telegram: HTML escaping and splitting at 4096 characters.

Telegram counts a message's length in UTF-16 code units, so an emoji outside
the Basic Multilingual Plane counts twice; parts are measured the same way.
Cuts prefer paragraph, line, sentence and word bounds, in that order, and
never fall inside a grapheme (emoji with modifiers, ZWJ sequences, combining
marks), an HTML tag or an HTML entity. In HTML mode a tag left open at a cut
is closed at the end of the part and opened again at the start of the next,
so each part parses on its own.

The gateway imports :func:`escape_html` for user text it puts into HTML.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass

TELEGRAM_MAX_LENGTH = 4096

# Tags Telegram's HTML knows; only these are tracked as open across a cut.
_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "tg-emoji",
        "code",
        "pre",
        "blockquote",
    }
)
_TOKEN = re.compile(r"<[^<>]{1,512}>|&(?:#[0-9]{1,7}|#x[0-9a-fA-F]{1,6}|[A-Za-z]{1,16});")
_TAG = re.compile(r"<\s*(/?)\s*([A-Za-z][A-Za-z0-9-]*)")
_SENTENCE_END = ".!?…。！？;"


def escape_html(text: str, *, quote: bool = True) -> str:
    """Escape user text for Telegram's HTML parse mode (``&``, ``<``, ``>``, quotes)."""
    return html.escape(text, quote=quote)


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _joins_previous(ch: str) -> bool:
    """True when ``ch`` belongs to the grapheme before it, so no cut may precede it."""
    cp = ord(ch)
    return (
        cp == 0x200D  # zero-width joiner
        or 0xFE00 <= cp <= 0xFE0F  # variation selectors
        or 0x1F3FB <= cp <= 0x1F3FF  # skin tone modifiers
        or 0xE0020 <= cp <= 0xE007F  # tag characters (flag subdivisions)
        or 0xDC00 <= cp <= 0xDFFF  # a lone low surrogate
        or unicodedata.category(ch) in ("Mn", "Mc", "Me")
    )


def _after_joiner(prev: str) -> bool:
    cp = ord(prev)
    return cp == 0x200D or 0xD800 <= cp <= 0xDBFF


@dataclass(frozen=True)
class _Token:
    text: str
    kind: str  # "char", "entity", "open", "close"
    name: str = ""


def _tokens(text: str, html_mode: bool) -> list[_Token]:
    if not html_mode:
        return [_Token(c, "char") for c in text]
    out: list[_Token] = []
    pos = 0
    for m in _TOKEN.finditer(text):
        out.extend(_Token(c, "char") for c in text[pos : m.start()])
        tok = m.group(0)
        if tok.startswith("&"):
            out.append(_Token(tok, "entity"))
        else:
            tm = _TAG.match(tok)
            name = tm.group(2).lower() if tm else ""
            if tm and name in _TAGS:
                out.append(_Token(tok, "close" if tm.group(1) else "open", name))
            else:
                # Not a tag Telegram knows: keep it whole, it is the caller's to fix.
                out.append(_Token(tok, "entity"))
        pos = m.end()
    out.extend(_Token(c, "char") for c in text[pos:])
    return out


def _break_score(tokens: list[_Token], i: int) -> int:  # noqa: PLR0911 - a ranked table
    """How good a cut before ``tokens[i]`` is: higher is better, 0 is forbidden."""
    if i <= 0 or i >= len(tokens):
        return 0
    cur, prev = tokens[i], tokens[i - 1]
    if cur.kind == "char" and _joins_previous(cur.text):
        return 0
    if prev.kind == "char" and _after_joiner(prev.text):
        return 0
    # Regional indicators pair into flags; never split a pair.
    if (
        cur.kind == "char"
        and prev.kind == "char"
        and 0x1F1E6 <= ord(cur.text) <= 0x1F1FF
        and 0x1F1E6 <= ord(prev.text) <= 0x1F1FF
    ):
        return 0
    if prev.text == "\n":
        if i >= 2 and tokens[i - 2].text == "\n":
            return 5
        return 4
    if prev.kind == "char" and prev.text.isspace():
        if i >= 2 and tokens[i - 2].text in _SENTENCE_END:
            return 3
        return 2
    if prev.text in _SENTENCE_END and cur.kind != "char":
        return 3
    return 1


def split_text(
    text: str, limit: int = TELEGRAM_MAX_LENGTH, *, html_mode: bool = False
) -> list[str]:
    """Split ``text`` into parts of at most ``limit`` UTF-16 units each.

    Parts are never empty; joined back (less the tags re-opened and closed
    at cuts) they give the original text.
    """
    if limit < 64:
        raise ValueError("limit must be at least 64")
    if utf16_len(text) <= limit:
        return [text]
    tokens = _tokens(text, html_mode)
    parts: list[str] = []
    start = 0
    open_tags: list[_Token] = []
    while start < len(tokens):
        prefix = "".join(t.text for t in open_tags)
        size = utf16_len(prefix)
        stack = list(open_tags)
        # Every legal cut that fits, with the tags open there (their closing
        # tags must fit in the part too).
        candidates: list[tuple[int, int, list[_Token]]] = []
        i = start
        while i < len(tokens):
            tok = tokens[i]
            after = _push(stack, tok)
            if size + utf16_len(tok.text) + _closing_len(_carried(after, limit)) > limit:
                break
            size += utf16_len(tok.text)
            stack = after
            i += 1
            score = _break_score(tokens, i)
            if score:
                candidates.append((i, score, _carried(stack, limit)))
        if i >= len(tokens):
            best_i, best_stack = len(tokens), _carried(stack, limit)
        elif candidates:
            # The best bound in the second half of what fits; the latest on ties.
            half = start + (i - start) // 2
            late = [c for c in candidates if c[0] > half] or candidates
            best_i, _, best_stack = max(late, key=lambda c: (c[1], c[0]))
        else:
            # Nothing legal fits (one huge tag or grapheme): cut anyway.
            best_i = max(i, start + 1)
            best_stack = _carried(_stack_at(tokens, start, best_i, open_tags), limit)
        body = "".join(t.text for t in tokens[start:best_i])
        suffix = "".join(f"</{t.name}>" for t in reversed(best_stack))
        parts.append(prefix + body + suffix)
        open_tags = best_stack
        start = best_i
    return parts


def _stack_at(tokens: list[_Token], start: int, end: int, stack: list[_Token]) -> list[_Token]:
    out = list(stack)
    for tok in tokens[start:end]:
        if tok.kind == "open":
            out.append(tok)
        elif tok.kind == "close":
            for k in range(len(out) - 1, -1, -1):
                if out[k].name == tok.name:
                    del out[k]
                    break
    return out


def _push(stack: list[_Token], tok: _Token) -> list[_Token]:
    if tok.kind == "open":
        return [*stack, tok]
    if tok.kind == "close":
        for k in range(len(stack) - 1, -1, -1):
            if stack[k].name == tok.name:
                return stack[:k] + stack[k + 1 :]
    return stack


def _closing_len(stack: list[_Token]) -> int:
    return sum(len(t.name) + 3 for t in stack)


def _carried(stack: list[_Token], limit: int) -> list[_Token]:
    """The open tags worth closing and re-opening at a cut.

    Well-formed HTML nests a few tags; text with hundreds left open is
    malformed and Telegram rejects it anyway, so rather than let the
    re-opened tags eat the parts, such a stack is not carried at all.
    """
    overhead = _closing_len(stack) + sum(utf16_len(t.text) for t in stack)
    return stack if overhead <= limit // 8 else []
