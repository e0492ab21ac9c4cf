"""Billing metrics come from the ledger: holds open, credits captured, holds expired."""

from __future__ import annotations

from prometheus_client import generate_latest

from billing.v1 import billing_pb2 as pb
from tests.billing.billing_support import Running, job


def _value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


async def test_reaper_pass_publishes_ledger_totals(billing: Running) -> None:
    stub = billing.stub
    assert billing.app.reaper is not None
    await billing.app.reaper.run_once()
    registry = billing.app.server.metrics.registry
    before = generate_latest(registry).decode()
    captured0 = _value(before, "voxmesh_billing_credits_captured_total")
    open0 = _value(before, "voxmesh_billing_holds_open")

    await stub.EnsureUser(pb.EnsureUserRequest(user_id=9101), timeout=5)
    held = await stub.Reserve(
        pb.ReserveRequest(idempotency_key="m1", user_id=9101, amount_credits=5, job=job(91)),
        timeout=5,
    )
    second = await stub.Reserve(
        pb.ReserveRequest(idempotency_key="m2", user_id=9101, amount_credits=3, job=job(92)),
        timeout=5,
    )
    await stub.Capture(
        pb.CaptureRequest(idempotency_key="m3", hold_id=held.hold.hold_id, amount_credits=4),
        timeout=5,
    )
    # An extension is held credits too, and a refunded payment is counted.
    await stub.ExtendHold(
        pb.ExtendHoldRequest(idempotency_key="m4", hold_id=second.hold.hold_id, amount_credits=9),
        timeout=5,
    )
    await stub.TopUp(
        pb.TopUpRequest(
            idempotency_key="m5",
            user_id=9101,
            amount_credits=7,
            provider="telegram_stars",
            provider_charge_id="m5",
        ),
        timeout=5,
    )
    await stub.RefundTopUp(
        pb.RefundTopUpRequest(
            idempotency_key="m6", provider="telegram_stars", provider_charge_id="m5"
        ),
        timeout=5,
    )
    await billing.app.reaper.run_once()
    after = generate_latest(registry).decode()
    assert _value(after, "voxmesh_billing_credits_captured_total") == captured0 + 4
    assert _value(after, "voxmesh_billing_holds_open") == open0 + 1
    assert _value(after, "voxmesh_billing_credits_held") == 9
    assert _value(after, "voxmesh_billing_credits_top_up_refunded_total") == 7
    assert "voxmesh_billing_holds_expired_total" in after
