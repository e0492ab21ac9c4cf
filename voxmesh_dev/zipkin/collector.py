"""A Zipkin v2 collector that checks every span against the published API spec.

Accepts ``POST /api/v2/spans`` (a JSON list of spans, optionally gzip-encoded) and answers 202,
or 400 with the reasons when any span breaks the spec (see
:mod:`voxmesh_dev.zipkin.schema`). A rejected batch stores nothing, as Zipkin's decoder
fails a whole request; the reasons are kept in :attr:`ZipkinCollector.violations` so a test can
assert there were none.

Like a Zipkin server with the zipkin-otel module, it also accepts OTLP/HTTP: ``POST /v1/traces``
with a protobuf ``ExportTraceServiceRequest`` (optionally gzip-encoded), translated to Zipkin
spans as zipkin-otel does (see :mod:`voxmesh_dev.zipkin.otlp`), then validated and stored
like the JSON ones. The answer is 200 with an ``ExportTraceServiceResponse``, or 400
with the reasons.

Read API: ``/api/v2/services``, ``/api/v2/spans?serviceName=``,
``/api/v2/remoteServices?serviceName=``, ``/api/v2/traces`` (serviceName, spanName,
annotationQuery, minDuration, maxDuration, endTs, lookback, limit), ``/api/v2/trace/{traceId}``
and ``/api/v2/traceMany?traceIds=``.

What it does NOT emulate: Zipkin's protobuf (``application/x-protobuf`` on ``/api/v2/spans``,
answered 415) and Thrift bodies, OTLP/JSON and OTLP/gRPC, the v1 API, ``/api/v2/dependencies``
and autocomplete, the UI, storage beyond process memory, sampling, and merging of shared
client/server spans (spans are kept as received, less null optional fields, which Zipkin's
decoder skips too). Service and span names are lower-cased for queries, as Zipkin does.

:attr:`ZipkinCollector.requests` records the latest POSTs' paths and headers, so a test can
see which protocol and headers an exporter used.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import gzip
import json
import logging
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastjsonschema
from aiohttp import web
from google.protobuf.message import DecodeError
from jsonschema import FormatChecker
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from voxmesh.http import serve_http
from voxmesh_dev.zipkin.otlp import otlp_to_zipkin
from voxmesh_dev.zipkin.schema import (
    SpanValidator,
    drop_nulls,
    load_spec,
    span_list_schema,
    span_violations,
)

__all__ = ["ZipkinCollector"]

log = logging.getLogger(__name__)

DEFAULT_LOOKBACK_MS = 86_400_000  # Zipkin's QUERY_LOOKBACK default: one day
MAX_BODY = 64 * 1024 * 1024


def _service(span: dict[str, Any], key: str = "localEndpoint") -> str | None:
    endpoint = span.get(key)
    if isinstance(endpoint, dict) and isinstance(endpoint.get("serviceName"), str):
        return str(endpoint["serviceName"]).lower()
    return None


def _matches_annotation_query(span: dict[str, Any], query: str) -> bool:
    tags = span.get("tags") or {}
    annotations = [a.get("value") for a in span.get("annotations") or []]
    for term in (t.strip() for t in query.split(" and ")):
        if not term:
            continue
        if "=" in term:
            key, value = term.split("=", 1)
            if tags.get(key) != value:
                return False
        elif term not in tags and term not in annotations:
            return False
    return True


class ZipkinCollector:
    """An in-process Zipkin v2 collector on a real socket; see the module docstring."""

    def __init__(self, *, spec_path: Path | None = None) -> None:
        spec = load_spec(spec_path)
        self._validator = SpanValidator(spec)
        # The same schema compiled to Python, with jsonschema's own format checks: it
        # passes a good batch ~35x faster than jsonschema, whose walk costs more per span
        # than an exporting process spends making one (a collector that falls behind
        # makes exporters drop spans). A batch it fails goes to jsonschema for the reasons.
        checker = FormatChecker()
        self._quick_check = fastjsonschema.compile(
            span_list_schema(spec),
            formats={
                name: functools.partial(checker.conforms, format=name) for name in ("ipv4", "ipv6")
            },
        )
        self.spans: list[dict[str, Any]] = []
        self.violations: list[str] = []
        # (path, headers) of the latest POSTs, in arrival order; bounded, since
        # `voxmesh up` runs this for hours.
        self.requests: collections.deque[tuple[str, dict[str, str]]] = collections.deque(
            maxlen=1000
        )
        self.base_url = ""
        self.endpoint = ""
        self._runner: web.AppRunner | None = None
        self._arrived = asyncio.Event()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0 picks a free port); return the base URL."""
        if self._runner is not None:
            raise RuntimeError("collector already started")
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/api/v2/spans", self._post_spans)
        app.router.add_post("/v1/traces", self._post_otlp)
        app.router.add_get("/api/v2/spans", self._span_names)
        app.router.add_get("/api/v2/services", self._services)
        app.router.add_get("/api/v2/remoteServices", self._remote_services)
        app.router.add_get("/api/v2/traces", self._traces)
        app.router.add_get("/api/v2/trace/{trace_id}", self._trace)
        app.router.add_get("/api/v2/traceMany", self._trace_many)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        bound = await serve_http(runner, host, port)
        self._runner = runner
        self.base_url = f"http://{host}:{bound}"
        self.endpoint = f"{self.base_url}/api/v2/spans"
        log.info("zipkin collector listening on %s", self.base_url)
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> ZipkinCollector:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ Python API

    def ingest(self, body: Any) -> list[str]:
        """Validate and store a decoded POST body; return the reasons it was rejected."""
        body = drop_nulls(body)
        reasons = self._violations(body)
        if reasons:
            self.violations.extend(reasons)
            return reasons
        assert isinstance(body, list)
        self.spans.extend(body)
        self._arrived.set()
        return []

    def _violations(self, body: Any) -> list[str]:
        try:
            self._quick_check(body)
        except fastjsonschema.JsonSchemaException:
            return self._validator.violations(body)
        # Valid JSON Schema-wise: what is left are the checks the spec states in prose.
        return [
            f"span[{i}].{reason}" for i, span in enumerate(body) for reason in span_violations(span)
        ]

    def traces(self) -> dict[str, list[dict[str, Any]]]:
        """Accepted spans grouped by traceId."""
        grouped: dict[str, list[dict[str, Any]]] = {}
        for span in self.spans:
            grouped.setdefault(str(span["traceId"]).lower(), []).append(span)
        return grouped

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        trace_id = trace_id.lower()
        return [s for s in self.spans if str(s["traceId"]).lower() == trace_id]

    async def wait_for_spans(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float
    ) -> None:
        """Wait until predicate(spans) holds; TimeoutError after timeout seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._arrived.clear()
            if predicate(self.spans):
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"span condition not met within {timeout} s "
                    f"({len(self.spans)} spans, {len(self.violations)} violations)"
                )
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                continue

    def clear(self) -> None:
        self.spans.clear()
        self.violations.clear()
        self.requests.clear()

    # ------------------------------------------------------------------ HTTP handlers

    async def _post_spans(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.path, dict(request.headers)))
        if request.content_type not in ("application/json", "application/octet-stream", ""):
            return web.Response(status=415, text=f"unsupported content type {request.content_type}")
        raw = await request.read()
        if raw[:2] == b"\x1f\x8b":
            # aiohttp inflates Content-Encoding: gzip itself; this catches gzip sent unlabelled
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError, zlib.error) as exc:
                return self._reject([f"body: bad gzip data: {exc}"])
        try:
            body = json.loads(raw)
        except ValueError as exc:
            return self._reject([f"body: malformed JSON: {exc}"])
        reasons = self.ingest(body)
        if reasons:
            return web.Response(status=400, text="\n".join(reasons))
        return web.Response(status=202)

    async def _post_otlp(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.path, dict(request.headers)))
        if request.content_type != "application/x-protobuf":
            # OTLP/JSON needs its own id decoding (hex, not protobuf's base64): not emulated.
            return web.Response(status=415, text=f"unsupported content type {request.content_type}")
        raw = await request.read()  # aiohttp inflates Content-Encoding: gzip itself
        try:
            message = ExportTraceServiceRequest.FromString(raw)
        except DecodeError as exc:
            return self._reject([f"body: malformed OTLP protobuf: {exc}"])
        reasons = self.ingest(otlp_to_zipkin(message))
        if reasons:
            return web.Response(status=400, text="\n".join(reasons))
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    def _reject(self, reasons: list[str]) -> web.StreamResponse:
        self.violations.extend(reasons)
        return web.Response(status=400, text="\n".join(reasons))

    async def _services(self, request: web.Request) -> web.StreamResponse:
        names = {_service(s) for s in self.spans}
        return web.json_response(sorted(n for n in names if n))

    async def _span_names(self, request: web.Request) -> web.StreamResponse:
        service = request.query.get("serviceName", "").lower()
        if not service:
            return web.Response(status=400, text="serviceName is required")
        names = {
            str(s["name"]).lower()
            for s in self.spans
            if _service(s) == service and isinstance(s.get("name"), str)
        }
        return web.json_response(sorted(names))

    async def _remote_services(self, request: web.Request) -> web.StreamResponse:
        service = request.query.get("serviceName", "").lower()
        if not service:
            return web.Response(status=400, text="serviceName is required")
        names = {_service(s, "remoteEndpoint") for s in self.spans if _service(s) == service}
        return web.json_response(sorted(n for n in names if n))

    async def _traces(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        try:
            end_ts = int(q.get("endTs", int(time.time() * 1000)))
            lookback = int(q.get("lookback", DEFAULT_LOOKBACK_MS))
            limit = int(q.get("limit", 10))
            min_duration = int(q["minDuration"]) if "minDuration" in q else None
            max_duration = int(q["maxDuration"]) if "maxDuration" in q else None
        except ValueError as exc:
            return web.Response(status=400, text=f"bad query parameter: {exc}")
        service = q.get("serviceName", "").lower() or None
        span_name = q.get("spanName", "").lower() or None
        annotation_query = q.get("annotationQuery")
        low, high = (end_ts - lookback) * 1000, end_ts * 1000

        def span_matches(span: dict[str, Any]) -> bool:
            if service is not None and _service(span) != service:
                return False
            if span_name is not None and str(span.get("name", "")).lower() != span_name:
                return False
            duration = span.get("duration")
            if min_duration is not None and not (
                isinstance(duration, int) and duration >= min_duration
            ):
                return False
            if max_duration is not None and not (
                isinstance(duration, int) and duration <= max_duration
            ):
                return False
            return annotation_query is None or _matches_annotation_query(span, annotation_query)

        found: list[tuple[int, list[dict[str, Any]]]] = []
        for spans in self.traces().values():
            stamps = [s["timestamp"] for s in spans if isinstance(s.get("timestamp"), int)]
            if stamps and not (low <= min(stamps) and max(stamps) <= high):
                continue
            if any(span_matches(s) for s in spans):
                found.append((max(stamps, default=0), spans))
        found.sort(key=lambda item: item[0], reverse=True)
        return web.json_response([spans for _, spans in found[:limit]])

    async def _trace(self, request: web.Request) -> web.StreamResponse:
        trace_id = request.match_info["trace_id"]
        spans = self.trace(trace_id)
        if not spans:
            return web.Response(status=404, text=f"{trace_id.lower()} not found")
        return web.json_response(spans)

    async def _trace_many(self, request: web.Request) -> web.StreamResponse:
        ids = [t for t in request.query.get("traceIds", "").lower().split(",") if t]
        if len(set(ids)) < 2:
            return web.Response(status=400, text="at least two unique traceIds are required")
        traces = [self.trace(t) for t in dict.fromkeys(ids)]
        return web.json_response([t for t in traces if t])
