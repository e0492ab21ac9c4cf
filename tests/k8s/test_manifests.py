"""The rendered k8s overlays: schema-valid, hardened, and wired the way the services expect.

Every overlay is rendered once per module with the real ``kubectl kustomize`` and checked
as YAML a cluster would receive. The expectations below are the deployment contract
(ports, env, peers); a change to them is a change to how voxmesh runs in a cluster.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import promql_parser
import pytest
import yaml

from tests.k8s.render import (
    CRD_KINDS,
    K8S_DIR,
    OVERLAYS,
    Manifest,
    RenderError,
    is_crd,
    overlay_dir,
    parse,
    render,
    validate,
)

NAMESPACES = {"dev": "voxmesh-dev", "prod": "voxmesh", "cpu": "voxmesh"}
GRPC_PORTS = {"billing": 50051, "transcriber": 50052, "notifier": 50053}
SERVICES = (*GRPC_PORTS, "gateway")
# <SVC>_GRACE_SECONDS defaults in the services; the manifests must set the same.
GRACE_SECONDS = {"billing": 10, "notifier": 15, "transcriber": 60, "gateway": 30}
METRICS_PORT = 9464
HEALTH_PORT = 9465
GATEWAY_PORT = 8080
# Secrets the overlays reference but do not create: CNPG writes voxmesh-pg-app; in
# prod the Telegram and Redis secrets come from outside git.
EXTERNAL_SECRETS = {
    "dev": {"voxmesh-pg-app"},
    "prod": {"voxmesh-pg-app", "voxmesh-telegram", "voxmesh-redis", "voxmesh-facade"},
    "cpu": {"voxmesh-pg-app", "voxmesh-telegram", "voxmesh-redis", "voxmesh-facade"},
}
GPU = "nvidia.com/gpu"


# ---------------------------------------------------------------- helpers


def of_kind(docs: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def one(docs: list[Manifest], kind: str, name: str) -> Manifest:
    found = of_kind(docs, kind)
    assert name in found, f"no {kind}/{name} in the render"
    return found[name]


def pod_spec(workload: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Manifest, *, init: bool = True) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    found: list[dict[str, Any]] = list(spec["containers"])
    if init:
        found += spec.get("initContainers", [])
    return found


def main_container(workload: Manifest) -> dict[str, Any]:
    name = workload["metadata"]["name"]
    matches: list[dict[str, Any]] = [
        c for c in pod_spec(workload)["containers"] if c["name"] == name
    ]
    assert len(matches) == 1, f"{name}: no container named after the workload"
    return matches[0]


def env_of(docs: list[Manifest], container: dict[str, Any]) -> dict[str, Any]:
    """The container's environment: envFrom ConfigMaps first, then env (as kubelet does).

    Plain values map to strings; secret references to ("secret", name, key); the
    downward API to ("field", path).
    """
    env: dict[str, Any] = {}
    configmaps = of_kind(docs, "ConfigMap")
    for source in container.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        assert ref in configmaps, f"envFrom names a missing ConfigMap {ref}"
        env.update(configmaps[ref]["data"])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        elif "fieldRef" in var["valueFrom"]:
            env[var["name"]] = ("field", var["valueFrom"]["fieldRef"]["fieldPath"])
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = ("secret", ref["name"], ref["key"])
    return env


def port_named(container: dict[str, Any], name: str) -> int:
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    assert name in ports, f"{container['name']}: no port named {name}"
    return int(ports[name])


def prestop_sleep(container: dict[str, Any]) -> int:
    sleep = container.get("lifecycle", {}).get("preStop", {}).get("sleep")
    return int(sleep["seconds"]) if sleep else 0


def workloads(docs: list[Manifest]) -> Iterator[Manifest]:
    yield from (d for d in docs if d["kind"] in {"Deployment", "StatefulSet", "Job"})


def selector_id(selector: dict[str, Any] | None) -> str:
    if selector is None:
        return ""
    parts = [f"{k}={v}" for k, v in sorted(selector.get("matchLabels", {}).items())]
    parts += [
        f"{e['key']} {e['operator']} {sorted(e.get('values', []))}"
        for e in selector.get("matchExpressions", [])
    ]
    return ",".join(parts) or "*"


def peer_id(peer: dict[str, Any]) -> str:
    if "ipBlock" in peer:
        return f"ip:{peer['ipBlock']['cidr']}"
    pod = f"pod[{selector_id(peer.get('podSelector')) or '*'}]"
    if "namespaceSelector" in peer:
        return f"ns[{selector_id(peer['namespaceSelector'])}]/{pod}"
    return pod


def policy_targets(policy: Manifest) -> set[str]:
    """The workloads a NetworkPolicy selects, by app name ('postgres' for CNPG pods)."""
    selector = policy["spec"]["podSelector"]
    labels = selector.get("matchLabels", {})
    if "app.kubernetes.io/name" in labels:
        return {labels["app.kubernetes.io/name"]}
    if "cnpg.io/cluster" in labels:
        return {"postgres"}
    names: set[str] = set()
    for expr in selector.get("matchExpressions", []):
        assert expr["key"] == "app.kubernetes.io/name" and expr["operator"] == "In"
        names.update(expr["values"])
    assert names or selector == {}, f"{policy['metadata']['name']}: unexpected podSelector"
    return names


def rules(policy: Manifest, direction: str) -> Iterator[tuple[str, str]]:
    """(peer, "PROTO/port") pairs a policy allows in one direction."""
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for rule in policy["spec"].get(key, []):
        # An empty list would mean "any peer" / "any port": never what we intend.
        assert rule.get(peers_key), f"{policy['metadata']['name']}: rule without peers"
        assert rule.get("ports"), f"{policy['metadata']['name']}: rule without ports"
        for peer in rule[peers_key]:
            for port in rule["ports"]:
                yield peer_id(peer), f"{port.get('protocol', 'TCP')}/{port['port']}"


def allowed(docs: list[Manifest], direction: str) -> dict[str, set[tuple[str, str]]]:
    result: dict[str, set[tuple[str, str]]] = {}
    for policy in of_kind(docs, "NetworkPolicy").values():
        if direction not in policy["spec"].get("policyTypes", []):
            continue
        pairs = set(rules(policy, direction))
        for target in policy_targets(policy):
            result.setdefault(target, set()).update(pairs)
    return result


def metric_names(expr: str) -> set[str]:
    names: set[str] = set()

    def visit(node: object) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def grafana_to_promql(expr: str) -> str:
    """Grafana's macros and variables replaced by literals a PromQL parser accepts."""
    return expr.replace("$__rate_interval", "5m").replace("$service", ".*")


