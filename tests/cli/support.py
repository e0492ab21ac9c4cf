"""Running `voxmesh up` (or scripts/run) as a user would, in a process of its own."""

from __future__ import annotations

import json
import os
import pathlib
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence

REPO = pathlib.Path(__file__).resolve().parents[2]

# What would point a CLI or a mesh elsewhere than the one under test.
FOREIGN = (
    "DATABASE_URL",
    "REDIS_URL",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_API_BASE",
    "OTEL_EXPORTER_ZIPKIN_ENDPOINT",
    "VOXMESH_TRACES_EXPORTER",
    "ZIPKIN_UI_URL",
    "BILLING_TARGET",
    "TRANSCRIBER_TARGET",
    "NOTIFIER_TARGET",
    "VOXMESH_STATE_DIR",
)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN}
    return {**env, **extra}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return "State:\tZ" not in pathlib.Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def wait_gone(pids: Sequence[int], timeout: float) -> list[int]:
    """The pids still alive after ``timeout`` seconds (empty: all gone)."""
    end = time.monotonic() + timeout
    left = list(pids)
    while left and time.monotonic() < end:
        left = [p for p in left if alive(p)]
        time.sleep(0.2)
    return left


class Console:
    """A child process whose merged stdout/stderr is read line by line, as a terminal shows it."""

    def __init__(self, argv: Sequence[str], *, cwd: pathlib.Path, env: Mapping[str, str]) -> None:
        self.proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, needle: str, timeout: float) -> str:
        """The first line (from here on) containing ``needle``; AssertionError otherwise."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self._queue.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if needle in line:
                return line
        raise AssertionError(f"no {needle!r} in:\n" + "\n".join(self.lines[-60:]))

    def drain(self, timeout: float) -> int:
        """Wait for the exit; the exit code."""
        code = self.proc.wait(timeout)
        while True:
            try:
                line = self._queue.get(timeout=10)
            except queue.Empty:
                break  # a grandchild still holds the pipe: leave it to the thread
            if line is None:
                assert self.proc.stdout is not None
                self.proc.stdout.close()
                break
            self.lines.append(line)
        return code

    def interrupt(self, timeout: float = 120) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.drain(timeout)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.drain(30)


def final_bot_text(console: Console, timeout: float = 240) -> str:
    """The demo's last edit in `voxmesh up`'s output (not a placeholder or a partial "…")."""
    while True:
        line = console.wait_for("  bot: ", timeout)
        text = line.split("  bot: ", 1)[1]
        if "Transcribing" not in text and not text.endswith("…"):
            return text


def recorded(state: pathlib.Path, pid: int, timeout: float) -> dict[str, object]:
    """mesh.json once `voxmesh up` (pid) has written it."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            record = json.loads((state / "mesh.json").read_text())
            if record.get("pid") == pid:
                return dict(record)
        except (OSError, ValueError):
            pass
        if not alive(pid):
            raise AssertionError("voxmesh up exited before it was up")
        time.sleep(0.5)
    raise AssertionError(f"voxmesh up wrote no mesh.json in {timeout}s")
