"""Upload sizes in the rendered overlays: the gateway downloads no more than the
transcriber takes in one stream, and every active stream's spool fits the volume."""

from __future__ import annotations

import pytest

from tests.k8s.render import Manifest, overlay_dir, render
from tests.k8s.test_manifests import NAMESPACES, env_of, main_container, one, pod_spec
from transcriber.config import TranscriberConfig

GIB = 1024**3
MODEL_CACHE_RESERVE = 1 * GIB
UNITS = {"Ki": 1024, "Mi": 1024**2, "Gi": GIB, "Ti": 1024**4}


def quantity(text: str) -> int:
    for suffix, factor in UNITS.items():
        if text.endswith(suffix):
            return int(text.removesuffix(suffix)) * factor
    return int(text)


@pytest.fixture(scope="module", params=sorted(NAMESPACES))
def docs(request: pytest.FixtureRequest) -> list[Manifest]:
    return render(overlay_dir(str(request.param)))


def test_spools_fit_the_volume_and_downloads_fit_a_stream(docs: list[Manifest]) -> None:
    transcriber = one(docs, "Deployment", "transcriber")
    c = main_container(transcriber)
    env = {k: v for k, v in env_of(docs, c).items() if isinstance(v, str)}
    # The transcriber's own start-up check passes (it raises when the product does not fit).
    config = TranscriberConfig.from_env(env)
    assert config.spool_budget_bytes > 0
    assert config.max_upload_bytes * config.max_active_streams <= config.spool_budget_bytes
    tmp = next(m for m in c["volumeMounts"] if m["mountPath"] == "/tmp")
    volume = next(v for v in pod_spec(transcriber)["volumes"] if v["name"] == tmp["name"])
    size = quantity(volume["emptyDir"]["sizeLimit"])
    assert config.spool_budget_bytes + MODEL_CACHE_RESERVE <= size
    assert str(config.model_cache).startswith("/tmp/")
    gateway = env_of(docs, main_container(one(docs, "Deployment", "gateway")))
    assert 0 < int(gateway["GATEWAY_MAX_DOWNLOAD_BYTES"]) <= config.max_upload_bytes