# ---------------------------------------------------------------- schema validation


def test_every_overlay_is_schema_valid_in_strict_mode(docs: list[Manifest], overlay: str) -> None:
    problems = validate(docs)
    assert problems == [], "\n".join(map(str, problems))
    # All three overlays put real workloads through the validator, not just CRDs.
    assert sum(1 for d in docs if not is_crd(d)) > 30


def test_strict_validation_rejects_an_unknown_field() -> None:
    bad = parse(
        """
apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers:
        - name: x
          image: x:1
          readinesProbe: {grpc: {port: 1}}
"""
    )
    problems = validate(bad)
    assert problems and "readinesProbe" in problems[0].message


def test_a_kind_without_schema_fails_unless_listed_as_crd() -> None:
    typo = {"apiVersion": "postgresql.cnpg.io/v2", "kind": "Cluster", "metadata": {"name": "x"}}
    assert not is_crd(typo)
    assert "no schema" in validate([typo])[0].message
    listed = dict(typo, apiVersion="postgresql.cnpg.io/v1")
    assert validate([listed]) == []


def test_the_crd_skip_list_is_exactly_what_prod_uses(rendered: dict[str, list[Manifest]]) -> None:
    used = {(d["apiVersion"], d["kind"]) for docs in rendered.values() for d in docs if is_crd(d)}
    assert used == CRD_KINDS


