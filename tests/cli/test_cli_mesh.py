"""`voxmesh up` in one process, the other subcommands in others, with no flags.

As a user runs it in two terminals: `voxmesh up`, then `voxmesh transcribe FILE`.
The CLI finds the mesh through the state folder's record; stdout carries only
the result; the trace lands in the mesh's own collector and `voxmesh trace`
prints it as a tree. Then `voxmesh up` is SIGKILLed: its children die with it.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest
import srt

from tests.cli.support import REPO, Console, clean_env, recorded, wait_gone
from tests.helpers import reference_text, wer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def state() -> Iterator[pathlib.Path]:
    # Not pytest's tmp_path: other pytest sessions reset its root to 0700, which
    # keeps out the unprivileged user the embedded PostgreSQL runs as under root.
    folder = pathlib.Path(tempfile.mkdtemp(prefix="voxmesh-up-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def up(state: pathlib.Path) -> Iterator[tuple[Console, dict[str, Any]]]:
    env = clean_env(VOXMESH_STATE_DIR=str(state), PYTHONPATH=str(REPO))
    console = Console([sys.executable, "-m", "voxmesh.cli", "up", "--no-demo"], cwd=REPO, env=env)
    try:
        try:
            record = recorded(state, console.proc.pid, timeout=300)
        except AssertionError:
            console.drain(30)
            raise AssertionError("\n".join(console.lines)) from None
        console.wait_for("press Ctrl-C to stop", 30)
        yield console, record
    finally:
        if console.proc.poll() is None:
            console.interrupt()


def voxmesh(state: pathlib.Path, *args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    """A second terminal: the same state folder, no flags about where the mesh is."""
    env = clean_env(VOXMESH_STATE_DIR=str(state), PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "voxmesh.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _indent(tree_line: str) -> int:
    """How deep a `voxmesh trace` line is: the spaces before the span's name."""
    name_part = tree_line.split(" ms  ", 2)[2]
    return len(name_part) - len(name_part.lstrip())


def _reference(stderr: str) -> str:
    return stderr.rsplit("reference: ", 1)[1].split(maxsplit=1)[0]


def test_transcribe_with_no_flags_prints_the_transcript(
    up: tuple[Console, dict[str, Any]],
    state: pathlib.Path,
    shared_audio: pathlib.Path,
    tmp_path: pathlib.Path,
) -> None:
    done = voxmesh(state, "transcribe", str(shared_audio / "jfk.flac"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert wer(reference_text(shared_audio, "jfk.flac"), done.stdout) <= 0.10, done.stdout
    assert "Traceback" not in done.stderr and "warning" not in done.stderr, done.stderr
    assert len(_reference(done.stderr)) == 32


def test_srt_on_stdout_is_a_file_an_srt_parser_accepts(
    up: tuple[Console, dict[str, Any]],
    state: pathlib.Path,
    shared_audio: pathlib.Path,
    tmp_path: pathlib.Path,
) -> None:
    out = tmp_path / "x.srt"
    with out.open("w") as f:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "voxmesh.cli",
                "transcribe",
                "--format",
                "srt",
                str(shared_audio / "jfk.flac"),
            ],
            cwd=tmp_path,
            env=clean_env(VOXMESH_STATE_DIR=str(state), PYTHONPATH=str(REPO)),
            stdout=f,
            stderr=subprocess.PIPE,
            text=True,
            timeout=180,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    subtitles = list(srt.parse(out.read_text(), ignore_errors=False))
    assert subtitles and subtitles[0].index == 1
    assert all(s.start < s.end for s in subtitles)
    text = " ".join(s.content for s in subtitles)
    assert wer(reference_text(shared_audio, "jfk.flac"), text) <= 0.10, text


def test_vtt_and_json_formats(
    up: tuple[Console, dict[str, Any]],
    state: pathlib.Path,
    shared_audio: pathlib.Path,
    tmp_path: pathlib.Path,
) -> None:
    vtt = voxmesh(
        state, "transcribe", "--format", "vtt", str(shared_audio / "jfk.flac"), cwd=tmp_path
    )
    assert vtt.returncode == 0 and vtt.stdout.startswith("WEBVTT"), vtt.stderr
    as_json = voxmesh(
        state,
        "transcribe",
        "--format",
        "json",
        "--language",
        "en",
        str(shared_audio / "jfk.flac"),
        cwd=tmp_path,
    )
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["language"] == "en" and 10 < data["duration"] < 12
    assert data["segments"] and wer(reference_text(shared_audio, "jfk.flac"), data["text"]) <= 0.1


def test_trace_prints_the_transcription_as_a_tree(
    up: tuple[Console, dict[str, Any]],
    state: pathlib.Path,
    shared_audio: pathlib.Path,
    tmp_path: pathlib.Path,
) -> None:
    done = voxmesh(state, "transcribe", str(shared_audio / "jfk.flac"), cwd=tmp_path)
    ref = _reference(done.stderr)
    # The services export their spans in batches (OTEL_BSP_SCHEDULE_DELAY): the
    # transcriber's may reach the collector a moment after the CLI's own.
    for _ in range(20):
        shown = voxmesh(state, "trace", ref, cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        lines = shown.stdout.splitlines()
        if any("transcriber.window" in line for line in lines):
            break
        time.sleep(0.5)
    root = next(i for i, line in enumerate(lines) if "voxmesh.cli/transcribe" in line)
    assert "[voxmesh-cli]" in lines[root]
    server = next(line for line in lines if "transcriberservice/transcribe  [transcriber]" in line)
    assert _indent(server) > _indent(lines[root])
    assert any("transcriber.window" in line for line in lines)


def test_migrate_finds_the_running_meshs_database(
    up: tuple[Console, dict[str, Any]], state: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    done = voxmesh(state, "migrate", cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "applied 0 migration(s)"  # `voxmesh up` applied them


def test_sigkill_of_up_takes_its_children_with_it(
    up: tuple[Console, dict[str, Any]], state: pathlib.Path
) -> None:
    console, record = up
    pids = [int(p) for p in record["pids"].values()]
    redis_pid = int((state / "redis" / "voxmesh-redis.pid").read_text())
    console.kill()
    # Services drain on the SIGTERM the kernel sends them (an idle one exits at once).
    assert wait_gone([*pids, redis_pid], timeout=60) == []
