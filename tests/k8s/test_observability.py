"""Observability as deployed: the Collector between the services and Zipkin, the dashboard
and alerts on the metrics the services really export, every alert with a runbook."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from tests.k8s.render import K8S_DIR, Manifest
from tests.k8s.test_manifests import (
    SERVICES,
    containers,
    env_of,
    grafana_to_promql,
    main_container,
    metric_names,
    of_kind,
    one,
    pod_spec,
    port_named,
    workloads,
)

RUNBOOK = Path(__file__).resolve().parents[2] / "docs" / "runbook.md"
RUNBOOK_URL = "https://github.com/voxmesh/voxmesh/blob/main/docs/runbook.md#"
COLLECTOR_IMAGE = "otel/opentelemetry-collector-contrib"


def exported_metrics() -> set[str]:
    """Every series name the four services can export, from their own registries."""
    from billing.metrics import BillingMetrics, write_conflicts
    from gateway.app import Guards, build_dispatcher
    from gateway.config import GatewaySettings
    from notifier.metrics import NotifierMetrics
    from transcriber.metrics import TranscriberMetrics
    from voxmesh.metrics import ClientMetrics, Metrics, register_process_metrics

    servers = CollectorRegistry()  # billing's, the notifier's and the transcriber's, together
    Metrics("any", servers)
    BillingMetrics(servers)
    write_conflicts(servers)
    NotifierMetrics(servers)
    TranscriberMetrics(servers, {}, "cuda")
    gateway = CollectorRegistry()
    register_process_metrics(gateway)
    ClientMetrics(gateway)
    # The gateway makes its counters while wiring its dispatcher; nothing here runs.
    build_dispatcher(
        services=None,  # type: ignore[arg-type]
        jobs=None,  # type: ignore[arg-type]
        prefs=None,  # type: ignore[arg-type]
        payments=None,  # type: ignore[arg-type]
        guards=Guards(limiter=None, dedupe=None),  # type: ignore[arg-type]
        settings=GatewaySettings.from_env({"TELEGRAM_BOT_TOKEN": "1:unused"}),
        registry=gateway,
    )
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("_count", "_sum", "_created"),
    }
    names: set[str] = set()
    for family in (*servers.collect(), *gateway.collect()):
        names.add(family.name)
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    # Scraped from the sidecars and operators the manifests deploy, not from our code.
    return names | {"up", "redis_up", "cnpg_collector_up"}


def load_dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (K8S_DIR / "observability" / "grafana-dashboard.json").read_text()
    )
    return data


def load_alert_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(
        (K8S_DIR / "observability" / "alerts.yaml").read_text()
    )["groups"]
    return groups


def test_dashboard_is_shipped_as_a_configmap(docs: list[Manifest]) -> None:
    cm = one(docs, "ConfigMap", "voxmesh-grafana-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["voxmesh.json"]) == load_dashboard()


def test_alert_rules_ship_as_configmap_and_prometheusrule(
    docs: list[Manifest], overlay: str
) -> None:
    cm = one(docs, "ConfigMap", "voxmesh-prometheus-rules")
    assert yaml.safe_load(cm["data"]["voxmesh-alerts.yaml"])["groups"] == load_alert_groups()
    rules = of_kind(docs, "PrometheusRule")
    if overlay == "dev":
        assert rules == {}
    else:
        assert rules["voxmesh"]["spec"]["groups"] == load_alert_groups()


def test_pods_carry_prometheus_scrape_annotations(docs: list[Manifest]) -> None:
    for workload in workloads(docs):
        if workload["kind"] == "Job":
            continue
        annotations = workload["spec"]["template"]["metadata"]["annotations"]
        ports = {
            p["containerPort"] for c in containers(workload, init=False) for p in c.get("ports", [])
        }
        name = workload["metadata"]["name"]
        assert annotations["prometheus.io/scrape"] == "true", name
        assert int(annotations["prometheus.io/port"]) in ports, name
        assert annotations["prometheus.io/path"].startswith("/"), name


def test_service_monitors_in_prod(docs: list[Manifest], overlay: str) -> None:
    monitors = of_kind(docs, "ServiceMonitor")
    if overlay == "dev":
        assert monitors == {}
        return
    services = of_kind(docs, "Service")
    assert set(SERVICES) <= set(monitors)
    for name, monitor in monitors.items():
        selected = monitor["spec"]["selector"]["matchLabels"]
        matching = [
            s for s in services.values() if selected.items() <= s["metadata"]["labels"].items()
        ]
        assert len(matching) == 1, name
        port_names = {p["name"] for p in matching[0]["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in port_names, name


# ---------------------------------------------------------------- dashboard and alerts


def test_dashboard_queries_only_metrics_the_services_export() -> None:
    dashboard = load_dashboard()
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    seen: set[str] = set()
    titles = {p["title"] for p in panels}
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["title"] and panel["gridPos"]["w"] > 0
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            seen |= metric_names(grafana_to_promql(target["expr"]))
    assert seen <= exported_metrics(), seen - exported_metrics()
    # The families SREs look for first, the gateway's included.
    assert {
        "grpc_server_handled_total",
        "grpc_server_handling_seconds_bucket",
        "grpc_client_handled_total",
        "voxmesh_gateway_updates_total",
        "process_resident_memory_bytes",
    } <= seen
    assert "Gateway" in titles
    assert {v["name"] for v in dashboard["templating"]["list"]} == {"datasource", "service"}


def test_queries_use_the_metrics_labels_not_the_old_ones() -> None:
    """The RPC labels are grpc_service/grpc_method/grpc_code: a query on the old
    `service`, `method` or `code` labels would match nothing."""
    exprs = [
        grafana_to_promql(t["expr"])
        for p in load_dashboard()["panels"]
        for t in p.get("targets", [])
    ]
    exprs += [r["expr"] for g in load_alert_groups() for r in g["rules"]]
    for expr in exprs:
        assert not re.search(r"(?<![\w.])(service|method|code)\s*(=~|!~|!=|=|[,)])", expr), expr


def _runbook_anchors() -> set[str]:
    """GitHub's anchors of the runbook's headings: lowercase, punctuation dropped, - for space."""
    anchors = set()
    for line in RUNBOOK.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def test_alerts_query_exported_metrics_and_each_has_a_runbook() -> None:
    anchors = _runbook_anchors()
    exported = exported_metrics()
    names: list[str] = []
    seen: set[str] = set()
    for group in load_alert_groups():
        for rule in group["rules"]:
            names.append(rule["alert"])
            used = metric_names(rule["expr"])
            assert used <= exported, (rule["alert"], used - exported)
            seen |= used
            assert rule["labels"]["severity"] in {"warning", "critical"}
            assert rule["annotations"]["summary"]
            assert re.fullmatch(r"\d+[smh]", rule["for"])
            url = rule["annotations"]["runbook_url"]
            assert url.startswith(RUNBOOK_URL), rule["alert"]
            assert url.removeprefix(RUNBOOK_URL) in anchors, (rule["alert"], url)
    assert len(names) == len(set(names))
    # What the issue asks an on-call to be woken for.
    assert {
        "up",  # target down
        "grpc_server_handled_total",  # error-rate SLO burn
        "grpc_server_handling_seconds_bucket",  # latency SLO burn
        "grpc_client_handled_total",  # the gateway's calls
        "voxmesh_transcriber_streams_queued",  # queue depth
        "voxmesh_notifier_queue_depth",
        "voxmesh_billing_holds_expired_total",  # hold expiries
        "voxmesh_notifier_telegram_429_total",  # Telegram 429 storms
        "redis_up",
        "cnpg_collector_up",
    } <= seen
    # The SLO burn alerts look at two windows each (multiwindow, multi-burn-rate).
    rules = {r["alert"]: r for g in load_alert_groups() for r in g["rules"]}
    for name in ("VoxmeshErrorBudgetBurnFast", "VoxmeshErrorBudgetBurnSlow"):
        windows = set(re.findall(r"\[(\d+[mh])\]", rules[name]["expr"]))
        assert len(windows) == 2, name


def test_runbook_covers_the_operations_the_issue_names() -> None:
    anchors = _runbook_anchors()
    assert {
        "refunding-a-user-by-trace-id",
        "replaying-the-outbox",
        "rotating-the-bot-token",
        "backup-and-restore-of-the-ledger",
    } <= anchors


# ---------------------------------------------------------------- the Collector


def _collector_config(docs: list[Manifest]) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(
        one(docs, "ConfigMap", "otel-collector-config")["data"]["config.yaml"]
    )
    return config


def test_the_collector_takes_otlp_tail_samples_and_exports_to_zipkin(
    docs: list[Manifest],
) -> None:
    config = _collector_config(docs)
    (pipeline,) = config["service"]["pipelines"].values()
    assert pipeline["receivers"] == ["otlp"]
    assert "tail_sampling" in pipeline["processors"]
    assert pipeline["processors"][0] == "memory_limiter"
    assert pipeline["exporters"] == ["zipkin"]
    zipkin = one(docs, "Service", "zipkin")
    assert config["exporters"]["zipkin"]["endpoint"] == (
        f"http://zipkin:{zipkin['spec']['ports'][0]['port']}/api/v2/spans"
    )
    http = config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert http.endswith(":4318")
    # Every error trace and every slow one is kept, a share of the rest.
    policies = {p["type"]: p for p in config["processors"]["tail_sampling"]["policies"]}
    assert policies["status_code"]["status_code"]["status_codes"] == ["ERROR"]
    assert policies["latency"]["latency"]["threshold_ms"] > 0
    assert 0 < policies["probabilistic"]["probabilistic"]["sampling_percentage"] < 100

    deployment = one(docs, "Deployment", "otel-collector")
    # One trace's spans must meet in one Collector for tail sampling to see it whole.
    assert deployment["spec"]["replicas"] == 1
    c = main_container(deployment)
    repo, _, tag = c["image"].partition(":")
    assert repo == COLLECTOR_IMAGE and re.match(r"\d+\.\d+\.\d+@sha256:[0-9a-f]{64}$", tag)
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "otel-collector-config"
    assert c["args"] == [f"--config={mounts['config']}/config.yaml"]
    assert port_named(c, "otlp-http") == 4318


@pytest.mark.parametrize("service", SERVICES)
def test_services_export_otlp_to_the_collector(docs: list[Manifest], service: str) -> None:
    env = env_of(docs, main_container(one(docs, "Deployment", service)))
    collector = one(docs, "Service", "otel-collector")
    ports = {p["name"]: p["port"] for p in collector["spec"]["ports"]}
    assert env.get("OTEL_TRACES_EXPORTER", "otlp") == "otlp"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == (
        f"http://{collector['metadata']['name']}:{ports['otlp-http']}"
    )
    assert env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf") == "http/protobuf"
    # The Collector, not the services, decides what to drop: they record every trace.
    assert float(env["OTEL_TRACES_SAMPLER_ARG"]) == 1.0


# ---------------------------------------------------------------- labels

RECOMMENDED = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
)


def test_workloads_and_pods_carry_the_recommended_labels(
    docs: list[Manifest], overlay: str
) -> None:
    for workload in workloads(docs):
        name = workload["metadata"]["name"]
        for where, labels in (
            ("metadata", workload["metadata"]["labels"]),
            ("pods", workload["spec"]["template"]["metadata"]["labels"]),
        ):
            missing = [k for k in RECOMMENDED if k not in labels]
            assert not missing, f"{name} {where}: {missing}"
            assert labels["app.kubernetes.io/instance"] == (
                "voxmesh-dev" if overlay == "dev" else "voxmesh"
            )
    # The version is the release the services' image tag names.
    billing = one(docs, "Deployment", "billing")
    tag = main_container(billing)["image"].rpartition(":")[2]
    assert billing["metadata"]["labels"]["app.kubernetes.io/version"] == tag