def test_kubectl_failure_is_reported(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [missing.yaml]\n")
    with pytest.raises(RenderError, match=r"missing\.yaml"):
        render(tmp_path)


def test_render_cli_writes_and_validates_every_overlay(tmp_path: Path) -> None:
    from tests.k8s.render import main

    assert main(["--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{o}.yaml" for o in OVERLAYS)
    assert "kind: Deployment" in (tmp_path / "prod.yaml").read_text()


# ---------------------------------------------------------------- pods


def test_every_workload_is_hardened(docs: list[Manifest]) -> None:
    checked = 0
    for workload in workloads(docs):
        name = workload["metadata"]["name"]
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec.get("automountServiceAccountToken") is False, name
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in containers(workload):
            where = f"{name}/{c['name']}"
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert sc.get("runAsNonRoot", True) is True, where
            assert "privileged" not in sc and "add" not in sc["capabilities"], where
            for section in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][section]), f"{where} {section}"
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            # A read-only root needs a writable /tmp (Python's tempfile, the JVM).
            if c["name"] != "exporter":  # a static Go binary that writes nothing
                assert "/tmp" in mounts, f"{where}: no /tmp"
                assert "emptyDir" in volumes[mounts["/tmp"]], f"{where}: /tmp is not an emptyDir"
            checked += 1
    assert checked >= 8  # 6 Deployments, one with an init container, Redis and its exporter


def test_every_deployment_has_readiness_and_liveness_probes(docs: list[Manifest]) -> None:
    deployments = of_kind(docs, "Deployment")
    assert set(SERVICES) | {"zipkin", "otel-collector", "facade"} == set(deployments)
    for name, deployment in deployments.items():
        for c in containers(deployment, init=False):
            assert "readinessProbe" in c and "livenessProbe" in c, f"{name}/{c['name']}"


@pytest.mark.parametrize("service", sorted(GRPC_PORTS))
def test_grpc_servers_use_native_grpc_probes_on_their_port(
    docs: list[Manifest], service: str
) -> None:
    c = main_container(one(docs, "Deployment", service))
    port = GRPC_PORTS[service]
    assert port_named(c, "grpc") == port
    # kubelet's gRPC probes speak no TLS: they use the plaintext health-only port.
    assert port_named(c, "health") == HEALTH_PORT
    for probe in ("readinessProbe", "livenessProbe"):
        # The standard health service, overall status ("" service) as the runtime sets it.
        assert c[probe]["grpc"] == {"port": HEALTH_PORT}, f"{service} {probe}"
    env = env_of(docs, c)
    assert env[f"{service.upper()}_LISTEN_ADDR"] == f"0.0.0.0:{port}"
    assert env[f"{service.upper()}_HEALTH_ADDR"] == f"0.0.0.0:{HEALTH_PORT}"


def test_gateway_probes_are_http_on_its_port(docs: list[Manifest]) -> None:
    c = main_container(one(docs, "Deployment", "gateway"))
    assert port_named(c, "http") == GATEWAY_PORT
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert env_of(docs, c)["GATEWAY_HTTP_ADDR"] == f"0.0.0.0:{GATEWAY_PORT}"


@pytest.mark.parametrize("service", SERVICES)
def test_termination_grace_exceeds_drain_grace(docs: list[Manifest], service: str) -> None:
    deployment = one(docs, "Deployment", service)
    c = main_container(deployment)
    grace = float(env_of(docs, c)[f"{service.upper()}_GRACE_SECONDS"])
    assert grace == GRACE_SECONDS[service]
    # SIGTERM comes after the preStop sleep; the drain must finish before SIGKILL.
    budget = pod_spec(deployment)["terminationGracePeriodSeconds"]
    assert budget > prestop_sleep(c) + grace, f"{service}: {budget}s"


