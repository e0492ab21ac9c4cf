"""The gRPC side's load: Reserve+Capture pairs from concurrent clients, as a process of its own.

bench/billing/run.py starts it the way pgbench is started on the other side: a
separate process that only makes calls, so its CPU shows apart from the
server's. It runs ``clients`` callers (a channel each) for ``warmup`` then
``seconds``. On stdout it prints a line ``start`` when the measured window
opens and ``end`` when it closes (the parent samples the server's and
PostgreSQL's CPU at those moments), then one JSON object::

    {"elapsed": s, "cpu": s, "latencies": [s, ...]}

``latencies`` holds every pair finished inside the window, ``cpu`` this
process's CPU time within it.

    python -m bench.billing.client TARGET CLIENTS WARMUP SECONDS USERS AMOUNT CAPTURE TRACE_ID

(client.cc takes the same arguments and prints the same.)
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import time
import uuid

import grpc

from billing.v1 import billing_pb2 as pb
from billing.v1 import billing_pb2_grpc


async def run(
    target: str,
    clients: int,
    warmup: float,
    seconds: float,
    users: int,
    amount: int,
    capture: int,
    trace_id: str,
) -> dict[str, object]:
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
                key = f"{run_id}-{n}-{seq}"
                t0 = time.perf_counter()
                r = await stub.Reserve(
                    pb.ReserveRequest(
                        idempotency_key=key,
                        user_id=(rng + seq * 7919) % users + 1,
                        amount_credits=amount,
                        job=pb.Job(
                            chat_id=n + 1,
                            message_id=seq,
                            file_id="f",
                            duration_seconds=60,
                            trace_id=trace_id,
                        ),
                    ),
                    timeout=30,
                )
                await stub.Capture(
                    pb.CaptureRequest(
                        idempotency_key=key, hold_id=r.hold.hold_id, amount_credits=capture
                    ),
                    timeout=30,
                )
                if counting:
                    latencies.append(time.perf_counter() - t0)
        finally:
            await channel.close()

    tasks = [asyncio.create_task(client(n)) for n in range(clients)]
    await asyncio.sleep(warmup)
    print("start", flush=True)
    counting = True
    start, cpu0 = time.perf_counter(), time.process_time()
    await asyncio.sleep(seconds)
    counting = False
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
    print("end", flush=True)
    stop = True
    await asyncio.gather(*tasks)
    return {"elapsed": elapsed, "cpu": cpu, "latencies": latencies}


def main() -> None:
    target, clients, warmup, seconds, users, amount, capture, trace_id = sys.argv[1:9]
    try:
        # Optional: the same speed-up any asyncio client would take.
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    result = runner(
        run(
            target,
            int(clients),
            float(warmup),
            float(seconds),
            int(users),
            int(amount),
            int(capture),
            trace_id,
        )
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
