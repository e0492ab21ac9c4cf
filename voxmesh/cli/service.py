"""Running and preparing one service: ``voxmesh serve``, ``voxmesh migrate``, ``voxmesh certs``."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import pathlib
import sys

from voxmesh.cli.targets import Subparsers, running_record, use_running_mesh

SERVICE_MAINS = {
    "billing": "billing.server",
    "transcriber": "transcriber.server",
    "notifier": "notifier.server",
    "gateway": "gateway.app",
    "facade": "facade.app",
}


def add_serve(sub: Subparsers) -> None:
    p = sub.add_parser(
        "serve",
        help="run one service in the foreground (what Kubernetes runs)",
        description=(
            "Run one service in the foreground; it is configured by the environment. Beside a "
            "running `voxmesh up`, the services it dials default to that mesh's."
        ),
    )
    p.add_argument("service", choices=sorted(SERVICE_MAINS), help="which service to run")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    # Beside a running `voxmesh up` (random ports), dial its services and its collector.
    use_running_mesh(args)
    module = importlib.import_module(SERVICE_MAINS[args.service])
    module.main()
    return 0


def add_migrate(sub: Subparsers) -> None:
    p = sub.add_parser(
        "migrate",
        help="apply migrations/ to DATABASE_URL",
        description=(
            "Apply the SQL migrations in order, under an advisory lock, to DATABASE_URL (else "
            "the database of the running `voxmesh up`)."
        ),
    )
    p.set_defaults(func=cmd_migrate)


def cmd_migrate(args: argparse.Namespace) -> int:
    from billing.migrate import migrate

    url = os.environ.get("DATABASE_URL") or running_record(args).get("database_url")
    if not url:
        print(
            "voxmesh migrate: set DATABASE_URL (or run it beside a running `voxmesh up`)",
            file=sys.stderr,
        )
        return 2
    applied = asyncio.run(migrate(url))
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


def add_certs(sub: Subparsers) -> None:
    p = sub.add_parser(
        "certs",
        help="make a development CA and per-service certificates",
        description="Make a development CA and one certificate per identity (not for production).",
    )
    p.add_argument("--out", help="where to write them (default: STATE_DIR/certs)")
    p.add_argument(
        "--identity", action="append", help="an identity to issue for; repeat (default: all)"
    )
    p.add_argument(
        "--host",
        action="append",
        default=["localhost", "127.0.0.1"],
        help="a host name or address for the certificates' SAN; repeat",
    )
    p.set_defaults(func=cmd_certs)


def cmd_certs(args: argparse.Namespace) -> int:
    from voxmesh.tls import IDENTITIES, make_dev_pki

    out = pathlib.Path(args.out) if args.out else pathlib.Path(args.state_dir) / "certs"
    made = make_dev_pki(out, args.identity or IDENTITIES, hosts=args.host)
    print(f"development CA and certificates in {out}/ (not for production):")
    for identity, tls in made.items():
        print(
            f"  {identity:12} VOXMESH_TLS_CA={tls.ca} VOXMESH_TLS_CERT={tls.cert} "
            f"VOXMESH_TLS_KEY={tls.key}"
        )
    return 0