@pytest.mark.parametrize("service", SERVICES)
def test_one_image_with_the_service_chosen_by_command(docs: list[Manifest], service: str) -> None:
    c = main_container(one(docs, "Deployment", service))
    assert c["command"] == ["voxmesh"]
    assert c["args"] == ["serve", service]
    repo, _, tag = c["image"].rpartition(":")
    assert repo in {"ghcr.io/voxmesh/voxmesh", "ghcr.io/voxmesh/voxmesh-cuda"}
    assert tag and tag != "latest"


@pytest.mark.parametrize("service", SERVICES)
def test_service_environment_contract(docs: list[Manifest], overlay: str, service: str) -> None:
    c = main_container(one(docs, "Deployment", service))
    env = env_of(docs, c)
    assert env["OTEL_SERVICE_NAME"] == service
    assert env["VOXMESH_LOG_FORMAT"] == "json"
    # OTLP to the Collector; Zipkin direct is one variable away.
    assert env["OTEL_TRACES_EXPORTER"] == "otlp"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    assert env["OTEL_EXPORTER_ZIPKIN_ENDPOINT"] == "http://zipkin:9411/api/v2/spans"
    assert env["K8S_POD_NAME"] == ("field", "metadata.name")
    assert "k8s.pod.name=$(K8S_POD_NAME)" in env["OTEL_RESOURCE_ATTRIBUTES"].split(",")
    assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert 0.0 <= float(env["OTEL_TRACES_SAMPLER_ARG"]) <= 1.0
    assert env["TELEGRAM_API_BASE"].startswith("https://")
    if service in GRPC_PORTS:
        prefix = service.upper()
        assert env[f"{prefix}_METRICS_ADDR"] == f"0.0.0.0:{METRICS_PORT}"
        assert port_named(c, "metrics") == METRICS_PORT
        assert env[f"{prefix}_MAX_CONNECTION_AGE_SECONDS"] == "300"
    if service in {"notifier", "gateway"}:
        assert env["TELEGRAM_BOT_TOKEN"] == (
            "secret",
            env_secret(docs, "voxmesh-telegram"),
            "bot-token",
        )
        assert env["REDIS_PASSWORD"][0] == "secret"
        assert env["REDIS_URL"] == "redis://:$(REDIS_PASSWORD)@$(REDIS_HOST):6379/0"
        assert env["REDIS_HOST"] == f"redis.{NAMESPACES[overlay]}.svc.cluster.local"
    if service == "gateway":
        assert env["TELEGRAM_WEBHOOK_SECRET"] == (
            "secret",
            env_secret(docs, "voxmesh-telegram"),
            "webhook-secret",
        )
    if service == "billing":
        cluster = one(docs, "Cluster", "voxmesh-pg")
        # CNPG's generated secret: <cluster>-app with a `uri` key.
        assert env["DATABASE_URL"] == ("secret", f"{cluster['metadata']['name']}-app", "uri")
    else:
        assert "DATABASE_URL" not in env


def env_secret(docs: list[Manifest], base_name: str) -> str:
    """The Secret name pods see: generated with a hash in dev, external in prod."""
    for d in docs:
        if d["kind"] == "Secret" and re.fullmatch(
            rf"{base_name}-[a-z0-9]{{10}}", d["metadata"]["name"]
        ):
            return str(d["metadata"]["name"])
    return base_name


def test_gateway_dials_peers_by_dns_round_robin_in_its_namespace(
    docs: list[Manifest], overlay: str
) -> None:
    env = env_of(docs, main_container(one(docs, "Deployment", "gateway")))
    for service, port in GRPC_PORTS.items():
        assert env[f"{service.upper()}_TARGET"] == (
            f"dns:///{service}.{NAMESPACES[overlay]}.svc.cluster.local:{port}"
        )


