"""The CLI's own logic: help, precedence of targets, the mesh record, tracing, the trace tree."""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import socket
import subprocess
import sys

import pytest

from voxmesh import cli
from voxmesh.cli import targets, trace, transcribe, up

REPO = pathlib.Path(__file__).resolve().parents[2]


def _args(state: pathlib.Path, **kw: object) -> argparse.Namespace:
    return argparse.Namespace(state_dir=str(state), **kw)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_every_subcommand_and_flag_has_help() -> None:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {"up", "serve", "migrate", "transcribe", "trace", "certs"} <= set(sub.choices)
    helps = {c.dest: c.help for c in sub._choices_actions}
    for name, command in sub.choices.items():
        assert helps.get(name), f"`voxmesh {name}` has no help line"
        for action in command._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"`voxmesh {name}` {action.option_strings or action.dest}"


def test_version_prints_the_package_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "voxmesh.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout
    assert out.strip() == f"voxmesh {cli.version()}" and cli.version() != "unknown"


def test_state_dir_is_accepted_after_the_subcommand_too(tmp_path: pathlib.Path) -> None:
    args = cli.build_parser().parse_args(["trace", "--state-dir", str(tmp_path), "ab" * 8])
    assert args.state_dir == str(tmp_path)


def test_the_record_of_a_live_mesh_is_read_and_a_dead_ones_ignored(tmp_path: pathlib.Path) -> None:
    targets.write_record(tmp_path, {"targets": {"transcriber": "127.0.0.1:1"}})
    assert targets.read_record(tmp_path) == {
        "pid": os.getpid(),
        "targets": {"transcriber": "127.0.0.1:1"},
    }
    (tmp_path / targets.RECORD).write_text(json.dumps({"pid": _dead_pid(), "targets": {}}))
    assert targets.read_record(tmp_path) is None
    (tmp_path / targets.RECORD).write_text("{torn")
    assert targets.read_record(tmp_path) is None


def test_target_precedence_flag_then_env_then_record_then_default(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRANSCRIBER_TARGET", raising=False)
    default = targets.DEFAULT_TRANSCRIBER_TARGET
    assert targets.service_target(_args(tmp_path, target=None), "transcriber", default) == default
    targets.write_record(tmp_path, {"targets": {"transcriber": "127.0.0.1:41000"}})
    assert (
        targets.service_target(_args(tmp_path, target=None), "transcriber", default)
        == "127.0.0.1:41000"
    )
    monkeypatch.setenv("TRANSCRIBER_TARGET", "10.0.0.1:5")
    assert (
        targets.service_target(_args(tmp_path, target=None), "transcriber", default) == "10.0.0.1:5"
    )
    assert targets.service_target(_args(tmp_path, target="h:1"), "transcriber", default) == "h:1"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_missing_collector_is_one_warning_line_and_no_traceback(tmp_path: pathlib.Path) -> None:
    # The whole CLI path, in a process of its own: set up tracing for an endpoint
    # where nothing listens, make a span, shut down (which would export it).
    code = (
        "import argparse, sys\n"
        "from opentelemetry import trace\n"
        "from voxmesh import telemetry\n"
        "from voxmesh.cli.trace import cli_telemetry\n"
        f"args = argparse.Namespace(state_dir={str(tmp_path)!r})\n"
        "provider = telemetry.setup(cli_telemetry(args))\n"
        "with trace.get_tracer('t').start_as_current_span('s'):\n"
        "    pass\n"
        "provider.shutdown()\n"
        "print('done')\n"
    )
    port = _closed_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
    }
    for name in (
        "VOXMESH_TRACES_EXPORTER",
        "OTEL_TRACES_EXPORTER",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ):
        env.pop(name, None)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "done", proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("voxmesh: warning: no trace collector at http://127.0.0.1:")
    assert "Traceback" not in proc.stderr


def test_the_recorded_collector_is_where_spans_go(tmp_path: pathlib.Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        endpoint = f"http://127.0.0.1:{port}"
        targets.write_record(tmp_path, {"otlp_endpoint": endpoint})
        names = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        before = {name: os.environ.pop(name, None) for name in names}
        try:
            settings = trace.cli_telemetry(_args(tmp_path))
            # OpenTelemetry's exporter reads it from the environment.
            assert os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] == endpoint
        finally:
            for name, value in before.items():
                os.environ.pop(name, None)
                if value is not None:
                    os.environ[name] = value
    assert settings.exporter != "none"


def _span(sid: str, parent: str | None, name: str, ts: int, dur: int, svc: str) -> dict:
    span = {
        "traceId": "a" * 32,
        "id": sid,
        "name": name,
        "timestamp": ts,
        "duration": dur,
        "localEndpoint": {"serviceName": svc},
    }
    if parent:
        span["parentId"] = parent
    return span


