"""Tracing for the CLI: where its own spans go, and ``voxmesh trace`` (a trace as a tree)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

from voxmesh.cli.targets import Subparsers, running_record, use_running_mesh
from voxmesh.config import TelemetrySettings


class _OneLineWarning(logging.Handler):
    """OpenTelemetry's export errors as one stderr line, once, without a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.said = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.said:
            self.said = True
            print(f"voxmesh: warning: spans not exported ({record.getMessage()})", file=sys.stderr)


def _reachable(url: str, timeout: float = 0.5) -> bool:
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def cli_telemetry(args: argparse.Namespace) -> TelemetrySettings:
    """Tracing settings for a CLI command: spans go to the running mesh's collector.

    OpenTelemetry's own variables still decide (the SDK reads the endpoints from
    the process environment); where none names an endpoint, the collector that
    ``voxmesh up`` recorded is used. A collector that does not answer is one
    warning line and no export, never a traceback or a stall at exit.
    """
    use_running_mesh(args)
    settings = TelemetrySettings.from_env(os.environ, "voxmesh-cli")
    otel_log = logging.getLogger("opentelemetry")
    otel_log.addHandler(_OneLineWarning())
    otel_log.propagate = False
    endpoints = {
        "otlp": os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or "http://localhost:4318",
        "zipkin": os.environ.get("OTEL_EXPORTER_ZIPKIN_ENDPOINT")
        or "http://localhost:9411/api/v2/spans",
    }
    missing = [endpoints[e] for e in settings.exporters if e in endpoints]
    missing = [url for url in missing if not _reachable(url)]
    if missing:
        print(
            f"voxmesh: warning: no trace collector at {missing[0]}; spans are not exported",
            file=sys.stderr,
        )
        settings = dataclasses.replace(settings, exporter="none")
    return settings


# ---------------------------------------------------------------- voxmesh trace


def add_trace(sub: Subparsers) -> None:
    p = sub.add_parser(
        "trace",
        help="show a user's reference (trace id): its tree, or its Zipkin URL",
        description=(
            "With the local collector of a running `voxmesh up` (and no ZIPKIN_UI_URL), print "
            "the trace as a tree with timings; otherwise print its Zipkin URL."
        ),
    )
    p.add_argument("ref", help="the trace id a user was given (16 or 32 hex digits)")
    p.set_defaults(func=cmd_trace)


def cmd_trace(args: argparse.Namespace) -> int:
    ref = args.ref.strip().lower()
    if len(ref) not in (16, 32) or any(c not in "0123456789abcdef" for c in ref):
        print(
            f"voxmesh trace: {args.ref!r} is not a trace id (16 or 32 hex digits)", file=sys.stderr
        )
        return 2
    collector = running_record(args).get("collector")
    if collector and "ZIPKIN_UI_URL" not in os.environ:
        try:
            with urllib.request.urlopen(f"{collector}/api/v2/trace/{ref}", timeout=10) as resp:  # noqa: S310 - our own collector's http URL
                spans = json.load(resp)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                print(f"voxmesh trace: no trace {ref} in the local collector", file=sys.stderr)
                return 1
            raise
        for line in trace_tree(spans):
            print(line)
        return 0
    settings = TelemetrySettings.from_env(os.environ, "cli")
    print(f"{settings.zipkin_ui_url.rstrip('/')}/traces/{ref}")
    return 0


def trace_tree(spans: Sequence[Mapping[str, Any]]) -> list[str]:
    """Zipkin v2 spans as an indented tree: offset from the trace's start, duration, service."""
    if not spans:
        return []
    by_id = {str(s["id"]): s for s in spans}
    children: dict[str | None, list[Mapping[str, Any]]] = {}
    for s in spans:
        parent = s.get("parentId")
        children.setdefault(str(parent) if parent in by_id else None, []).append(s)
    start = min(int(s.get("timestamp", 0)) for s in spans)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for s in sorted(children.get(parent, []), key=lambda s: int(s.get("timestamp", 0))):
            offset = (int(s.get("timestamp", 0)) - start) / 1000
            took = int(s.get("duration", 0)) / 1000
            service = s.get("localEndpoint", {}).get("serviceName", "?")
            error = "  ERROR" if "error" in s.get("tags", {}) else ""
            lines.append(
                f"{offset:9.1f} ms {took:9.1f} ms  {'  ' * depth}{s.get('name', '?')}"
                f"  [{service}]{error}"
            )
            walk(str(s["id"]), depth + 1)

    walk(None, 0)
    return [f"{'start':>12} {'duration':>12}  span  [service]", *lines]
