"""A voice note through the whole mesh: emulator -> gateway -> billing, transcriber, notifier."""

from __future__ import annotations

import asyncio
import json
import pathlib
import re
import subprocess
import sys

import aiohttp
import pytest

from billing.v1 import billing_pb2, billing_pb2_grpc
from tests.e2e.conftest import DB_PASSWORD
from tests.helpers import reference_text, wer
from voxmesh.audiofiles import encode
from voxmesh.channels import dial
from voxmesh_dev.mesh import Mesh
from voxmesh_dev.telegram import FaultPolicy

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

SERVICES = {"gateway", "billing", "transcriber", "notifier"}


async def _final_text(mesh: Mesh, chat_id: int, timeout: float = 120) -> list:  # type: ignore[type-arg]
    emu = mesh.emulator

    def finished() -> bool:
        msgs = emu.messages(chat_id)
        return bool(msgs) and bool(msgs[0].edits) and not msgs[0].edits[-1].endswith("…")

    await emu.wait_for(finished, timeout)
    return list(emu.messages(chat_id))


async def test_voice_note_end_to_end(mesh: Mesh, shared_audio: pathlib.Path) -> None:
    emu, collector = mesh.emulator, mesh.collector
    chat_id = user_id = 700001
    ogg = encode(shared_audio / "jfk.flac")
    file_id = emu.add_file(ogg, mime_type="audio/ogg")
    async with dial(mesh.target("billing")) as ch:
        billing = billing_pb2_grpc.BillingServiceStub(ch)
        await billing.EnsureUser(billing_pb2.EnsureUserRequest(user_id=user_id), timeout=5)
        before = (
            await billing.GetBalance(billing_pb2.GetBalanceRequest(user_id=user_id))
        ).balance_credits

        emu.push_update(
            emu.make_message_update(chat_id=chat_id, user_id=user_id, voice=(file_id, 11))
        )
        msgs = await _final_text(mesh, chat_id)

        placeholder = msgs[0]
        assert placeholder.reply_to_message_id is not None
        assert "Transcribing" in (placeholder.first_text or "")
        final = placeholder.edits[-1]
        assert wer(reference_text(shared_audio, "jfk.flac"), final) <= 0.10, final

        # The text reaches the user before the capture commits: wait for the charge.
        for _ in range(100):
            page = await billing.ListTransactions(
                billing_pb2.ListTransactionsRequest(user_id=user_id, page_size=10)
            )
            if any(tx.kind == billing_pb2.TRANSACTION_KIND_CAPTURE for tx in page.transactions):
                break
            await asyncio.sleep(0.1)
        after = await billing.GetBalance(billing_pb2.GetBalanceRequest(user_id=user_id))
    captures = [tx for tx in page.transactions if tx.kind == billing_pb2.TRANSACTION_KIND_CAPTURE]
    assert len(captures) == 1
    captured = -captures[0].amount_credits
    assert captured > 0
    assert after.balance_credits == before - captured
    assert after.held_credits == 0

    # One trace for the update, with every service's spans correctly parented.
    def have_all(spans: list[dict]) -> bool:  # type: ignore[type-arg]
        # The root span ends last (after the capture), so wait for it too.
        by_trace: dict[str, set[str]] = {}
        for s in spans:
            by_trace.setdefault(s["traceId"], set()).add(s["localEndpoint"]["serviceName"])
            if s["name"] == "telegram.update/message":
                by_trace[s["traceId"]].add("root")
        return any({*SERVICES, "root"} <= names for names in by_trace.values())

    await collector.wait_for_spans(have_all, 20)
    traces = {
        tid: spans
        for tid, spans in collector.traces().items()
        if any(s["name"].startswith("telegram.update/message") for s in spans)
        and any(s.get("tags", {}).get("telegram.update_type") == "message" for s in spans)
    }
    ours = [
        tid
        for tid, spans in traces.items()
        if {s["localEndpoint"]["serviceName"] for s in spans} >= SERVICES
    ]
    summary = {
        tid: sorted({(sp["localEndpoint"]["serviceName"], sp["name"]) for sp in spans})
        for tid, spans in collector.traces().items()
        if len(spans) > 3
    }
    assert len(ours) == 1, f"expected one trace with all services: {summary}"
    spans = collector.trace(ours[0])
    by_id = {s["id"]: s for s in spans}
    roots = [s for s in spans if "parentId" not in s]
    assert len(roots) == 1 and roots[0]["localEndpoint"]["serviceName"] == "gateway"
    servers = [s for s in spans if s.get("kind") == "SERVER"]
    assert {s["localEndpoint"]["serviceName"] for s in servers} >= {
        "billing",
        "transcriber",
        "notifier",
    }
    for server in servers:
        parent = by_id.get(server["parentId"])
        assert parent is not None, (
            f"server span {server['name']} has no parent in the trace: {server} "
            f"{sorted((sp['name'], sp.get('kind', ''), sp['id']) for sp in spans)}"
        )
        assert parent["kind"] == "CLIENT" and parent["name"] == server["name"]
    assert collector.violations == []
    # Names as Zipkin's v2 spec asks, the SQL, Redis and HTTP instrumentations' included:
    # lowercase, and no ids (a name is what the UI's span-name filter lists).
    names = {sp["name"] for sp in collector.spans}
    assert {"evalsha", "get", "post"} & names, names
    for name in names:
        assert name == name.lower(), name
        assert not re.search(r"\d{5,}|[0-9a-f]{8}-[0-9a-f]{4}-", name), name
    # Every hop: SQL statements, Redis commands and Telegram HTTP calls are in the trace.
    tags = [(sp["localEndpoint"]["serviceName"], sp.get("tags", {})) for sp in spans]
    assert any(svc == "billing" and t.get("db.system") == "postgresql" for svc, t in tags)
    assert any(svc == "notifier" and t.get("db.system") == "redis" for svc, t in tags)
    telegram_http = [
        t
        for svc, t in tags
        if "api.telegram" in str(t)
        or "/bot" in str(t.get("http.url", ""))
        or "/bot" in str(t.get("url.full", ""))
    ]
    assert telegram_http, "no Telegram HTTP span in the trace"
    # The notifier's worker sends in the caller's trace: delivery span, then the HTTP call.
    deliveries = [sp for sp in spans if sp["name"].startswith("notifier.deliver/")]
    assert deliveries
    delivery_ids = {sp["id"] for sp in deliveries}
    assert any(
        sp.get("parentId") in delivery_ids
        and sp.get("kind") == "CLIENT"
        and "<redacted>" in json.dumps(sp.get("tags", {}))
        for sp in spans
    ), "no redacted Telegram HTTP call under a notifier delivery span"
    # Neither the bot token nor the database password reaches a span, a log or a metric.
    token = mesh.env["TELEGRAM_BOT_TOKEN"]
    dumped = json.dumps(collector.spans)
    for secret in (token, DB_PASSWORD):
        assert secret not in dumped
        for name in SERVICES:
            assert secret not in mesh.log_text(name), f"a secret in the {name} log"
    async with aiohttp.ClientSession() as http:
        for name in SERVICES:
            async with http.get(mesh.metrics_url(name)) as resp:
                metrics_text = await resp.text()
            assert resp.status == 200
            assert token not in metrics_text and DB_PASSWORD not in metrics_text
            # go-grpc-prometheus's names, as SREs' dashboards expect: the servers'
            # side everywhere, the gateway's calls as the client side.
            side = "client" if name == "gateway" else "server"
            assert f'grpc_{side}_handled_total{{grpc_code="OK"' in metrics_text
            assert f"grpc_{side}_handling_seconds_bucket" in metrics_text
            assert "process_resident_memory_bytes" in metrics_text
            assert not re.search(r'[{,](service|job|instance)="', metrics_text)


