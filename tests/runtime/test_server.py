"""The shared runtime over real sockets: health, reflection, errors, deadlines, drain.

The servicers here are small test doubles of the real contracts, so the
runtime is checked on its own; the services' own suites cover their logic.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import generate_latest

from billing.v1 import billing_pb2, billing_pb2_grpc
from notifier.v1 import notifier_pb2, notifier_pb2_grpc
from transcriber.v1 import transcriber_pb2, transcriber_pb2_grpc
from voxmesh.channels import dial
from voxmesh.errors import FailedPrecondition, error_details
from voxmesh.server import GrpcServer, ServerSettings, ServiceSpec


class SlowNotifier(notifier_pb2_grpc.NotifierServiceServicer):
    """Hop 2: works until cancelled, and records that it was."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.finished = False

    async def Send(
        self, request: notifier_pb2.SendRequest, context: grpc.aio.ServicerContext
    ) -> notifier_pb2.SendResponse:
        self.started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        self.finished = True
        return notifier_pb2.SendResponse(message_id=1)


class Hop1Billing(billing_pb2_grpc.BillingServiceServicer):
    """Hop 1: calls hop 2 while serving, with no timeout of its own."""

    def __init__(self, downstream: notifier_pb2_grpc.NotifierServiceStub | None) -> None:
        self.downstream = downstream
        self.downstream_error: grpc.StatusCode | None = None

    async def GetBalance(
        self, request: billing_pb2.GetBalanceRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.GetBalanceResponse:
        assert self.downstream is not None
        try:
            await self.downstream.Send(notifier_pb2.SendRequest(idempotency_key="k", chat_id=1))
        except grpc.aio.AioRpcError as exc:
            self.downstream_error = exc.code()
            raise
        return billing_pb2.GetBalanceResponse()

    async def Quote(
        self, request: billing_pb2.QuoteRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.QuoteResponse:
        if request.duration_seconds == 1:
            raise FailedPrecondition(
                "not enough credits", reason="INSUFFICIENT_FUNDS", metadata={"required_credits": 7}
            )
        if request.duration_seconds == 2:
            raise RuntimeError("secret internals /bot123:abc traceback")
        if request.duration_seconds == 3:
            await asyncio.sleep(5)  # longer than the default deadline below
        return billing_pb2.QuoteResponse(amount_credits=request.duration_seconds)


class SlowTranscriber(transcriber_pb2_grpc.TranscriberServiceServicer):
    async def Transcribe(
        self,
        request_iterator: AsyncIterator[transcriber_pb2.TranscribeRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[transcriber_pb2.TranscribeResponse]:
        n = 0
        async for _ in request_iterator:
            n += 1
        for i in range(5):
            await asyncio.sleep(0.2)
            yield transcriber_pb2.TranscribeResponse(
                segment=transcriber_pb2.Segment(segment_id=i, text=f"chunk {i} of {n}", final=True)
            )
        yield transcriber_pb2.TranscribeResponse(done=transcriber_pb2.Done(segment_count=5))


def _settings(name: str, **kw: Any) -> ServerSettings:
    return ServerSettings(service=name, listen="127.0.0.1:0", **kw)


def _spec_billing(servicer: billing_pb2_grpc.BillingServiceServicer) -> ServiceSpec:
    return ServiceSpec(
        billing_pb2.DESCRIPTOR.services_by_name["BillingService"].full_name,
        lambda s: billing_pb2_grpc.add_BillingServiceServicer_to_server(servicer, s),
    )


async def test_health_is_not_serving_until_ready_and_after_stop() -> None:
    server = GrpcServer(_settings("billing"), [_spec_billing(Hop1Billing(None))], domain="b")
    await server.start()
    async with dial(server.address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        name = "billing.v1.BillingService"
        got = await stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=2)
        assert got.status == health_pb2.HealthCheckResponse.NOT_SERVING
        await server.set_serving(True)
        got = await stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=2)
        assert got.status == health_pb2.HealthCheckResponse.SERVING
        watch = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=5)
        first = await watch.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        stop = asyncio.create_task(server.stop(grace=0.5))
        second = await watch.read()
        assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING
        await stop


async def test_service_error_carries_error_info_and_trace_id_field() -> None:
    server = GrpcServer(
        _settings("billing"), [_spec_billing(Hop1Billing(None))], domain="billing.voxmesh"
    )
    await server.start()
    try:
        async with dial(server.address) as ch:
            stub = billing_pb2_grpc.BillingServiceStub(ch)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Quote(billing_pb2.QuoteRequest(duration_seconds=1), timeout=2)
            details = error_details(info.value)
            assert details.code == grpc.StatusCode.FAILED_PRECONDITION
            assert details.reason == "INSUFFICIENT_FUNDS"
            assert details.domain == "billing.voxmesh"
            assert details.metadata is not None and details.metadata["required_credits"] == "7"
    finally:
        await server.stop(0)


async def test_unexpected_exception_is_internal_without_internals() -> None:
    server = GrpcServer(_settings("billing"), [_spec_billing(Hop1Billing(None))], domain="b")
    await server.start()
    try:
        async with dial(server.address) as ch:
            stub = billing_pb2_grpc.BillingServiceStub(ch)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Quote(billing_pb2.QuoteRequest(duration_seconds=2), timeout=2)
            assert info.value.code() == grpc.StatusCode.INTERNAL
            assert "secret" not in (info.value.details() or "")
            assert "Traceback" not in (info.value.details() or "")
            assert error_details(info.value).reason == "INTERNAL"
        text = generate_latest(server.metrics.registry).decode()
        assert 'grpc_code="Internal",grpc_method="Quote"' in text
    finally:
        await server.stop(0)


async def test_client_bounds_a_unary_call_that_has_no_deadline() -> None:
    # The server would wait a minute: the client's default ends the call first.
    settings = _settings("billing", default_deadline_seconds=60)
    specs = [
        _spec_billing(Hop1Billing(None)),
        ServiceSpec(
            transcriber_pb2.DESCRIPTOR.services_by_name["TranscriberService"].full_name,
            lambda s: transcriber_pb2_grpc.add_TranscriberServiceServicer_to_server(
                SlowTranscriber(), s
            ),
        ),
    ]
    server = GrpcServer(settings, specs, domain="b")
    await server.start()
    try:
        async with dial(server.address, default_timeout=0.5) as ch:
            stub = billing_pb2_grpc.BillingServiceStub(ch)
            start = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Quote(billing_pb2.QuoteRequest(duration_seconds=3))  # no timeout
            assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert time.monotonic() - start < 2
            # The caller's own timeout still wins over the default.
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Quote(billing_pb2.QuoteRequest(duration_seconds=3), timeout=0.1)
            assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert time.monotonic() - start < 2.5
            # A stream is not cut at the default: its caller bounds it.
            call = transcriber_pb2_grpc.TranscriberServiceStub(ch).Transcribe(
                iter([transcriber_pb2.TranscribeRequest()])
            )
            got = [r async for r in call]
            assert got[-1].HasField("done") and len(got) == 6
    finally:
        await server.stop(0)


async def test_call_without_deadline_gets_the_default() -> None:
    settings = _settings("billing", default_deadline_seconds=0.5)
    server = GrpcServer(settings, [_spec_billing(Hop1Billing(None))], domain="b")
    await server.start()
    try:
        async with dial(server.address, default_timeout=None) as ch:  # a bare caller
            stub = billing_pb2_grpc.BillingServiceStub(ch)
            start = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Quote(billing_pb2.QuoteRequest(duration_seconds=3))  # no timeout
            assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert time.monotonic() - start < 3
    finally:
        await server.stop(0)


async def test_deadline_propagates_two_hops_and_cancels_downstream_work() -> None:
    hop2 = SlowNotifier()
    server2 = GrpcServer(
        _settings("notifier"),
        [
            ServiceSpec(
                "notifier.v1.NotifierService",
                lambda s: notifier_pb2_grpc.add_NotifierServiceServicer_to_server(hop2, s),
            )
        ],
        domain="n",
    )
    await server2.start()
    ch2 = dial(server2.address)
    hop1 = Hop1Billing(notifier_pb2_grpc.NotifierServiceStub(ch2))
    server1 = GrpcServer(_settings("billing"), [_spec_billing(hop1)], domain="b")
    await server1.start()
    try:
        async with dial(server1.address) as ch1:
            stub = billing_pb2_grpc.BillingServiceStub(ch1)
            start = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.GetBalance(billing_pb2.GetBalanceRequest(user_id=1), timeout=1.0)
            elapsed = time.monotonic() - start
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert elapsed < 2.0
        assert hop2.started.is_set()
        # The downstream work itself stopped, not only the client's wait.
        await asyncio.wait_for(hop2.cancelled.wait(), 2)
        assert not hop2.finished
        # Hop 1's own outgoing call ended DEADLINE_EXCEEDED too (its deadline
        # was derived from the caller's, minus the margin).
        for _ in range(20):
            if hop1.downstream_error is not None:
                break
            await asyncio.sleep(0.05)
        assert hop1.downstream_error == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        await ch2.close()
        await server1.stop(0)
        await server2.stop(0)


async def test_graceful_drain_finishes_open_stream_and_refuses_new_calls() -> None:
    servicer = SlowTranscriber()
    server = GrpcServer(
        _settings("transcriber", grace_seconds=5),
        [
            ServiceSpec(
                "transcriber.v1.TranscriberService",
                lambda s: transcriber_pb2_grpc.add_TranscriberServiceServicer_to_server(
                    servicer, s
                ),
            )
        ],
        domain="t",
    )
    await server.start()
    await server.set_serving(True)
    async with dial(server.address) as ch:
        stub = transcriber_pb2_grpc.TranscriberServiceStub(ch)

        async def requests() -> AsyncIterator[transcriber_pb2.TranscribeRequest]:
            yield transcriber_pb2.TranscribeRequest(config=transcriber_pb2.TranscriptionConfig())
            yield transcriber_pb2.TranscribeRequest(audio=b"x")

        call = stub.Transcribe(requests(), timeout=10)
        first = await call.read()
        assert first.segment.text.startswith("chunk 0")
        stopping = asyncio.create_task(server.stop())
        await asyncio.sleep(0.1)
        health = health_pb2_grpc.HealthStub(dial(server.address))
        with pytest.raises(grpc.aio.AioRpcError):
            # New calls are refused while draining (no new streams on this server).
            await health.Check(health_pb2.HealthCheckRequest(), timeout=1, wait_for_ready=False)
        rest = [r async for r in call]
        assert [r.segment.segment_id for r in rest if r.HasField("segment")] == [1, 2, 3, 4]
        assert rest[-1].HasField("done")
        assert await call.code() == grpc.StatusCode.OK
        await stopping


async def test_generic_handlers_get_the_same_call_frame() -> None:
    """A service registered only as a generic handler (older generated code,
    hand-written handlers) is wrapped like a registered one: errors mapped,
    metrics counted; a method nobody serves stays UNIMPLEMENTED."""
    servicer = Hop1Billing(None)
    handlers = {
        "Quote": grpc.unary_unary_rpc_method_handler(
            servicer.Quote,
            request_deserializer=billing_pb2.QuoteRequest.FromString,
            response_serializer=billing_pb2.QuoteResponse.SerializeToString,
        )
    }
    name = billing_pb2.DESCRIPTOR.services_by_name["BillingService"].full_name
    generic = grpc.method_handlers_generic_handler(name, handlers)
    spec = ServiceSpec(name, lambda s: s.add_generic_rpc_handlers((generic,)))
    server = GrpcServer(_settings("billing"), [spec], domain="billing.voxmesh")
    await server.start()
    try:
        async with dial(server.address) as ch:
            stub = billing_pb2_grpc.BillingServiceStub(ch)
            for _ in range(2):  # the second call takes the cached wrapper
                got = await stub.Quote(billing_pb2.QuoteRequest(duration_seconds=5), timeout=2)
                assert got.amount_credits == 5
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Quote(billing_pb2.QuoteRequest(duration_seconds=1), timeout=2)
            assert error_details(info.value).reason == "INSUFFICIENT_FUNDS"
            with pytest.raises(grpc.aio.AioRpcError) as missing:
                await stub.GetUser(billing_pb2.GetUserRequest(user_id=1), timeout=2)
            assert missing.value.code() == grpc.StatusCode.UNIMPLEMENTED
        text = generate_latest(server.metrics.registry).decode()
        labels = 'grpc_method="Quote",grpc_service="billing.v1.BillingService",grpc_type="unary"'
        assert f'grpc_server_handled_total{{grpc_code="OK",{labels}}} 2.0' in text
        assert f'grpc_server_handled_total{{grpc_code="FailedPrecondition",{labels}}} 1.0' in text
        assert f"grpc_server_started_total{{{labels}}} 3.0" in text
        assert f"grpc_server_handling_seconds_count{{{labels}}} 3.0" in text
        assert "process_cpu_seconds_total" in text and "python_info{" in text
        assert 'voxmesh_build_info{python_version="' in text
        assert not re.search(r'[{,](service|job|instance)="', text)
    finally:
        await server.stop(0)