def test_references_resolve(docs: list[Manifest], overlay: str) -> None:
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for workload in workloads(docs):
        spec = pod_spec(workload)
        assert ("ServiceAccount", spec["serviceAccountName"]) in names
        for c in containers(workload):
            for source in c.get("envFrom", []):
                assert ("ConfigMap", source["configMapRef"]["name"]) in names
            for var in c.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ("Secret", ref["name"]) in names or ref["name"] in EXTERNAL_SECRETS[
                        overlay
                    ], f"{workload['metadata']['name']}: Secret {ref['name']}"
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in names


def test_everything_lands_in_the_overlay_namespace(docs: list[Manifest], overlay: str) -> None:
    namespace = one(docs, "Namespace", NAMESPACES[overlay])
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for d in docs:
        if d["kind"] != "Namespace":
            assert d["metadata"]["namespace"] == NAMESPACES[overlay], describe_name(d)


def describe_name(d: Manifest) -> str:
    return f"{d['kind']}/{d['metadata']['name']}"


# ---------------------------------------------------------------- services and scaling


def test_grpc_services_are_headless_with_a_grpc_port(docs: list[Manifest]) -> None:
    services = of_kind(docs, "Service")
    for name, port in GRPC_PORTS.items():
        spec = services[name]["spec"]
        assert spec["clusterIP"] == "None", name
        ports = {p["name"]: p for p in spec["ports"]}
        assert ports["grpc"]["port"] == port and ports["grpc"]["targetPort"] == "grpc"
        assert ports["metrics"]["port"] == METRICS_PORT
    # Every Service fronting a gRPC port is headless, whatever its name.
    for name, service in services.items():
        if any(p["name"] == "grpc" for p in service["spec"]["ports"]):
            assert service["spec"].get("clusterIP") == "None", name
    gateway = services["gateway"]["spec"]
    assert gateway.get("clusterIP") != "None"
    assert [(p["name"], p["port"]) for p in gateway["ports"]] == [("http", GATEWAY_PORT)]


def test_every_service_has_a_pod_disruption_budget(docs: list[Manifest]) -> None:
    pdbs = of_kind(docs, "PodDisruptionBudget")
    for service in SERVICES:
        pdb = pdbs[service]["spec"]
        labels = one(docs, "Deployment", service)["spec"]["template"]["metadata"]["labels"]
        assert pdb["selector"]["matchLabels"].items() <= labels.items(), service
        # Never minAvailable = replicas: that would block every node drain.
        assert pdb["maxUnavailable"] == 1, service


def test_autoscalers(docs: list[Manifest], overlay: str) -> None:
    hpas = of_kind(docs, "HorizontalPodAutoscaler")
    expected = set(SERVICES) - ({"gateway"} if overlay == "dev" else set())
    assert set(hpas) == expected
    for name, hpa in hpas.items():
        spec = hpa["spec"]
        assert spec["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert 1 <= spec["minReplicas"] <= spec["maxReplicas"]
        kinds = [
            (m["type"], m.get("pods", m.get("external", {})).get("metric", {}).get("name"))
            for m in spec["metrics"]
        ]
        cpu = ("Resource", None)
        if name == "transcriber":
            assert ("Pods", "voxmesh_transcriber_streams_queued") in kinds
            assert (cpu in kinds) == (overlay == "cpu")
        else:
            assert kinds == [cpu]
            assert spec["metrics"][0]["resource"]["name"] == "cpu"


def test_gateway_polls_in_dev_and_takes_webhooks_in_prod(
    docs: list[Manifest], overlay: str
) -> None:
    deployment = one(docs, "Deployment", "gateway")
    env = env_of(docs, main_container(deployment))
    if overlay == "dev":
        assert env["GATEWAY_MODE"] == "polling"
        assert "GATEWAY_WEBHOOK_URL" not in env
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}
        assert "Ingress" not in {d["kind"] for d in docs}
        return
    assert env["GATEWAY_MODE"] == "webhook"
    url = urlsplit(env["GATEWAY_WEBHOOK_URL"])
    ingress = one(docs, "Ingress", "gateway")["spec"]
    assert url.scheme == "https"
    assert [r["host"] for r in ingress["rules"]] == [url.hostname]
    assert url.hostname in ingress["tls"][0]["hosts"]
    paths = ingress["rules"][0]["http"]["paths"]
    # Only the webhook is public: /metrics and the probes stay in the cluster.
    assert [(p["path"], p["pathType"]) for p in paths] == [(url.path, "Exact")]
    assert paths[0]["backend"]["service"] == {"name": "gateway", "port": {"name": "http"}}


