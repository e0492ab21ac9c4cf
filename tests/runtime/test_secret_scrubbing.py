"""No secret leaves in a span, a log line or an error text.

The case from the field: Telegram's file server answers a download with HTTP
500, the aiohttp instrumentation records the exception on the client span,
and the exception's message and stack trace hold the download URL with the
bot token. ``url_filter`` cleans only the URL attribute.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest
from aiohttp import web
from google.rpc import status_pb2
from opentelemetry.instrumentation.aiohttp_client import create_trace_config
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from voxmesh import telemetry
from voxmesh.config import TelemetrySettings
from voxmesh.errors import Unavailable
from voxmesh.logging import JsonFormatter
from voxmesh_dev.zipkin import ZipkinCollector

TOKEN = "7123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
SECRET = TOKEN.split(":", 1)[1]
DSN = "postgresql://billing:Sup3r-s3cret-pw@db.internal:5432/billing"
PASSWORD = "Sup3r-s3cret-pw"


def _texts(span: ReadableSpan) -> list[str]:
    """Every text a span exports: name, attributes, events' attributes, links, status."""
    out = [span.name, span.status.description or ""]
    out += [str(v) for v in (span.attributes or {}).values()]
    for event in span.events:
        out.append(event.name)
        out += [str(v) for v in (event.attributes or {}).values()]
    for link in span.links:
        out += [str(v) for v in (link.attributes or {}).values()]
    return out


@pytest.fixture
async def file_server() -> AsyncIterator[str]:
    """Telegram's file server, failing: every download is an HTTP 500."""

    async def download(request: web.Request) -> web.Response:
        return web.Response(status=500, text="Internal Server Error")

    app = web.Application()
    app.router.add_get("/file/{bot}/{path:.*}", download)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_failed_download_exports_no_token_in_any_span_field(
    file_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector = ZipkinCollector()
    await collector.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.base_url)
    raw, scrubbed = InMemorySpanExporter(), InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "gateway"}))
    # What the instrumentation produced, before any scrubbing: the test's witness.
    provider.add_span_processor(SimpleSpanProcessor(raw))
    # What leaves the process: the in-memory copy and OTLP to the collector.
    provider.add_span_processor(
        telemetry.SpanHygiene(
            [
                SimpleSpanProcessor(scrubbed),
                telemetry.batch_processor(telemetry.make_exporters(_otlp())[0]),
            ]
        )
    )
    trace_config = create_trace_config(
        url_filter=lambda url: telemetry.redact(str(url)), tracer_provider=provider
    )
    url = f"{file_server}/file/bot{TOKEN}/voice/file_7.oga"
    try:
        async with aiohttp.ClientSession(trace_configs=[trace_config]) as http:
            with pytest.raises(aiohttp.ClientResponseError):
                async with http.get(url, raise_for_status=True):
                    pass
        await asyncio.to_thread(provider.force_flush)
        await collector.wait_for_spans(lambda spans: len(spans) == 1, 10)
    finally:
        await asyncio.to_thread(provider.shutdown)
        await collector.stop()

    (before,) = raw.get_finished_spans()
    (exception,) = [e for e in before.events if e.name == "exception"]
    assert exception.attributes is not None
    assert SECRET in str(exception.attributes["exception.message"])
    assert SECRET in str(exception.attributes["exception.stacktrace"])

    (after,) = scrubbed.get_finished_spans()
    assert after.name == "get"  # lowercase, as Zipkin's spec asks
    assert not [text for text in _texts(after) if SECRET in text]
    (clean,) = [e for e in after.events if e.name == "exception"]
    assert clean.attributes is not None
    assert "/file/bot<redacted>/voice/file_7.oga" in str(clean.attributes["exception.message"])
    assert after.context == before.context and after.status.status_code is StatusCode.ERROR
    # And at the collector, in whatever shape it stored the span.
    assert collector.violations == []
    assert SECRET not in json.dumps(collector.spans)
    assert "500" in json.dumps(collector.spans)


def _otlp() -> TelemetrySettings:
    return TelemetrySettings(service_name="gateway", exporter="otlp")


def test_dsn_passwords_and_configured_tokens_leave_no_field() -> None:
    memory = InMemorySpanExporter()
    redactor = telemetry.Redactor(["short", "A-Configured-Secret-Value"])
    provider = TracerProvider()
    provider.add_span_processor(telemetry.SpanHygiene([SimpleSpanProcessor(memory)], redactor))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span(f"connect {DSN} as A-Configured-Secret-Value") as span:
        span.set_attribute("db.connection_string", DSN)
        span.set_attribute("notes", ("fine", f"token {TOKEN}"))
        span.add_event("retry", {"why": "A-Configured-Secret-Value rejected"})
        span.set_status(Status(StatusCode.ERROR, f"cannot reach {DSN}"))
    (out,) = memory.get_finished_spans()
    texts = _texts(out)
    for secret in (PASSWORD, SECRET, "A-Configured-Secret-Value", "a-configured-secret-value"):
        assert not [t for t in texts if secret in t], secret
    assert out.attributes is not None
    assert out.attributes["db.connection_string"] == (
        "postgresql://billing:<redacted>@db.internal:5432/billing"
    )
    assert (
        out.name == "connect postgresql://billing:<redacted>@db.internal:5432/billing as <redacted>"
    )
    # A configured value too short to be told from ordinary words is left to the patterns.
    assert redactor.redact("short answer") == "short answer"


def test_spans_without_secrets_pass_unchanged() -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(telemetry.SpanHygiene([SimpleSpanProcessor(memory)]))
    with provider.get_tracer("test").start_as_current_span("EVALSHA") as span:
        span.set_attribute("db.statement", "EVALSHA ? 1 outbox")
    (out,) = memory.get_finished_spans()
    assert out.name == "evalsha"
    assert out.attributes == {"db.statement": "EVALSHA ? 1 outbox"}
    assert telemetry.REDACTOR.span(out) is out  # no copy when there is nothing to scrub


def test_log_lines_and_error_texts_carry_no_secret() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("gateway"))
    logger = logging.getLogger("test.secrets")
    logger.addHandler(handler)
    try:
        try:
            raise RuntimeError(f"connect to {DSN} failed; url /bot{TOKEN}/getFile")
        except RuntimeError:
            logger.exception("download from %s failed", f"https://api.telegram.org/bot{TOKEN}/x")
    finally:
        logger.removeHandler(handler)
    line = stream.getvalue()
    assert "download from" in line and "<redacted>" in line
    assert SECRET not in line and PASSWORD not in line

    err = Unavailable(f"telegram: GET /file/bot{TOKEN}/a.oga: 500 via {DSN}")
    err.metadata["url"] = f"/bot{TOKEN}/getFile"
    status = err.to_status("gateway.voxmesh", "")
    assert isinstance(status, status_pb2.Status)
    assert err.code is grpc.StatusCode.UNAVAILABLE
    wire = status.SerializeToString()
    assert SECRET.encode() not in wire and PASSWORD.encode() not in wire
    assert "/file/bot<redacted>/a.oga" in status.message
