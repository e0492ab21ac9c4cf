"""``voxmesh listen``: the parser and the work are ``voxmesh.listen``'s; here, the target."""

from __future__ import annotations

import argparse

from voxmesh.cli.targets import DEFAULT_TRANSCRIBER_TARGET, Subparsers, service_target
from voxmesh.cli.trace import cli_telemetry


def add_listen(sub: Subparsers) -> None:
    from voxmesh import listen  # its imports (PyAV, the stubs) only when asked for

    listen.add_parser(sub)
    sub.choices["listen"].set_defaults(func=cmd_listen)


def cmd_listen(args: argparse.Namespace) -> int:
    from voxmesh import listen

    args.target = service_target(args, "transcriber", DEFAULT_TRANSCRIBER_TARGET)
    return listen.run(args, cli_telemetry(args))
