"""A Zipkin v2 collector that checks every span against the published API spec.

Accepts ``POST /api/v2/spans`` (a JSON list of spans, optionally gzip-encoded) and answers 202,
or 400 with the reasons when any span breaks the spec (see
:mod:`voxmesh.emulator._zipkin_schema`). A rejected batch stores nothing, as Zipkin's decoder
fails a whole request; the reasons are kept in :attr:`ZipkinCollector.violations` so a test can
assert there were none.

Like a Zipkin server with the zipkin-otel module, it also accepts OTLP/HTTP: ``POST /v1/traces``
with a protobuf ``ExportTraceServiceRequest`` (optionally gzip-encoded), translated to Zipkin
spans as zipkin-otel does (service name from the resource; ``remoteEndpoint`` of client and
producer spans from ``peer.service`` or ``network.peer.address``; attributes, the resource's
other attributes, status and scope as tags; events as annotations), then validated and
stored like the JSON ones. The answer is 200 with an ``ExportTraceServiceResponse``, or 400
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

import argparse
import asyncio
import collections
import functools
import gzip
import ipaddress
import json
import logging
import signal
import sys
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
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from voxmesh.emulator._zipkin_schema import (
    SpanValidator,
    drop_nulls,
    load_spec,
    span_list_schema,
    span_violations,
)

__all__ = ["ZipkinCollector", "main"]

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


_OTLP_KINDS = {
    Span.SPAN_KIND_SERVER: "SERVER",
    Span.SPAN_KIND_CLIENT: "CLIENT",
    Span.SPAN_KIND_PRODUCER: "PRODUCER",
    Span.SPAN_KIND_CONSUMER: "CONSUMER",
}


def _otlp_json(value: AnyValue) -> str:
    which = value.WhichOneof("value")
    if which == "array_value":
        return "[" + ",".join(_otlp_json(v) for v in value.array_value.values) + "]"
    if which == "kvlist_value":
        return _otlp_kvlist_json(value.kvlist_value.values)
    scalar: Any = {
        "string_value": value.string_value,
        "bool_value": value.bool_value,
        "int_value": value.int_value,
        "double_value": value.double_value,
        "bytes_value": value.bytes_value.hex(),
    }.get(which or "")
    return json.dumps(scalar)


def _otlp_kvlist_json(values: Any) -> str:
    return "{" + ",".join(f"{json.dumps(kv.key)}:{_otlp_json(kv.value)}" for kv in values) + "}"


def _otlp_text(value: AnyValue) -> str:
    """An attribute as a Zipkin tag: strings as they are, arrays comma-separated (zipkin-otel)."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "array_value":
        return ",".join(_otlp_text(v) for v in value.array_value.values)
    return _otlp_json(value)


def _otlp_endpoint(service: str | None, address: AnyValue | None, port: AnyValue | None) -> Any:
    endpoint: dict[str, Any] = {}
    if service:
        endpoint["serviceName"] = service
    if address is not None and address.HasField("string_value"):
        try:
            ip = ipaddress.ip_address(address.string_value)
        except ValueError:
            pass
        else:
            endpoint["ipv4" if ip.version == 4 else "ipv6"] = str(ip)
    if port is not None and port.HasField("int_value"):
        endpoint["port"] = port.int_value
    return endpoint


def otlp_to_zipkin(request: ExportTraceServiceRequest) -> list[dict[str, Any]]:
    """The Zipkin v2 spans of an OTLP trace export, as zipkin-otel translates them."""
    out: list[dict[str, Any]] = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: kv.value for kv in resource_spans.resource.attributes}
        service = resource["service.name"].string_value if "service.name" in resource else None
        # The resource's other attributes (k8s.pod.name, deployment.environment, ...) are
        # tags of every span, under the span's own attributes.
        resource_tags = {k: _otlp_text(v) for k, v in resource.items() if k != "service.name"}
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            for span in scope_spans.spans:
                zipkin = _otlp_span(span, service, scope.name, scope.version)
                if resource_tags:
                    zipkin["tags"] = {**resource_tags, **zipkin.get("tags", {})}
                out.append(zipkin)
    return out


def _otlp_span(span: Span, service: str | None, scope: str, version: str) -> dict[str, Any]:
    attributes: dict[str, AnyValue] = {kv.key: kv.value for kv in span.attributes}
    start, end = span.start_time_unix_nano // 1000, span.end_time_unix_nano // 1000
    zipkin: dict[str, Any] = {
        "traceId": span.trace_id.hex(),
        "id": span.span_id.hex(),
        "name": span.name,
        "timestamp": start,
        "duration": max(1, end - start),
        "localEndpoint": _otlp_endpoint(
            service, attributes.get("network.local.address"), attributes.get("network.local.port")
        ),
    }
    if span.parent_span_id.strip(b"\0"):
        zipkin["parentId"] = span.parent_span_id.hex()
    kind = _OTLP_KINDS.get(span.kind)
    if kind is not None:
        zipkin["kind"] = kind
    if kind in {"CLIENT", "PRODUCER"}:
        peer = attributes.get("peer.service") or attributes.get("network.peer.address")
        if peer is not None:
            zipkin["remoteEndpoint"] = _otlp_endpoint(
                peer.string_value,
                attributes.get("network.peer.address"),
                attributes.get("network.peer.port"),
            )
    tags = {key: _otlp_text(value) for key, value in attributes.items()}
    if len(attributes) < len(span.attributes) or span.dropped_attributes_count:
        dropped = len(span.attributes) - len(attributes) + span.dropped_attributes_count
        tags["otel.dropped_attributes_count"] = str(dropped)
    if span.status.code != Status.STATUS_CODE_UNSET:
        error = span.status.code == Status.STATUS_CODE_ERROR
        tags["otel.status_code"] = "ERROR" if error else "OK"
        if error and "error" not in tags:
            tags["error"] = span.status.message
    if scope:
        tags["otel.scope.name"] = scope
    if version:
        tags["otel.scope.version"] = version
    if span.dropped_events_count:
        tags["otel.dropped_events_count"] = str(span.dropped_events_count)
    if tags:
        zipkin["tags"] = tags
    if span.events:
        zipkin["annotations"] = [
            {
                "timestamp": event.time_unix_nano // 1000,
                "value": f"{json.dumps(event.name)}:{_otlp_kvlist_json(event.attributes)}"
                if event.attributes
                else event.name,
            }
            for event in span.events
        ]
    return zipkin


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
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        server = site._server  # aiohttp exposes the bound port only here
        assert isinstance(server, asyncio.base_events.Server)
        bound = server.sockets[0].getsockname()[1]
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


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m voxmesh.emulator.zipkin", description="Zipkin v2 collector"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9411)
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    collector = ZipkinCollector()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sys.stdout.write(await collector.start(args.host, args.port) + "\n")
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await collector.stop()


def main(argv: list[str] | None = None) -> None:
    """Run the collector standalone: print the base URL, serve until SIGTERM or SIGINT."""
    logging.basicConfig(level=logging.INFO)
    asyncio.run(_serve(_parse_args(argv)))


if __name__ == "__main__":
    main()
