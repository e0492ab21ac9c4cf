"""OTLP/HTTP trace exports translated to Zipkin v2 spans, as Zipkin's zipkin-otel module does.

The collector's ``POST /v1/traces`` door: the service name comes from the resource;
``remoteEndpoint`` of client and producer spans from ``peer.service`` or
``network.peer.address``; attributes, the resource's other attributes, status and scope become
tags; events become annotations. What comes out is validated like any Zipkin JSON span.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

__all__ = ["otlp_to_zipkin"]

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