def test_trace_tree_nests_children_under_parents_with_offsets_and_durations() -> None:
    spans = [
        _span("2", "1", "billing/reserve", 1_002_000, 3_000, "billing"),
        _span("1", None, "telegram.update/message", 1_000_000, 50_000, "gateway"),
        _span("3", "2", "INSERT", 1_003_000, 500, "billing"),
        _span("4", "1", "transcriber/transcribe", 1_010_000, 30_000, "transcriber"),
    ]
    spans[3]["tags"] = {"error": "boom"}
    lines = trace.trace_tree(spans)
    body = lines[1:]
    assert [line.split("  [")[0].split(" ms ")[-1].strip() for line in body] == [
        "telegram.update/message",
        "billing/reserve",
        "INSERT",
        "transcriber/transcribe",
    ]
    assert body[0].split() == ["0.0", "ms", "50.0", "ms", "telegram.update/message", "[gateway]"]
    assert body[2].split()[:4] == ["3.0", "ms", "0.5", "ms"]
    assert "0.5 ms      INSERT" in body[2]  # two levels deep: two indents of two spaces
    assert body[3].endswith("[transcriber]  ERROR")


def test_transcript_json_is_machine_readable() -> None:
    t = transcribe.Transcript(
        language="en",
        language_probability=0.98765,
        segments=[{"id": 0, "start": 0.0, "end": 1.5, "text": "Hello."}],
        duration=1.5,
        model="tiny.en",
        device="cpu",
        formatted="Hello.",
    )
    data = json.loads(t.render("json"))
    assert data["text"] == "Hello." and data["segments"][0]["end"] == 1.5
    assert data["language_probability"] == 0.9877
    assert t.render("srt") == "Hello.\n"


def test_the_demo_clip_ships_inside_the_package() -> None:
    ogg, said = up.demo_clip()
    assert ogg[:4] == b"OggS" and b"OpusHead" in ogg[:200]
    assert said.startswith("And so my fellow Americans")


def test_a_second_up_on_the_same_state_folder_says_so_in_one_line(tmp_path: pathlib.Path) -> None:
    held = up._lock_state(tmp_path)  # as a running `voxmesh up` holds it
    assert held is not None
    try:
        targets.write_record(tmp_path, {"targets": {}})
        proc = subprocess.run(
            [sys.executable, "-m", "voxmesh.cli", "--state-dir", str(tmp_path), "up"],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
            check=False,
        )
    finally:
        held.close()
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"voxmesh up: another `voxmesh up` (pid {os.getpid()}) is using {tmp_path.resolve()}; "
        "stop it first, or pass --state-dir"
    ]


def test_up_without_the_development_package_says_so_in_one_line(tmp_path: pathlib.Path) -> None:
    """The service image has no voxmesh_dev (the emulator, the embedded servers): `up` there."""
    code = (
        "import sys\n"
        "sys.modules['voxmesh_dev'] = None  # as absent as in the image: importing it fails\n"
        "from voxmesh import cli\n"
        "cli.main(sys.argv[1:])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "--state-dir", str(tmp_path), "up"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("voxmesh up: the development package"), lines
    assert not (tmp_path / "up.lock").exists()  # it stopped before touching the state folder


def test_serve_beside_a_running_mesh_dials_its_services(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The README: `voxmesh up`, then `voxmesh serve facade` and curl. The facade
    # dialled the default 127.0.0.1:50052 while `up` had picked other ports: 503.
    from voxmesh.cli import service

    seen: dict[str, str | None] = {}

    class FakeMain:
        @staticmethod
        def main() -> None:
            names = ("TRANSCRIBER_TARGET", "BILLING_TARGET", "OTEL_EXPORTER_OTLP_ENDPOINT")
            seen.update({k: os.environ.get(k) for k in names})

    monkeypatch.setattr(service.importlib, "import_module", lambda _: FakeMain)
    for name in ("TRANSCRIBER_TARGET", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    monkeypatch.setenv("BILLING_TARGET", "10.0.0.1:50051")  # what the user set still wins
    targets.write_record(
        tmp_path,
        {
            "targets": {"transcriber": "127.0.0.1:42653", "billing": "127.0.0.1:49471"},
            "otlp_endpoint": "http://127.0.0.1:45231",
        },
    )
    assert service.cmd_serve(_args(tmp_path, service="facade")) == 0
    assert seen == {
        "TRANSCRIBER_TARGET": "127.0.0.1:42653",
        "BILLING_TARGET": "10.0.0.1:50051",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:45231",
    }
    # With no mesh running, the service's own defaults stand.
    (tmp_path / targets.RECORD).unlink()
    for name in ("TRANSCRIBER_TARGET", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name)
    assert service.cmd_serve(_args(tmp_path, service="facade")) == 0
    assert seen["TRANSCRIBER_TARGET"] is None and seen["OTEL_EXPORTER_OTLP_ENDPOINT"] is None