# ---------------------------------------------------------------- transcriber on GPU / CPU


def test_transcriber_gpu_placement(docs: list[Manifest], overlay: str) -> None:
    deployment = one(docs, "Deployment", "transcriber")
    spec = pod_spec(deployment)
    c = main_container(deployment)
    env = env_of(docs, c)
    if overlay == "cpu":
        assert GPU not in json.dumps(deployment)
        assert "nodeSelector" not in spec and "tolerations" not in spec
        assert env["TRANSCRIBER_DEVICE"] == "cpu"
        assert c["image"].startswith("ghcr.io/voxmesh/voxmesh:")
        # Guaranteed CPU: throttling would show up as a worse real-time factor.
        assert c["resources"]["requests"]["cpu"] == c["resources"]["limits"]["cpu"]
    else:
        assert c["resources"]["limits"][GPU] == 1
        assert spec["nodeSelector"]
        assert any(t["key"] == GPU for t in spec["tolerations"])
        assert env["TRANSCRIBER_DEVICE"] == "cuda"
        assert c["image"].startswith("ghcr.io/voxmesh/voxmesh-cuda:")
    # The model ships in the image unless a volume is mounted (component below).
    assert "TRANSCRIBER_MODEL_DIR" not in env


def test_model_volume_component(tmp_path: Path) -> None:
    base = os.path.relpath(overlay_dir("prod"), tmp_path)
    component = os.path.relpath(K8S_DIR / "components" / "transcriber-model-volume", tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": [base], "components": [component]})
    )
    docs = render(tmp_path)
    assert validate(docs) == []
    deployment = one(docs, "Deployment", "transcriber")
    c = main_container(deployment)
    model_dir = env_of(docs, c)["TRANSCRIBER_MODEL_DIR"]
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert model_dir.startswith(mounts["models"]["mountPath"] + "/")
    assert mounts["models"]["readOnly"] is True
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    claim = volumes["models"]["persistentVolumeClaim"]["claimName"]
    assert one(docs, "PersistentVolumeClaim", claim)["spec"]["accessModes"] == ["ReadOnlyMany"]


# ---------------------------------------------------------------- network policies

PROMETHEUS = "ns[kubernetes.io/metadata.name=monitoring]/pod[app.kubernetes.io/name=prometheus]"
INGRESS_NGINX = (
    "ns[kubernetes.io/metadata.name=ingress-nginx]/pod[app.kubernetes.io/name=ingress-nginx]"
)
CNPG_OPERATOR = (
    "ns[kubernetes.io/metadata.name=cnpg-system]/pod[app.kubernetes.io/name=cloudnative-pg]"
)
DNS = "ns[kubernetes.io/metadata.name=kube-system]/pod[k8s-app=kube-dns]"
ADMIN = "pod[voxmesh.io/admin-tooling=true]"
TRANSCRIBER_CLIENT = "pod[voxmesh.io/transcriber-client=true]"
PG_PEERS = "pod[cnpg.io/cluster=voxmesh-pg]"


def app(name: str) -> str:
    return f"pod[app.kubernetes.io/name={name}]"


def tcp(*ports: int) -> set[str]:
    return {f"TCP/{p}" for p in ports}


def grid(peers: set[str], ports: set[str]) -> set[tuple[str, str]]:
    return {(peer, port) for peer in peers for port in ports}


