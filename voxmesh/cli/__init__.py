"""``voxmesh``: run the mesh, one service, a migration, a transcription, a trace lookup.

Every subcommand is one ``add_<name>`` function (its arguments and help) and one
``cmd_<name>`` function (what it does), in a module of this package; ``SUBCOMMANDS``
lists the ``add_`` ones. Here: the parser, ``--version``, and ``main``.

- ``targets``: the state folder, the running mesh's record (``mesh.json``) and where
  each service listens: a flag, else the environment, else the record, else a default
- ``up``: ``voxmesh up`` (the local mesh, its demo, its record)
- ``service``: ``voxmesh serve``, ``voxmesh migrate``, ``voxmesh certs``
- ``transcribe`` (and ``progress``, its bar): ``voxmesh transcribe``
- ``listen``: ``voxmesh listen`` (the work is ``voxmesh.listen``'s)
- ``trace``: where the CLI's own spans go, and ``voxmesh trace``
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from voxmesh.cli.listen import add_listen
from voxmesh.cli.service import add_certs, add_migrate, add_serve
from voxmesh.cli.targets import (
    DEFAULT_TRANSCRIBER_TARGET,
    RECORD,
    Subparsers,
    default_state_dir,
    read_record,
    write_record,
)
from voxmesh.cli.trace import add_trace, cli_telemetry, trace_tree
from voxmesh.cli.transcribe import FORMATS, Transcript, add_transcribe, transcribe_file
from voxmesh.cli.up import add_up, demo_clip
from voxmesh.config import ConfigError

# The names this package had as one module (voxmesh/cli.py); each lives in the module above.
__all__ = [
    "DEFAULT_TRANSCRIBER_TARGET",
    "FORMATS",
    "RECORD",
    "SUBCOMMANDS",
    "Transcript",
    "build_parser",
    "cli_telemetry",
    "default_state_dir",
    "demo_clip",
    "main",
    "read_record",
    "trace_tree",
    "transcribe_file",
    "version",
    "write_record",
]


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("voxmesh")
    except PackageNotFoundError:
        return "unknown"


SUBCOMMANDS: tuple[Callable[[Subparsers], None], ...] = (
    add_up,
    add_serve,
    add_migrate,
    add_transcribe,
    add_listen,
    add_trace,
    add_certs,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voxmesh",
        description="Run the mesh, one service, a migration, a transcription, a trace lookup.",
        epilog="`voxmesh COMMAND --help` tells more about each command.",
    )
    parser.add_argument("--version", action="version", version=f"voxmesh {version()}")
    parser.add_argument(
        "--state-dir",
        default=str(default_state_dir()),
        help="where `voxmesh up` keeps embedded data and records the running mesh "
        "(default: VOXMESH_STATE_DIR, else .state/ of a checkout, else ~/.local/state/voxmesh)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    for command in sub.choices.values():  # also after the command, as people type it
        command.add_argument("--state-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        sys.exit(args.func(args))
    except ConfigError as exc:
        print(f"voxmesh: {exc}", file=sys.stderr)
        sys.exit(2)
    except BrokenPipeError:
        # stdout went to `head` or the like, which has read enough: not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
