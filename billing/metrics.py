"""Billing's own metrics, read from the database the ledger lives in.

Counting in the servicer would double count retried requests and miss what
other replicas did; the ledger is the truth, so each reaper pass takes a
snapshot of it and every replica reports the same totals (dashboards take the
max across pods).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from billing.domain import Stats


def write_conflicts(registry: CollectorRegistry) -> Counter:
    """Guarded writes that lost to a concurrent writer and read again.

    Counted where it happens (one replica's view): a steady rate means many
    calls at once on the same accounts, each paying an extra read and write.
    """
    return Counter(
        "voxmesh_billing_write_conflicts",
        "Hold writes that found their rows changed since the read, by method.",
        ["method"],
        registry=registry,
    )


class BillingMetrics(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self._stats = Stats(0, 0, 0, 0, 0, 0, 0)
        registry.register(self)

    def update(self, stats: Stats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        s = self._stats
        yield GaugeMetricFamily(
            "voxmesh_billing_holds_open", "Holds pending now.", value=s.holds_pending
        )
        yield GaugeMetricFamily(
            "voxmesh_billing_credits_held", "Credits in pending holds.", value=s.credits_held
        )
        yield CounterMetricFamily(
            "voxmesh_billing_credits_captured",
            "Credits captured, all time.",
            value=s.credits_captured,
        )
        yield CounterMetricFamily(
            "voxmesh_billing_credits_topped_up",
            "Credits topped up, all time.",
            value=s.credits_topped_up,
        )
        yield CounterMetricFamily(
            "voxmesh_billing_credits_top_up_refunded",
            "Credits of refunded payments taken back (RefundTopUp), all time.",
            value=s.credits_top_up_refunded,
        )
        yield CounterMetricFamily(
            "voxmesh_billing_holds_expired",
            "Holds the reaper expired, all time.",
            value=s.holds_expired,
        )
        yield GaugeMetricFamily("voxmesh_billing_users", "Users known.", value=s.users)
