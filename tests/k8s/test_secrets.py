"""No secret on a command line: argv is readable by anyone who can list the pod's
processes, and kubelet splices ``$(VAR)`` into it from the environment."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.k8s.render import Manifest, overlay_dir, render
from tests.k8s.test_manifests import NAMESPACES, containers, workloads


@pytest.fixture(scope="module", params=sorted(NAMESPACES))
def docs(request: pytest.FixtureRequest) -> list[Manifest]:
    return render(overlay_dir(str(request.param)))


def test_no_secret_is_spliced_into_argv(docs: list[Manifest]) -> None:
    checked = 0
    for workload in workloads(docs):
        for c in containers(workload):
            secret_vars = {
                v["name"] for v in c.get("env", []) if "secretKeyRef" in v.get("valueFrom", {})
            }
            argv = " ".join([*c.get("command", []), *c.get("args", [])])
            spliced = set(re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", argv))
            assert not spliced & secret_vars, f"{workload['metadata']['name']}/{c['name']}"
            checked += 1
    assert checked >= 8  # every overlay runs 6 Deployments and Redis, with sidecars


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
def test_redis_reads_its_password_from_stdin(docs: list[Manifest]) -> None:
    (redis,) = [d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "redis"]
    c = containers(redis)[0]
    assert c["command"] == ["sh", "-c"]
    # Run the container's script with `cat` in place of redis-server: what reaches
    # stdin is the password line, what reaches argv is not the password.
    script = c["args"][0]
    assert "exec redis-server /etc/redis/redis.conf - <<" in script
    script = script.replace("exec redis-server /etc/redis/redis.conf -", "echo ARGV; exec cat -")
    out = subprocess.run(
        ["sh", "-c", script],
        env={"REDIS_PASSWORD": "s3cret-value", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout
    assert out == "ARGV\nrequirepass s3cret-value\n"
    assert "s3cret-value" not in script
