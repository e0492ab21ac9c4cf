"""The Dockerfile, read statically (no container engine runs here).

These checks pin what the manifests rely on: a non-root uid 10001, the `voxmesh`
entrypoint, every Python package and the migrations in the image but not the development
package, the CUDA variant's libraries on the loader path, and a build context that cannot
pick up .venv or .git.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import tomllib
from dataclasses import dataclass, field

from tests.k8s.render import REPO_ROOT, overlay_dir, render

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
# The Bot API emulator, the Zipkin collector, the embedded servers: never in a service image.
DEV_PACKAGE = "voxmesh_dev"


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [rest for kw, rest in self.instructions if kw == keyword]


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, rest) per instruction: comments dropped, continuations joined."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        result.append((keyword.upper(), rest.strip()))
        pending = ""
    return result


def stages() -> tuple[dict[str, str], list[Stage]]:
    global_args: dict[str, str] = {}
    found: list[Stage] = []
    for keyword, rest in instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            base, _, name = rest.partition(" AS ")
            found.append(Stage(base=base.strip(), name=name.strip()))
        elif not found and keyword == "ARG":
            key, _, value = rest.partition("=")
            global_args[key] = value
        elif found:
            found[-1].instructions.append((keyword, rest))
    return global_args, found


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in stage.args("ENV"):
        for item in shlex.split(rest):
            key, _, value = item.partition("=")
            env[key] = value
    return env


def copies(stage: Stage) -> list[tuple[str, str]]:
    """(source, destination) of COPY lines without --from."""
    pairs = []
    for rest in stage.args("COPY"):
        parts = rest.split()
        if not parts[0].startswith("--from"):
            *sources, dest = parts
            pairs += [(s, dest) for s in sources]
    return pairs


def test_runtime_is_python_311_slim_as_uid_10001_with_voxmesh_entrypoint() -> None:
    global_args, found = stages()
    builder, runtime = found[0], found[-1]
    assert (builder.name, runtime.name) == ("builder", "runtime")
    assert runtime.base == "${PYTHON_IMAGE}"
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", global_args["PYTHON_IMAGE"])
    assert runtime.args("USER") == ["10001:10001"]
    assert runtime.args("ENTRYPOINT") == ['["voxmesh"]']
    # Only the venv and the migrations come in; nothing is built or installed there.
    assert "--from=builder /opt/venv /opt/venv" in runtime.args("COPY")
    assert not any("pip" in run for run in runtime.args("RUN"))


def wheel_packages() -> set[str]:
    """The top-level packages the wheel carries: setuptools' find patterns over the checkout."""
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    return {
        d.name
        for d in REPO_ROOT.iterdir()
        if (d / "__init__.py").is_file() and any(fnmatch.fnmatchcase(d.name, p) for p in patterns)
    }


def test_every_package_and_the_migrations_are_in_the_image() -> None:
    _, found = stages()
    builder, runtime = found[0], found[-1]
    packages = wheel_packages() - {DEV_PACKAGE}
    assert {"voxmesh", "billing", "transcriber", "notifier", "gateway", "facade"} <= packages
    copied = {src.rstrip("/") for src, _ in copies(builder)}
    assert packages <= copied, packages - copied
    assert {"pyproject.toml", "README.md"} <= copied
    migrations = dict(copies(runtime))["migrations/"].rstrip("/")
    # billing.migrate reads VOXMESH_MIGRATIONS_DIR; the installed package has no
    # repository folder next to it.
    assert env_of(runtime)["VOXMESH_MIGRATIONS_DIR"] == migrations
    assert (REPO_ROOT / "migrations").is_dir()


def test_the_image_carries_no_development_package() -> None:
    """The wheel has voxmesh_dev (for `voxmesh up`); the image neither copies nor can see it."""
    assert DEV_PACKAGE in wheel_packages()
    _, found = stages()
    for stage in found:
        assert all(not src.startswith(DEV_PACKAGE) for src, _ in copies(stage))
    allowed = [line for line in DOCKERIGNORE.read_text().splitlines() if line.startswith("!")]
    assert all(DEV_PACKAGE not in line for line in allowed)


def test_cuda_variant_puts_cublas_and_cudnn_on_the_loader_path() -> None:
    _, found = stages()
    builder, runtime = found[0], found[-1]
    # The CUDA 12 libraries come from a lock with hashes, installed for VARIANT=cuda only.
    assert "--require-hashes --only-binary :all: -r /tmp/cuda.lock" in " ".join(builder.args("RUN"))
    cuda = (REPO_ROOT / "requirements" / "cuda.lock").read_text()
    assert re.search(r"^nvidia-cublas-cu12==12\.[\d.]+", cuda, re.M)
    assert re.search(r"^nvidia-cudnn-cu12==9\.[\d.]+", cuda, re.M)
    paths = env_of(runtime)["LD_LIBRARY_PATH"].split(":")
    site = "/opt/venv/lib/python3.11/site-packages/nvidia"
    assert paths == [f"{site}/cublas/lib", f"{site}/cudnn/lib"]
    assert env_of(runtime)["NVIDIA_DRIVER_CAPABILITIES"] == "compute,utility"


def test_build_context_is_an_allow_list() -> None:
    _, found = stages()
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    for stage in found:
        for source, _ in copies(stage):
            assert source.rstrip("/") in allowed, source
    assert not allowed & {".venv", ".git", "node_modules", ".state"}


def test_manifests_run_voxmesh_images_as_the_image_user() -> None:
    docs = render(overlay_dir("prod"))
    seen = 0
    for doc in docs:
        if doc["kind"] not in {"Deployment", "Job"}:
            continue
        spec = doc["spec"]["template"]["spec"]
        if any(c["image"].startswith("ghcr.io/voxmesh/") for c in spec["containers"]):
            assert spec["securityContext"]["runAsUser"] == 10001, doc["metadata"]["name"]
            assert spec["securityContext"]["runAsGroup"] == 10001, doc["metadata"]["name"]
            seen += 1
    assert seen == 6  # four services, the facade and the migration Job