EXPECTED_INGRESS: dict[str, set[tuple[str, str]]] = {
    **{
        service: grid({app("gateway"), ADMIN}, tcp(port)) | grid({PROMETHEUS}, tcp(METRICS_PORT))
        for service, port in GRPC_PORTS.items()
    },
    # Internal services are users of the transcriber: pods that carry the label.
    "transcriber": grid({app("gateway"), ADMIN, TRANSCRIBER_CLIENT}, tcp(GRPC_PORTS["transcriber"]))
    | grid({PROMETHEUS}, tcp(METRICS_PORT)),
    "gateway": grid({INGRESS_NGINX, PROMETHEUS}, tcp(GATEWAY_PORT)),
    "facade": grid({"ns[*]/pod[voxmesh.io/facade-client=true]", PROMETHEUS}, tcp(8090)),
    # Clients: billing and the migration Job only. The rest is CNPG's own plumbing.
    "postgres": grid({app("billing"), app("migrate")}, tcp(5432))
    | grid({PG_PEERS, CNPG_OPERATOR}, tcp(5432, 8000))
    | grid({PROMETHEUS}, tcp(9187)),
    "redis": grid({app("notifier"), app("gateway")}, tcp(6379)) | grid({PROMETHEUS}, tcp(9121)),
    "zipkin": grid({"pod[*]", PROMETHEUS}, tcp(9411)),
    "otel-collector": grid({"pod[*]"}, tcp(4317, 4318)) | grid({PROMETHEUS}, tcp(8888)),
}

BASELINE_EGRESS = grid({DNS}, {"UDP/53", "TCP/53"}) | grid({app("zipkin")}, tcp(9411))
# The services' and the migration's spans go to the OpenTelemetry Collector.
OTLP = grid({app("otel-collector")}, tcp(4318))
TELEGRAM = "telegram"
EXPECTED_EGRESS: dict[str, set[tuple[str, str]]] = {
    "billing": BASELINE_EGRESS | OTLP | grid({PG_PEERS}, tcp(5432)),
    "migrate": BASELINE_EGRESS | OTLP | grid({PG_PEERS}, tcp(5432)),
    "transcriber": BASELINE_EGRESS | OTLP,
    "notifier": BASELINE_EGRESS
    | OTLP
    | grid({app("redis")}, tcp(6379))
    | grid({TELEGRAM}, tcp(443)),
    "gateway": BASELINE_EGRESS
    | OTLP
    | {(app(s), f"TCP/{p}") for s, p in GRPC_PORTS.items()}
    | grid({app("redis")}, tcp(6379))
    | grid({TELEGRAM}, tcp(443)),
    "redis": BASELINE_EGRESS,
    "zipkin": BASELINE_EGRESS,
    "otel-collector": BASELINE_EGRESS,
    "facade": BASELINE_EGRESS | grid({app("transcriber")}, tcp(GRPC_PORTS["transcriber"])),
}


def test_ingress_is_denied_by_default(docs: list[Manifest]) -> None:
    deny = one(docs, "NetworkPolicy", "default-deny-ingress")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}


def test_ingress_peers_are_exactly_as_designed(docs: list[Manifest]) -> None:
    assert allowed(docs, "Ingress") == EXPECTED_INGRESS


def test_every_server_is_covered_by_an_ingress_policy(docs: list[Manifest]) -> None:
    covered = set(allowed(docs, "Ingress"))
    for workload in workloads(docs):
        if workload["kind"] != "Job":
            assert workload["metadata"]["name"] in covered
    assert "postgres" in covered and of_kind(docs, "Cluster")


