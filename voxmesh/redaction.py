"""Secrets out of text and spans: the bot token, URL passwords, configured values.

One :class:`Redactor` (:data:`REDACTOR`) serves log lines (:mod:`voxmesh.logging`),
error texts sent to callers (:mod:`voxmesh.errors`) and every span before export
(:class:`voxmesh.telemetry.SpanHygiene`); a test can build its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Link, Status
from opentelemetry.util.types import Attributes, AttributeValue

# A bot token in a Bot API path (/bot<id>:<secret>/ and /file/bot<id>:<secret>/), a bare
# token (an id of 6+ digits, a colon, 30+ URL-safe characters) and a URL's password
# (scheme://user:password@host, as in DATABASE_URL and REDIS_URL).
_SECRET_RE = re.compile(
    r"(?P<bot>/bot)\d+:[A-Za-z0-9_-]+"
    r"|\b\d{6,}:[A-Za-z0-9_-]{30,}"
    r"|(?P<dsn>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*:)[^@/?#\s]+@"
)
# A configured secret shorter than this is left to the patterns: redacting every
# occurrence of a short password ("postgres") would mangle ordinary text.
_MIN_LITERAL = 12


def _replace(match: re.Match[str]) -> str:
    if match.group("bot"):
        return "/bot<redacted>"
    if match.group("dsn"):
        return match.group("dsn") + "<redacted>@"
    return "<redacted>"


class Redactor:
    """Removes secrets from text: token and DSN-password patterns, and configured values.

    One instance (:data:`REDACTOR`) serves logs, error texts and spans; a test
    can build its own.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._literals: set[str] = set()
        self._literal_re: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Also redact these exact values wherever they appear (the bot token, say)."""
        self._literals.update(s for s in secrets if len(s) >= _MIN_LITERAL)
        if self._literals:
            longest_first = sorted(self._literals, key=len, reverse=True)
            self._literal_re = re.compile("|".join(map(re.escape, longest_first)))

    def redact(self, text: str) -> str:
        text = _SECRET_RE.sub(_replace, text)
        if self._literal_re is not None:
            text = self._literal_re.sub("<redacted>", text)
        return text

    def leaks(self, text: str) -> bool:
        # Every pattern has a colon: most values (names, methods, statuses) skip the regex.
        # It runs on every attribute of every span, so the common case must be cheap.
        if ":" in text and _SECRET_RE.search(text):
            return True
        return self._literal_re is not None and self._literal_re.search(text) is not None

    def _value(self, value: AttributeValue) -> AttributeValue | None:
        """The value with secrets removed, or None when it has none."""
        if isinstance(value, str):
            return self.redact(value) if self.leaks(value) else None
        if isinstance(value, tuple | list) and any(
            isinstance(v, str) and self.leaks(v) for v in value
        ):
            return tuple(self.redact(v) if isinstance(v, str) else v for v in value)
        return None

    def attributes(self, attrs: Attributes) -> dict[str, AttributeValue] | None:
        """A copy of ``attrs`` with secrets removed, or None when there were none."""
        if not attrs:
            return None
        cleaned: dict[str, AttributeValue] | None = None
        for key, value in attrs.items():
            clean = self._value(value)
            if clean is not None:
                if cleaned is None:
                    cleaned = dict(attrs)
                cleaned[key] = clean
        return cleaned

    def span(self, span: ReadableSpan) -> ReadableSpan:
        """``span`` itself when no field holds a secret, else a copy with them redacted."""
        attributes = self.attributes(span.attributes)
        events = [(e, self.attributes(e.attributes)) for e in span.events] if span.events else []
        links = (
            [(link, self.attributes(link.attributes)) for link in span.links] if span.links else []
        )
        description = span.status.description or ""
        name = span.name
        if (
            attributes is None
            and all(clean is None for _, clean in events)
            and all(clean is None for _, clean in links)
            and not (description and self.leaks(description))
            and not self.leaks(name)
        ):
            return span
        status = span.status
        if self.leaks(description):
            status = Status(status.status_code, self.redact(description))
        return ReadableSpan(
            name=self.redact(name),
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=attributes if attributes is not None else span.attributes,
            events=[
                e if clean is None else Event(e.name, clean, e.timestamp) for e, clean in events
            ],
            links=[link if clean is None else Link(link.context, clean) for link, clean in links],
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )


REDACTOR = Redactor()


def redact(text: str) -> str:
    """Remove a bot token or a URL's password from a URL or message."""
    return REDACTOR.redact(text)
