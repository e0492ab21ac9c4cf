"""What tracing costs, 100 % sampled against off, on three paths in one run.

- ``noop``: unary RPCs that do no work, in this process (the worst case: spans are
  all there is), with the ceiling the OpenTelemetry SDK alone sets;
- ``billing``: Reserve+Capture pairs against a billing process and PostgreSQL;
- ``voice``: voice notes through the whole mesh (Bot API emulator, four services).

Arms alternate (off, on, off, on, ...) so a noisy neighbour hurts both alike; each
ratio is the median of adjacent off/on pairs. The traced arms export OTLP (the
default exporter) to the repo's collector, which checks every span against Zipkin's
spec; for ``noop`` and ``billing`` it runs in a process of its own on a core of its
own, as a Collector runs on other machines in production.

    python -m bench.tracing [--paths noop,billing,voice] [--rounds 5] [--seconds 5]
        [--concurrency 16] [--notes 8] [--users 2] [--audio ../shared/audio/jfk.flac]

Smallest smoke run: ``--rounds 1 --seconds 1 --notes 1 --users 1``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from opentelemetry import propagate

from bench.tracing.noop import noop_round, sdk_ceiling
from bench.tracing.paths import OFF, BillingPairs, spans_stored, traced, voice_notes
from voxmesh import telemetry
from voxmesh_dev.embedded import free_port

REPO = pathlib.Path(__file__).resolve().parents[2]
GOALS = {"noop": 0.90, "billing": 0.95, "voice": 0.99}


@contextmanager
def collector_process() -> Iterator[str]:
    """The spec-checking collector on a core of its own; this process keeps the other."""
    port = free_port()
    cores = sorted(os.sched_getaffinity(0))
    mine, theirs = ({cores[0]}, {cores[-1]}) if len(cores) > 1 else (set(cores), set(cores))
    proc = subprocess.Popen(
        [
            *("taskset", "-c", ",".join(map(str, theirs))),
            *(sys.executable, "-m", "voxmesh_dev.zipkin", "--port", str(port)),
        ],
        stdout=subprocess.PIPE,
    )
    os.sched_setaffinity(0, mine)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # its base URL: it is listening
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait()
        os.sched_setaffinity(0, set(cores))


def report(path: str, unit: str, off: list[float], on: list[float]) -> None:
    paired = sorted(b / a for a, b in zip(off, on, strict=True))
    print(
        f"{path:<8} off {statistics.median(off):>9.1f} {unit}  on {statistics.median(on):>9.1f}"
        f" {unit}  ratio {statistics.median(paired):.3f} median of {len(paired)} pairs"
        f" (range {paired[0]:.3f}-{paired[-1]:.3f}; goal >= {GOALS[path]:.2f})"
    )


def alternate(
    rounds: int, one: Callable[[], tuple[float, float]]
) -> tuple[list[float], list[float]]:
    off: list[float] = []
    on: list[float] = []
    for _ in range(rounds):
        a, b = one()
        off.append(a)
        on.append(b)
    return off, on


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--paths", default="noop,billing,voice")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0, help="noop and billing windows")
    parser.add_argument("--concurrency", type=int, default=16, help="noop and billing clients")
    parser.add_argument("--notes", type=int, default=8, help="voice notes an arm")
    parser.add_argument("--users", type=int, default=2, help="chats sending voice notes at once")
    parser.add_argument(
        "--audio", type=pathlib.Path, default=REPO.parent / "shared" / "audio" / "jfk.flac"
    )
    args = parser.parse_args()
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_TRACES_SAMPLER", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        os.environ.pop(name, None)  # each arm sets its own
    propagate.set_global_textmap(telemetry.propagator())

    if "noop" in paths:
        with collector_process() as base_url:
            os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = base_url
            off, on = alternate(args.rounds, lambda: noop_round(args.seconds, args.concurrency))
            del os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"]
        report("noop", "RPC/s", off, on)
        print("  " + sdk_ceiling(statistics.median(off)))

    if "billing" in paths:

        async def billing() -> tuple[list[float], list[float], int]:
            with collector_process() as base_url:
                async with BillingPairs(args.concurrency, args.seconds, 1.0) as bench:
                    off, on = [], []
                    for _ in range(args.rounds):
                        off.append(await bench.arm(OFF))
                        on.append(await bench.arm(traced(base_url)))
                return off, on, await spans_stored(base_url)

        off, on, spans = asyncio.run(billing())
        report("billing", "pairs/s", off, on)
        print(f"  spans the collector accepted: {spans:,}")

    if "voice" in paths:
        traced_mesh = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "always_on"}

        def voice_round() -> tuple[float, float]:
            run = lambda env: asyncio.run(voice_notes(args.audio, env, args.notes, args.users))  # noqa: E731
            return run(OFF), run(traced_mesh)

        off, on = alternate(args.rounds, voice_round)
        report("voice", "notes/min", off, on)


if __name__ == "__main__":
    main()