def test_egress_peers_are_exactly_as_designed(docs: list[Manifest]) -> None:
    egress = allowed(docs, "Egress")
    telegram_blocks: dict[str, set[str]] = {}
    for target, pairs in egress.items():
        blocks = {peer for peer, _ in pairs if peer.startswith("ip:")}
        if blocks:
            telegram_blocks[target] = blocks
            egress[target] = {(TELEGRAM if p.startswith("ip:") else p, port) for p, port in pairs}
    assert egress == EXPECTED_EGRESS
    # The same published Telegram ranges for both, all public addresses.
    assert set(telegram_blocks) == {"notifier", "gateway"}
    assert telegram_blocks["notifier"] == telegram_blocks["gateway"]
    for block in telegram_blocks["notifier"]:
        assert ipaddress.ip_network(block.removeprefix("ip:")).is_global, block


def test_policies_select_pods_that_exist(docs: list[Manifest], overlay: str) -> None:
    apps = {
        w["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
        for w in workloads(docs)
    }
    apps.add("postgres")
    # The migration Job exists only in prod-shaped overlays; dev relies on the initContainer.
    policy_apps = set(allowed(docs, "Ingress")) | set(allowed(docs, "Egress"))
    assert policy_apps - apps == ({"migrate"} if overlay == "dev" else set())


# ---------------------------------------------------------------- state


def test_migrations_run_before_billing_serves(docs: list[Manifest], overlay: str) -> None:
    billing = one(docs, "Deployment", "billing")
    inits = pod_spec(billing)["initContainers"]
    assert [(c["command"], c["args"]) for c in inits] == [(["voxmesh"], ["migrate"])]
    assert env_of(docs, inits[0])["DATABASE_URL"] == ("secret", "voxmesh-pg-app", "uri")
    jobs = of_kind(docs, "Job")
    if overlay == "dev":
        assert jobs == {}
        return
    job = jobs["voxmesh-migrate"]
    annotations = job["metadata"]["annotations"]
    assert annotations["argocd.argoproj.io/hook"] == "Sync"
    cluster_wave = one(docs, "Cluster", "voxmesh-pg")["metadata"]["annotations"]
    assert (
        int(cluster_wave["argocd.argoproj.io/sync-wave"])
        < int(annotations["argocd.argoproj.io/sync-wave"])
        < 0
    )  # Deployments sit in the default wave 0
    c = main_container(dict(job, metadata={"name": "migrate"}))
    assert (c["command"], c["args"]) == (["voxmesh"], ["migrate"])
    assert job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == "migrate"


def test_postgres_cluster(docs: list[Manifest], overlay: str) -> None:
    cluster = one(docs, "Cluster", "voxmesh-pg")
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
    spec = cluster["spec"]
    assert spec["bootstrap"]["initdb"] == {"database": "voxmesh", "owner": "voxmesh"}
    assert spec["instances"] == (1 if overlay == "dev" else 3)
    assert spec["storage"]["size"]
    assert spec.get("monitoring", {}).get("enablePodMonitor", False) is (overlay != "dev")


def test_redis_persists_the_outbox(docs: list[Manifest]) -> None:
    redis = one(docs, "StatefulSet", "redis")
    conf = one(docs, "ConfigMap", "redis-config")["data"]["redis.conf"]
    settings = dict(
        line.split(None, 1)
        for line in conf.splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert settings["appendonly"] == "yes"
    assert settings["appendfsync"] == "everysec"
    # The outbox must fail loudly rather than be evicted.
    assert settings["maxmemory-policy"] == "noeviction"
    c = main_container(redis)
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    claims = [t["metadata"]["name"] for t in redis["spec"]["volumeClaimTemplates"]]
    assert mounts["data"] == settings["dir"] and "data" in claims
    # The password reaches it on stdin (tests/k8s/test_secrets.py), the file by path.
    assert "redis-server /etc/redis/redis.conf -" in c["args"][0]
    assert mounts["config"] == "/etc/redis"
    memory_limit = c["resources"]["limits"]["memory"]
    assert memory_limit.endswith("Mi") and int(settings["maxmemory"].removesuffix("mb")) < int(
        memory_limit.removesuffix("Mi")
    )
