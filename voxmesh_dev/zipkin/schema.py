"""Validating spans against Zipkin's published v2 API spec (zipkin2-api.yaml, swagger 2.0).

The spec's ``definitions`` are turned into a JSON Schema (draft 7) and checked with jsonschema.
Some of what the spec says lives only in prose or in swagger-only keywords, so
:func:`span_violations` checks it by hand: ids are 16 or 32 lower-hex characters *exactly*
(the spec's ``pattern`` is unanchored, so JSON Schema alone accepts "xyz" + 16 hex digits),
ids are not all zeros, timestamps and durations are integers (``1.0`` passes JSON Schema's
``integer``) within int64 that look like epoch *microseconds*, localEndpoint is present
("Instrumentation should always record this"), and ports are not zero.

A JSON ``null`` in an optional field counts as absent, because Zipkin's own decoder skips nulls
(and OpenTelemetry's Python exporter sends ``"kind": null`` for internal spans); a null traceId
or id is still an error. :func:`drop_nulls` applies that before validation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator, FormatChecker

_SPEC_RESOURCE = "zipkin2-api.yaml"
# swagger 2 keywords with no JSON Schema meaning (format int64 is checked by hand)
_SWAGGER_ONLY = frozenset({"example", "discriminator", "readOnly", "xml", "externalDocs"})
_TRACE_ID_RE = re.compile(r"[0-9a-f]{16}|[0-9a-f]{32}")
_SPAN_ID_RE = re.compile(r"[0-9a-f]{16}")
_INT64_MAX = 2**63 - 1
# epoch microseconds between 2001-09-09 and 5138-11-16: a value in milliseconds or
# nanoseconds falls outside by three orders of magnitude
_MIN_EPOCH_MICROS = 10**15
_MAX_EPOCH_MICROS = 10**17


def load_spec(path: Path | None = None) -> dict[str, Any]:
    """Load the swagger document (the copy shipped with this package unless path is given)."""
    if path is not None:
        text = path.read_text(encoding="utf-8")
    else:
        text = resources.files("voxmesh_dev.zipkin").joinpath(_SPEC_RESOURCE).read_text("utf-8")
    spec = yaml.safe_load(text)
    if not isinstance(spec, dict) or "definitions" not in spec:
        raise ValueError("not a swagger document with definitions")
    return spec


def _to_json_schema(node: Any) -> Any:
    if isinstance(node, Mapping):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _SWAGGER_ONLY:
                continue
            if key == "format" and value in ("int64", "int32"):
                continue
            out[key] = _to_json_schema(value)
        return out
    if isinstance(node, list):
        return [_to_json_schema(item) for item in node]
    return node


def span_list_schema(spec: Mapping[str, Any]) -> dict[str, Any]:
    """JSON Schema for the POST /api/v2/spans body (the spec's ListOfSpans)."""
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "definitions": _to_json_schema(spec["definitions"]),
        "$ref": "#/definitions/ListOfSpans",
    }


_REQUIRED_NON_NULL = frozenset({"traceId", "id"})


def drop_nulls(body: Any) -> Any:
    """Remove null optional fields from each span, as Zipkin's JSON decoder does."""
    if not isinstance(body, list):
        return body
    return [
        {k: v for k, v in span.items() if v is not None or k in _REQUIRED_NON_NULL}
        if isinstance(span, dict)
        else span
        for span in body
    ]


class SpanValidator:
    """Checks a decoded POST body; returns human-readable reasons, empty when valid."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        schema = span_list_schema(spec)
        Draft7Validator.check_schema(schema)
        self._validator = Draft7Validator(schema, format_checker=FormatChecker())

    def violations(self, body: Any) -> list[str]:
        if not isinstance(body, list):
            return [f"body: expected a JSON array of spans, got {type(body).__name__}"]
        reasons: list[str] = []
        for error in sorted(self._validator.iter_errors(body), key=lambda e: list(e.path)):
            path = list(error.absolute_path)
            if path and isinstance(path[0], int):
                where = f"span[{path[0]}]" + "".join(f".{p}" for p in path[1:])
            else:
                where = "body"
            reasons.append(f"{where}: {error.message}")
        for index, span in enumerate(body):
            if isinstance(span, dict):
                reasons.extend(f"span[{index}].{r}" for r in span_violations(span))
        return reasons


def _check_int(value: Any, name: str, *, epoch: bool) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int):
        return [f"{name}: {value!r} is not an integer count of microseconds"]
    if not 0 <= value <= _INT64_MAX:
        return [f"{name}: {value} is outside int64"]
    if epoch and not _MIN_EPOCH_MICROS <= value < _MAX_EPOCH_MICROS:
        return [f"{name}: {value} does not look like epoch microseconds"]
    return []


def _check_endpoint(endpoint: Any, name: str) -> list[str]:
    if not isinstance(endpoint, dict):
        return []
    port = endpoint.get("port")
    if isinstance(port, int) and not isinstance(port, bool) and not 0 < port <= 65535:
        return [f"{name}.port: {port} is not a port (absent if unknown, never zero)"]
    return []


def _check_id(value: Any, name: str, pattern: re.Pattern[str], size: str) -> list[str]:
    if not isinstance(value, str):
        return []  # absence and wrong types are the JSON Schema's to report
    if not pattern.fullmatch(value):
        return [f"{name}: {value!r} is not {size} lower-hex characters"]
    if not value.strip("0"):
        return [f"{name}: all zeros"]
    return []


def span_violations(span: Mapping[str, Any]) -> list[str]:
    """The checks the spec states in prose or swagger-only keywords (see the module doc)."""
    reasons = _check_id(span.get("traceId"), "traceId", _TRACE_ID_RE, "16 or 32")
    reasons += _check_id(span.get("id"), "id", _SPAN_ID_RE, "16")
    reasons += _check_id(span.get("parentId"), "parentId", _SPAN_ID_RE, "16")
    if "timestamp" in span:
        reasons += _check_int(span["timestamp"], "timestamp", epoch=True)
    if "duration" in span:
        reasons += _check_int(span["duration"], "duration", epoch=False)
    if "localEndpoint" not in span:
        reasons.append("localEndpoint: missing (instrumentation should always record it)")
    reasons += _check_endpoint(span.get("localEndpoint"), "localEndpoint")
    reasons += _check_endpoint(span.get("remoteEndpoint"), "remoteEndpoint")
    annotations = span.get("annotations")
    if isinstance(annotations, list):
        for index, annotation in enumerate(annotations):
            if isinstance(annotation, dict) and "timestamp" in annotation:
                reasons += _check_int(
                    annotation["timestamp"], f"annotations[{index}].timestamp", epoch=True
                )
    return reasons
