"""Finishing jobs a crashed gateway left behind.

A job's hold is placed in billing before any work starts and is captured or
released when the job ends. When the gateway running it dies in between
(SIGKILL, OOM, a lost node), the hold stays pending and the user hears
nothing. Two pieces close that gap:

* :class:`JobRegistry` (Redis). The runner of a job *owns* it while it runs:
  a key with a short TTL that it keeps extending, so a dead runner's claim
  lapses within ``owner_ttl_seconds``. Beside it, a *record* of everything
  needed to drive the job again exactly as it started (the message that
  asked, the chat type, languages, the output format, the "Queued" notice
  it edits), since billing knows only the chat, the note and the file.
* :class:`Reconciler`, a task in every gateway replica. Every
  ``interval_seconds`` it asks billing for pending holds older than
  ``after_seconds`` (ListStaleJobs), takes ownership of each one nobody owns
  (``SET NX``: two replicas never re-drive the same job at once), waits for
  the job's turn in its user's lane, and runs it again through
  :class:`~gateway.pipeline.Pipeline` with the hold it already has. Every
  effect of the pipeline has an idempotency key derived from the chat and
  the message, so what the dead gateway already did is not done twice: the
  placeholder is the same message, the final text is sent once, and the
  hold is captured at most once. When re-driving fails, the pipeline
  releases the hold and tells the user, as for any failed job; a job that
  failed to finish ``max_attempts`` times is released without another try.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from redis.asyncio import Redis
from redis.exceptions import RedisError

from billing.v1 import billing_pb2
from gateway.clients import Services
from gateway.handlers.settings import to_proto
from gateway.i18n import lang_of
from gateway.jobs import JobLanes, LaneFullError
from gateway.pipeline import Job, Media, Pipeline
from gateway.prefs import Prefs

log = logging.getLogger(__name__)

# KEYS: owner. ARGV: token, ttl ms. Extends our claim; takes it back if it
# lapsed (a stalled loop) and nobody else took it. 1: ours, 0: someone else's.
_EXTEND = """
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] or not owner then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# KEYS: owner. ARGV: token. Drops the claim only if it is still ours.
_DISOWN = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# How long a job's record outlives its start: far past any hold's lifetime.
RECORD_TTL_SECONDS = 2 * 86400


@dataclass(frozen=True)
class JobRef:
    """What billing knows a job by: the chat, the note and who pays."""

    chat_id: int
    note_id: int
    user_id: int

    @classmethod
    def of(cls, job: Job) -> JobRef:
        return cls(job.chat_id, job.note_id, job.user_id)


def job_to_record(job: Job) -> str:
    data: dict[str, Any] = asdict(job)
    data["output_format"] = int(job.output_format)
    return json.dumps(data, separators=(",", ":"))


def job_from_record(raw: bytes | str) -> Job:
    data = json.loads(raw)
    media = Media(**data.pop("media"))
    return Job(media=media, **data)