async def test_cli_transcribe_prints_reference_text(mesh: Mesh, shared_audio: pathlib.Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voxmesh.cli",
        "transcribe",
        str(shared_audio / "jfk.flac"),
        "--target",
        mesh.target("transcriber"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**mesh.env, "OTEL_SERVICE_NAME": "voxmesh-cli", "PATH": "/usr/bin:/bin"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    # stdout is the transcript alone; the reference (trace id) goes to stderr.
    text = out.decode().strip()
    assert wer(reference_text(shared_audio, "jfk.flac"), text) <= 0.10, text
    reference = err.decode().rsplit("reference: ", 1)[1].split()[0]
    assert len(reference) == 32 and reference not in text


async def test_failed_download_reaches_no_span_or_log_with_the_token(mesh: Mesh) -> None:
    """Telegram's file server answers HTTP 500: the user gets a reply, and the aiohttp
    instrumentation's exception event (whose message holds the download URL) reaches
    the collector with the token scrubbed."""
    emu, collector = mesh.emulator, mesh.collector
    chat_id = user_id = 700003
    file_id = emu.add_file(b"OggS" + bytes(2000), mime_type="audio/ogg")
    emu.faults = FaultPolicy(rate_500=1.0, methods=frozenset({"download"}))
    try:
        emu.push_update(
            emu.make_message_update(chat_id=chat_id, user_id=user_id, voice=(file_id, 5))
        )
        msgs = await _final_text(mesh, chat_id)
    finally:
        emu.faults = FaultPolicy()
    assert "Transcribing" not in msgs[0].edits[-1]  # told, in words, not left waiting

    def failed_download(spans: list[dict]) -> bool:  # type: ignore[type-arg]
        return any(
            s["localEndpoint"]["serviceName"] == "gateway"
            and "/file/bot" in json.dumps(s.get("tags", {}))
            and any('"exception"' in a["value"] for a in s.get("annotations", []))
            for s in spans
        )

    await collector.wait_for_spans(failed_download, 20)
    exceptions = [
        a["value"]
        for s in collector.spans
        if "/file/bot" in json.dumps(s.get("tags", {}))
        for a in s.get("annotations", [])
        if '"exception"' in a["value"]
    ]
    # The exception's message named the URL, and the URL's token is gone from it.
    assert any("/file/bot<redacted>/" in value for value in exceptions), exceptions
    token = mesh.env["TELEGRAM_BOT_TOKEN"]
    assert token not in json.dumps(collector.spans)
    assert token.split(":", 1)[1] not in json.dumps(collector.spans)
    for name in SERVICES:
        assert token not in mesh.log_text(name)
