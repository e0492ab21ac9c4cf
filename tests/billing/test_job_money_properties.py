"""Issue 14's property: whatever the client declares and whatever happens to a job,
the money follows the audio the user actually got.

Random jobs (declared and real durations, balances, /cancel after some text, a
transcriber that dies mid-way once, or on every try) run through the gateway's
real saga, tried again as its runner does, against the
real billing server on PostgreSQL. Only the transcriber is simulated here, and
it behaves as the real one must: it reports the real duration first and never
transcribes past the seconds it was told are paid for. Then, per job and for
the whole ledger:

* a job that delivered text was charged, exactly the price of the audio
  seconds it delivered (all of it when it ran to its end), never more than
  its hold; a job that delivered nothing was charged nothing;
* the user's balance is the trial plus top-ups minus those charges;
* the double-entry ledger balances, and no hold is left pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
from google.protobuf.duration_pb2 import Duration
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from billing.config import BillingSettings
from billing.migrate import migrate
from billing.server import create_app
from billing.v1 import billing_pb2, billing_pb2_grpc
from gateway.clients import Services
from gateway.jobs.model import Job, JobSpec, Media, Outcome
from gateway.jobs.queue import JobQueue, Lease, job_of
from gateway.jobs.saga import RetryLaterError, Saga
from tests.billing.billing_support import with_database
from tests.faults.support import LEDGER_SQL
from tests.gateway.fakes import FakeFiles, FakeStub, fake_services, rpc_error
from transcriber.v1 import transcriber_pb2
from voxmesh.errors import FailedPrecondition, Unavailable
from voxmesh.server import ServerSettings

PER_MINUTE = 10
TRIAL = 100


def price(seconds: float) -> int:
    return max(1, -(-math.ceil(seconds) * PER_MINUTE // 60))


@dataclass(frozen=True)
class Scenario:
    declared: int  # what the client says (0: a document, no duration)
    real: int  # what the audio is
    segments: int
    # None: runs to its end; ("cancel", k): /cancel after k segments;
    # ("crash", k): the transcriber dies after k segments, on the first try only;
    # ("down", k): it dies there on every try.
    event: tuple[str, int] | None


scenarios = st.builds(
    Scenario,
    declared=st.one_of(st.just(0), st.integers(1, 400)),
    real=st.integers(1, 400),
    segments=st.integers(1, 6),
    event=st.one_of(
        st.none(),
        st.tuples(st.sampled_from(["cancel", "crash", "down"]), st.integers(0, 5)),
    ),
)


class HonestCall:
    """A Transcribe stream as the real transcriber behaves: the real duration first,
    segments evenly over the audio, never one past the paid seconds (it waits a
    moment for a raise, then stops PAID_SECONDS_EXCEEDED)."""

    def __init__(
        self, requests: AsyncIterator[Any], scenario: Scenario, stop: asyncio.Event, first: bool
    ):
        self._requests = requests
        self._s = scenario
        self._dies = scenario.event is not None and (
            scenario.event[0] == "down" or (scenario.event[0] == "crash" and first)
        )
        self._stop = stop
        self._paid = 0.0
        self._raised = asyncio.Event()
        self.cancelled = False
        self._cancel = asyncio.Event()
        self.delivered = 0.0  # end of the last segment sent

    def cancel(self) -> bool:
        self.cancelled = True
        self._cancel.set()
        return True

    async def _read(self) -> None:
        async for request in self._requests:
            kind = request.WhichOneof("payload")
            if kind == "config":
                self._paid = request.config.paid_seconds
            elif kind == "paid":
                self._paid = max(self._paid, request.paid.paid_seconds)
                self._raised.set()

    def __aiter__(self) -> AsyncIterator[transcriber_pb2.TranscribeResponse]:
        return self._events()

    async def _wait_paid(self, seconds: float) -> bool:
        while self._paid < seconds:
            self._raised.clear()
            try:
                await asyncio.wait_for(self._raised.wait(), 0.3)
            except TimeoutError:
                return self._paid >= seconds
        return True

    async def _events(self) -> AsyncIterator[transcriber_pb2.TranscribeResponse]:
        reader = asyncio.create_task(self._read())
        s = self._s
        try:
            await asyncio.sleep(0.01)
            yield transcriber_pb2.TranscribeResponse(
                audio=transcriber_pb2.AudioInfo(duration_seconds=s.real, final=True)
            )
            step = s.real / s.segments
            for i in range(s.segments):
                if self.cancelled:
                    raise asyncio.CancelledError()
                if self._dies and s.event is not None and s.event[1] == i:
                    raise rpc_error(Unavailable("killed"), domain="transcriber.voxmesh")
                if s.event == ("cancel", i):
                    self._stop.set()
                    await asyncio.wait_for(self._cancel.wait(), 5)
                    raise asyncio.CancelledError()
                end = (i + 1) * step
                if not await self._wait_paid(end):
                    raise rpc_error(
                        FailedPrecondition(
                            "paid seconds reached",
                            reason="PAID_SECONDS_EXCEEDED",
                            metadata={"transcribed_seconds": str(self.delivered)},
                        ),
                        domain="transcriber.voxmesh",
                    )
                self.delivered = end
                yield transcriber_pb2.TranscribeResponse(
                    segment=transcriber_pb2.Segment(
                        segment_id=i,
                        text=f"words {i}.",
                        final=True,
                        start_seconds=i * step,
                        end_seconds=end,
                    )
                )
            yield transcriber_pb2.TranscribeResponse(
                done=transcriber_pb2.Done(
                    audio_duration_seconds=s.real,
                    transcribed_seconds=s.real,
                    segment_count=s.segments,
                )
            )
        finally:
            reader.cancel()


class Rig:
    def __init__(self, billing: billing_pb2_grpc.BillingServiceStub) -> None:
        services, _, _, notifier = fake_services()
        self.notifier: FakeStub = notifier
        self.calls: list[HonestCall] = []
        self.scenario: Scenario | None = None
        self.stop = asyncio.Event()
        rig = self

        class Transcriber:
            def Transcribe(self, requests: AsyncIterator[Any], **_: Any) -> HonestCall:
                assert rig.scenario is not None
                call = HonestCall(requests, rig.scenario, rig.stop, first=not rig.calls)
                rig.calls.append(call)
                return call

        self.services = Services(
            billing=billing,  # type: ignore[arg-type]
            transcriber=Transcriber(),  # type: ignore[arg-type]
            notifier=services.notifier,
        )
        self.saga = Saga(
            self.services,
            FakeFiles(),
            download_limit=20 << 20,
            edit_interval_seconds=0.01,
            retry_pause_seconds=0.01,
        )
        self.queue = JobQueue(self.services, bot_id=1, owner="props")


async def _attach(job_id: str, message_id: int) -> int:
    return message_id


ids = itertools.count(1)
# Outcomes seen over all examples: the property must have met each kind of end.
SEEN: dict[str, int] = {}


async def run_job(
    rig: Rig, billing: Any, user: int, job_id: str, spec: JobSpec
) -> tuple[Job, Outcome]:
    """Claim the job and run it, and again each time a try asks for a later one."""
    while True:
        claimed = await billing.ClaimJob(
            billing_pb2.ClaimJobRequest(user_id=user, owner="props", lease=Duration(seconds=60)),
            timeout=5,
        )
        if not claimed.job.job_id:
            await asyncio.sleep(0.05)  # the last try's lease has not run out yet
            continue
        assert claimed.job.job_id == job_id
        job = job_of(claimed.job)  # as the runner has it: the hold of an earlier try too
        assert job.spec == spec
        lease = Lease(rig.queue, job, lease_seconds=30, renew_seconds=10)
        lease.stop = rig.stop
        try:
            return job, await rig.saga.run(job, lease, _attach)
        except RetryLaterError:
            await rig.queue.renew(job, 0.1)  # what the runner's let_go does, shorter


async def run_user(rig: Rig, billing: Any, dsn: str, jobs: list[Scenario], extra: int) -> None:
    user = 5_000_000 + next(ids)
    await billing.EnsureUser(billing_pb2.EnsureUserRequest(user_id=user), timeout=5)
    if extra:
        charge = f"props-{secrets.token_hex(6)}"
        await billing.TopUp(
            billing_pb2.TopUpRequest(
                idempotency_key=charge,
                user_id=user,
                amount_credits=extra,
                provider="test",
                provider_charge_id=charge,
            ),
            timeout=5,
        )
    spent = 0
    for n, scenario in enumerate(jobs, start=1):
        spec = JobSpec(
            user_id=user,
            chat_id=user,
            chat_type="private",
            message_id=n,
            media=Media(
                "voice" if scenario.declared else "document", f"f{n}", duration=scenario.declared
            ),
            lang="en",
        )
        submitted = await billing.SubmitJob(
            billing_pb2.SubmitJobRequest(
                idempotency_key=f"props:{user}:{n}",
                user_id=user,
                chat_id=user,
                message_id=n,
                spec=spec.to_bytes(),
            ),
            timeout=5,
        )
        rig.scenario = scenario
        rig.stop = asyncio.Event()
        balance_before = (
            await billing.GetBalance(billing_pb2.GetBalanceRequest(user_id=user), timeout=5)
        ).balance_credits
        job, outcome = await run_job(rig, billing, user, submitted.job.job_id, spec)
        await billing.FinishJob(
            billing_pb2.FinishJobRequest(
                job_id=job.job_id,
                attempt=job.attempt,
                state=billing_pb2.JOB_STATE_DONE,
                outcome=outcome.status,
            ),
            timeout=5,
        )
        charged = outcome.captured_credits
        delivered = rig.calls[-1].delivered if rig.calls and rig.calls[-1].delivered else 0.0
        if outcome.status == "done":
            assert charged == price(scenario.real), (scenario, outcome)
        elif delivered > 0 and outcome.status in ("cancelled", "out_of_credits"):
            assert charged == price(delivered), (scenario, outcome, delivered)
        else:
            assert charged == 0, (scenario, outcome)
            assert outcome.status in ("cancelled", "failed", "no_funds"), (scenario, outcome)
            if outcome.status == "no_funds":
                # Refused because the real audio costs more than the balance.
                assert price(scenario.real) > balance_before
        if outcome.text:
            assert charged > 0, ("text for free", scenario, outcome)
        kind = f"{outcome.status}{'+charged' if charged else ''}"
        SEEN[kind] = SEEN.get(kind, 0) + 1
        spent += charged
        rig.calls.clear()
    money = await billing.GetBalance(billing_pb2.GetBalanceRequest(user_id=user), timeout=5)
    assert (money.balance_credits, money.held_credits) == (TRIAL + extra - spent, 0)
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(LEDGER_SQL)
    finally:
        await conn.close()
    assert row is not None
    assert row["unbalanced"] == row["drift"] == row["negative"] == row["double_captures"] == 0
    assert row["escrow"] == row["pending"] == row["held"] == 0


def test_money_follows_the_audio_the_user_got(postgres_dsn: str) -> None:
    name = f"props_{secrets.token_hex(5)}"
    with asyncio.Runner() as runner:

        async def setup() -> tuple[Any, Any, Rig, str]:
            admin = await asyncpg.connect(postgres_dsn)
            await admin.execute(f'CREATE DATABASE "{name}"')
            await admin.close()
            dsn = with_database(postgres_dsn, name)
            await migrate(dsn)
            app = await create_app(
                BillingSettings(
                    database_url=dsn,
                    pool_min_size=1,
                    pool_max_size=4,
                    reaper_interval_seconds=3600.0,
                    job_lease_min_seconds=0.1,
                ),
                ServerSettings(service="billing", listen="127.0.0.1:0", grace_seconds=1.0),
            )
            port = await app.start()
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
            stub = billing_pb2_grpc.BillingServiceStub(channel)
            return app, channel, Rig(stub), dsn

        app, channel, rig, dsn = runner.run(setup())
        try:

            @settings(
                max_examples=40,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
                print_blob=True,
            )
            @given(
                jobs=st.lists(scenarios, min_size=1, max_size=4),
                extra=st.sampled_from([0, 0, 30, 300]),
            )
            # One of every kind of end, whatever the random draw meets (40 draws
            # sometimes met no "no_funds": the check below failed by chance).
            @example(jobs=[Scenario(10, 10, 2, None)], extra=0)
            @example(jobs=[Scenario(60, 60, 4, ("cancel", 2))], extra=0)
            @example(jobs=[Scenario(60, 60, 4, ("cancel", 0))], extra=0)
            @example(jobs=[Scenario(60, 60, 4, ("crash", 1))], extra=0)
            @example(jobs=[Scenario(60, 60, 4, ("down", 1))], extra=0)
            @example(jobs=[Scenario(400, 400, 1, None)] * 3, extra=0)
            def one_user(jobs: list[Scenario], extra: int) -> None:
                runner.run(run_user(rig, rig.services.billing, dsn, jobs, extra))

            one_user()
            # Every kind of end was met: run to the end, cancelled after some text
            # (charged) and before any, failed (the transcriber down on every
            # try), refused for want of credits.
            expected = {"done+charged", "cancelled+charged", "cancelled", "failed", "no_funds"}
            assert expected <= SEEN.keys(), SEEN
        finally:

            async def teardown() -> None:
                await channel.close()
                await app.stop(grace=1.0)
                admin = await asyncpg.connect(postgres_dsn)
                with contextlib.suppress(Exception):
                    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await admin.close()

            runner.run(teardown())