class Ownership:
    """A claim on a job, kept alive by a heartbeat until released."""

    def __init__(self, registry: JobRegistry, ref: JobRef, token: str) -> None:
        self._registry = registry
        self.ref = ref
        self._token = token
        self._task: asyncio.Task[None] | None = None
        # Set once the job ended (whatever the outcome): its record can go.
        self.finished = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._beat(), name=f"own-{self.ref.note_id}")

    async def _beat(self) -> None:
        registry = self._registry
        while True:
            await asyncio.sleep(registry.owner_ttl_seconds / 3)
            try:
                ours = await registry.extend(self.ref, self._token)
            except RedisError as exc:
                log.warning("job owner heartbeat failed: %s", type(exc).__name__)
                continue
            if not ours:
                log.warning("job %s:%s is driven by another replica now", *self._names())

    def _names(self) -> tuple[int, int]:
        return self.ref.chat_id, self.ref.note_id

    async def release(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        # Shielded: a job cancelled at shutdown must still let go of its claim.
        await asyncio.shield(self._registry.disown(self.ref, self._token, forget=self.finished))

    async def __aenter__(self) -> Ownership:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.release()
        except RedisError as err:
            # The claim lapses by itself within the owner TTL.
            log.warning("could not release job claim: %s", type(err).__name__)


class JobRegistry:
    """Who drives which job, and how to drive it again; in Redis, per job:

    ``<prefix>job:<chat>:<note>:<user>`` (the record, JSON) and ``...:owner``
    (a random token with a TTL) and ``...:attempts`` (re-drives so far).
    """

    def __init__(self, redis: Redis, prefix: str, *, owner_ttl_seconds: float = 15.0) -> None:
        self._redis = redis
        self._prefix = prefix
        self.owner_ttl_seconds = owner_ttl_seconds
        self._extend = redis.register_script(_EXTEND)
        self._disown = redis.register_script(_DISOWN)

    def _key(self, ref: JobRef) -> str:
        return f"{self._prefix}job:{ref.chat_id}:{ref.note_id}:{ref.user_id}"

    @property
    def _ttl_ms(self) -> int:
        return int(self.owner_ttl_seconds * 1000)

    async def own(self, job: Job) -> Ownership:
        """Record ``job`` and claim it for this process (a job's first runner)."""
        ref = JobRef.of(job)
        token = secrets.token_hex(8)
        key = self._key(ref)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(key, job_to_record(job), ex=RECORD_TTL_SECONDS)
            pipe.set(f"{key}:owner", token, px=self._ttl_ms)
            await pipe.execute()
        ownership = Ownership(self, ref, token)
        ownership.start()
        return ownership

    async def take(self, ref: JobRef) -> Ownership | None:
        """Claim a job nobody drives now; None if someone does."""
        token = secrets.token_hex(8)
        if not await self._redis.set(f"{self._key(ref)}:owner", token, nx=True, px=self._ttl_ms):
            return None
        ownership = Ownership(self, ref, token)
        ownership.start()
        return ownership

    async def record(self, ref: JobRef) -> Job | None:
        raw = await self._redis.get(self._key(ref))
        if raw is None:
            return None
        try:
            return job_from_record(raw)
        except (ValueError, TypeError, KeyError):
            log.warning("unreadable record of job %s:%s", ref.chat_id, ref.note_id)
            return None

    async def attempt(self, ref: JobRef) -> int:
        """Count one more re-drive of the job; return how many there were."""
        key = f"{self._key(ref)}:attempts"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, RECORD_TTL_SECONDS)
            count, _ = await pipe.execute()
        return int(count)

    async def extend(self, ref: JobRef, token: str) -> bool:
        return bool(
            await self._extend(keys=[f"{self._key(ref)}:owner"], args=[token, self._ttl_ms])
        )

    async def disown(self, ref: JobRef, token: str, *, forget: bool) -> None:
        key = self._key(ref)
        await self._disown(keys=[f"{key}:owner"], args=[token])
        if forget:
            await self._redis.delete(key, f"{key}:attempts")


