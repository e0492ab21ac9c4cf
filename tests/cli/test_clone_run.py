"""The README's run command on a fresh clone: the first time, after Ctrl-C, after a crash.

The repository is cloned (HEAD of this checkout) into an empty folder with
nothing beside it (no ../shared), and the command from the README's "Two
commands" block runs three times on the same clone:

1. normally, then Ctrl-C (SIGINT);
2. again after that Ctrl-C (Redis' de-duplication keys persist in .state/), then
   SIGKILL of `voxmesh up` (a crash: no cleanup code of ours runs);
3. again after the crash (a stale PostgreSQL owns .state/postgres).

Each run must show the demo's transcript as the bot's final message.
Installing a virtualenv from scratch three times is too slow for a test:
VOXMESH_VENV (honoured by scripts/setup) points the clone at this one.
"""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest

from tests.cli.support import REPO, Console, clean_env, final_bot_text, wait_gone
from tests.helpers import wer

pytestmark = pytest.mark.slow

DEMO_TEXT = (REPO / "voxmesh" / "demo" / "jfk.txt").read_text().strip()


def readme_run_command(readme: str) -> list[str]:
    section = readme.split("## Two commands", 1)[1]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    first = block.strip().splitlines()[0]
    return first.split("#", 1)[0].split()


def _errors(clone: pathlib.Path) -> str:
    """The services' error lines, for a failure's message."""
    lines = []
    for log in sorted((clone / ".state" / "logs").glob("*.log")):
        lines += [
            f"{log.name}: {line[-3000:]}"
            for line in log.read_text().splitlines()
            if '"level": "error"' in line or "Traceback" in line
        ]
    return "\n" + "\n".join(lines[-8:])


def _run_once(clone: pathlib.Path, env: dict[str, str]) -> Console:
    console = Console(readme_run_command((clone / "README.md").read_text()), cwd=clone, env=env)
    text = final_bot_text(console)
    assert wer(DEMO_TEXT, text) <= 0.15, f"{text!r}\n" + "\n".join(console.lines) + _errors(clone)
    console.wait_for("press Ctrl-C to stop", 30)
    return console


@pytest.fixture
def empty_folder() -> Iterator[pathlib.Path]:
    # Not pytest's tmp_path: its 0700 parents keep out the unprivileged user that
    # the embedded PostgreSQL runs as under root, and other sessions rotate them.
    folder = pathlib.Path(tempfile.mkdtemp(prefix="voxmesh-clone-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_readme_run_command_normally_after_ctrl_c_and_after_sigkill(
    empty_folder: pathlib.Path,
) -> None:
    tmp_path = empty_folder
    clone = tmp_path / "voxmesh"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=120)
    assert not (tmp_path / "shared").exists()
    env = clean_env(VOXMESH_VENV=sys.prefix)
    env.pop("PYTHONPATH", None)  # scripts/run puts the clone first itself

    first = _run_once(clone, env)
    assert first.interrupt() == 0, "\n".join(first.lines)

    second = _run_once(clone, env)
    pids = [int(m) for m in re.findall(r"\d+", (clone / ".state" / "mesh.json").read_text())[:1]]
    assert pids == [second.proc.pid]  # the record names this run
    second.kill()

    third = _run_once(clone, env)
    assert any("an earlier run left" in line for line in third.lines), "\n".join(third.lines)
    assert third.interrupt() == 0, "\n".join(third.lines)
    postmaster = clone / ".state" / "postgres" / "postmaster.pid"
    assert not postmaster.exists(), "the embedded PostgreSQL outlived a clean stop"
    assert wait_gone([second.proc.pid, third.proc.pid], 5) == []
