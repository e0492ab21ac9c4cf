"""The rendered overlays, shared by the manifest and observability checks."""

from __future__ import annotations

import pytest

from tests.k8s.render import OVERLAYS, Manifest, overlay_dir, render


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Manifest]]:
    return {name: render(overlay_dir(name)) for name in OVERLAYS}


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def docs(rendered: dict[str, list[Manifest]], overlay: str) -> list[Manifest]:
    return rendered[overlay]
