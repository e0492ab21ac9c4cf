"""Finding the running mesh: the state folder, ``mesh.json``, and where each service listens.

``voxmesh up`` records where the mesh it started listens (``mesh.json`` in its
state folder); the other subcommands read that record, so they reach the running
mesh with no flags. An explicit flag wins over the environment, which wins over
the record, which wins over the documented defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
from collections.abc import Mapping
from typing import Any, TypeAlias

REPO = pathlib.Path(__file__).resolve().parents[2]
# What every subcommand's ``add_<name>`` adds its parser to.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
RECORD = "mesh.json"
DEFAULT_TRANSCRIBER_TARGET = "127.0.0.1:50052"


def default_state_dir(env: Mapping[str, str] = os.environ) -> pathlib.Path:
    """``VOXMESH_STATE_DIR``; else ``.state/`` of a source checkout; else the user's state dir."""
    if env.get("VOXMESH_STATE_DIR"):
        return pathlib.Path(env["VOXMESH_STATE_DIR"]).expanduser().resolve()
    if (REPO / "pyproject.toml").is_file():
        return REPO / ".state"
    base = pathlib.Path(env.get("XDG_STATE_HOME") or pathlib.Path.home() / ".local" / "state")
    return base / "voxmesh"


def write_record(state: pathlib.Path, record: Mapping[str, Any]) -> None:
    tmp = state / f".{RECORD}.tmp"
    tmp.write_text(json.dumps({"pid": os.getpid(), **record}, indent=2) + "\n")
    tmp.replace(state / RECORD)  # readers never see half a file


def read_record(state: pathlib.Path) -> dict[str, Any] | None:
    """What the running ``voxmesh up`` of ``state`` recorded; None if none runs."""
    try:
        record = json.loads((state / RECORD).read_text())
        os.kill(int(record["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no record, a torn one, or its `voxmesh up` is gone
    return record if isinstance(record, dict) else None


def running_record(args: argparse.Namespace) -> dict[str, Any]:
    """The record of the mesh running on ``--state-dir``; empty if none runs."""
    return read_record(pathlib.Path(args.state_dir)) or {}


def use_running_mesh(args: argparse.Namespace) -> None:
    """Point this process at the running ``voxmesh up``: the services it dials
    (``<SERVICE>_TARGET``) and the collector its spans go to. Variables already set
    win; with no mesh running (Kubernetes) nothing changes."""
    record = running_record(args)
    for name, target in record.get("targets", {}).items():
        os.environ.setdefault(f"{name.upper()}_TARGET", str(target))
    endpoint = record.get("otlp_endpoint")
    if endpoint and not (
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ):
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = str(endpoint)


def service_target(args: argparse.Namespace, service: str, default: str) -> str:
    """The flag, else ``<SERVICE>_TARGET``, else the running mesh's, else ``default``."""
    flag = getattr(args, "target", None)
    if flag:
        return str(flag)
    env = os.environ.get(f"{service.upper()}_TARGET")
    if env:
        return env
    return str(running_record(args).get("targets", {}).get(service) or default)