def _parent_context(trace_id: str) -> Any:
    """A context whose parent is the job's first trace, so the re-drive joins it."""
    try:
        tid = int(trace_id, 16)
    except ValueError:
        return None
    if not tid:
        return None
    parent = SpanContext(
        trace_id=tid,
        span_id=random.getrandbits(64) or 1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(NonRecordingSpan(parent))


class Reconciler:
    def __init__(
        self,
        services: Services,
        pipeline: Pipeline,
        registry: JobRegistry,
        lanes: JobLanes,
        prefs: Prefs,
        *,
        interval_seconds: float = 30.0,
        after_seconds: float = 120.0,
        max_attempts: int = 3,
        concurrency: int = 4,
        page_size: int = 50,
    ) -> None:
        self._services = services
        self._pipeline = pipeline
        self._registry = registry
        self._lanes = lanes
        self._prefs = prefs
        self.interval_seconds = interval_seconds
        self.after_seconds = after_seconds
        self.max_attempts = max_attempts
        self._slots = asyncio.Semaphore(concurrency)
        self._page_size = page_size
        self._active: dict[str, asyncio.Task[None]] = {}
        self._loop: asyncio.Task[None] | None = None
        self._tracer = trace.get_tracer("voxmesh.gateway")

    def start(self) -> None:
        if self._loop is None:
            self._loop = asyncio.create_task(self._run(), name="gateway-reconciler")

    async def stop(self, grace: float) -> None:
        """Stop looking; give re-drives in flight ``grace`` seconds, then cancel them
        (a cancelled job releases its hold and says so, like any other)."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
        tasks = list(self._active.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=15)

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except grpc.aio.AioRpcError as exc:
                log.warning("reconciler pass failed: billing said %s", exc.code())
            except RedisError as exc:
                log.warning("reconciler pass failed: Redis %s", type(exc).__name__)
            except Exception:
                log.exception("reconciler pass failed")
            # Jitter keeps replicas that started together from asking at once.
            await asyncio.sleep(self.interval_seconds * random.uniform(0.8, 1.2))  # noqa: S311

    async def run_once(self) -> int:
        """One pass: start re-driving every abandoned job found; return how many."""
        started = 0
        token = ""
        while True:
            page = await self._services.billing.ListStaleJobs(
                billing_pb2.ListStaleJobsRequest(
                    older_than_seconds=max(1, round(self.after_seconds)),
                    page_size=self._page_size,
                    page_token=token,
                ),
                timeout=10,
            )
            for stale in page.jobs:
                if await self._consider(stale):
                    started += 1
            token = page.next_page_token
            if not token:
                return started

    async def _consider(self, stale: billing_pb2.StaleJob) -> bool:
        hold = stale.hold
        if hold.hold_id in self._active:
            return False
        ref = JobRef(hold.job.chat_id, hold.job.message_id, hold.user_id)
        ownership = await self._registry.take(ref)
        if ownership is None:
            return False  # its runner is alive, or another replica has it
        log.info("re-driving abandoned job %s:%s (hold %s)", ref.chat_id, ref.note_id, hold.hold_id)
        task = asyncio.create_task(self._redrive(stale, ownership), name=f"redrive-{hold.hold_id}")
        self._active[hold.hold_id] = task
        task.add_done_callback(lambda _: self._active.pop(hold.hold_id, None))
        return True

    async def _job(self, stale: billing_pb2.StaleJob, ref: JobRef) -> Job:
        """The job as it started, from its record; else rebuilt from billing's view."""
        recorded = await self._registry.record(ref)
        if recorded is not None:
            return recorded
        prefs = await self._prefs.user(ref.user_id)
        info = stale.hold.job
        return Job(
            user_id=ref.user_id,
            chat_id=info.chat_id,
            # Telegram: private chats have positive ids, groups negative.
            chat_type="private" if info.chat_id > 0 else "supergroup",
            message_id=info.message_id,
            media=Media(
                kind="voice" if info.duration_seconds else "document",
                file_id=info.file_id,
                duration=info.duration_seconds,
                file_size=0,
            ),
            lang=lang_of(stale.language_code),
            speech_language=prefs.speech_language,
            output_format=to_proto(prefs.output_format),
        )

    async def _redrive(self, stale: billing_pb2.StaleJob, ownership: Ownership) -> None:
        try:
            await self._redrive_owned(stale, ownership)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The hold stays pending; the next pass tries again.
            log.exception("re-driving hold %s failed", stale.hold.hold_id)

    async def _redrive_owned(self, stale: billing_pb2.StaleJob, ownership: Ownership) -> None:
        hold = stale.hold
        ref = ownership.ref
        context = _parent_context(hold.job.trace_id)
        async with self._slots, ownership:
            with self._tracer.start_as_current_span(
                "gateway.reconcile",
                context=context,
                attributes={"voxmesh.hold_id": hold.hold_id, "telegram.chat_id": ref.chat_id},
            ) as span:
                job = await self._job(stale, ref)
                attempt = await self._registry.attempt(ref)
                span.set_attribute("voxmesh.attempt", attempt)
                if attempt > self.max_attempts or not job.media.file_id:
                    why = RuntimeError(f"gave up after {attempt - 1} re-drives")
                    ownership.finished = await self._pipeline.give_up(job, hold.hold_id, why)
                    return
                try:
                    ticket = await self._lanes.enqueue(ref.user_id)
                except LaneFullError:
                    return  # the next pass tries again
                try:
                    async with ticket:
                        await ticket.wait_turn()
                        outcome = await self._pipeline.run(job, ticket.stop, hold=hold)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - whatever broke, the user gets an end
                    log.warning("re-driving job %s:%s failed", ref.chat_id, ref.note_id)
                    ownership.finished = await self._pipeline.give_up(job, hold.hold_id, exc)
                    return
                span.set_attribute("voxmesh.outcome", outcome.status)
                log.info("abandoned job %s:%s ended: %s", ref.chat_id, ref.note_id, outcome.status)
                ownership.finished = outcome.settled
