"""The durable outbox in Redis: idempotency records, per-chat queues, limits.

Why per-chat lists and not one Stream with a consumer group: a stream hands
entries to consumers in arrival order across all chats, so keeping one
chat's messages in order across replicas, and holding a chat back for its
own limit without holding everyone back, needs a second structure anyway.
Here each chat has a FIFO list of job ids; a sorted set ``due`` holds every
chat with work and the time it may next send. A worker *claims* the earliest
due chat atomically (checking the bot-wide limit in the same script), which
leases the chat: its score moves to the lease's end, so no other worker,
in this process or another replica, touches it. The job leaves the list only
when its outcome is recorded under its idempotency key, in one script. A
worker that dies leaves its lease to expire; the chat becomes due again and
the job is delivered by whoever claims it next (the equivalent of
XAUTOCLAIM). A job that keeps failing goes to the ``dead`` stream with its
ids and reason, never its payload; the ``dead`` and ``ambiguous`` streams
forget entries after ``log_ttl_seconds``. Queued payloads are bounded in
bytes (``max_queued_bytes``, counted in ``P queued_bytes``): past it a
submit is refused, so the outbox cannot fill Redis.

Layout (``P`` is the key prefix): ``P idem:<method>:<key>`` record (JSON),
``P job:<id>`` hash, ``P q:<chat>`` list, ``P due`` zset, ``P lease`` hash,
``P glog`` recent bot-wide send times, ``P sent:<chat>`` recent send times,
``P blocked:<chat>``, ``P edit:<chat>:<message>`` newest queued edit,
``P dead`` and ``P ambiguous`` streams, ``P queued_bytes``; pub/sub ``P events`` (an idempotency
record became final) and ``P wake`` (a chat has work).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import redis.asyncio as aioredis
from opentelemetry import propagate
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from notifier import _scripts
from voxmesh.telemetry import untraced

log = logging.getLogger(__name__)

TERMINAL = ("done", "failed", "dead")
TRACE_FIELD = "_trace"
ENQUEUED_FIELD = "_enqueued_at"
_POLL_SECONDS = 5.0


def connect(url: str, *, timeout: float, max_connections: int = 64) -> aioredis.Redis:
    """A client that fails within about ``timeout`` when Redis is away, never hangs.

    The pool is bounded and blocking: under a burst of calls they queue for
    a connection (up to ``timeout``) instead of opening hundreds of sockets
    or failing at once.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 1),
        decode_responses=True,
        health_check_interval=15,
    )
    # from_pool: closing the client closes its pool too.
    return aioredis.Redis.from_pool(pool)


@dataclass(frozen=True)
class Record:
    """An idempotency record: ``state`` is pending, done, failed or dead."""

    state: str
    fingerprint: str
    result: Mapping[str, Any] = field(default_factory=dict)
    error: Mapping[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.state in TERMINAL

    @classmethod
    def parse(cls, raw: str) -> Record:
        try:
            data = json.loads(raw)
        except ValueError:
            return cls(state="failed", fingerprint="", error={"description": "corrupt record"})
        return cls(
            state=str(data.get("s", "")),
            fingerprint=str(data.get("fp", "")),
            result=data.get("r") or {},
            error=data.get("e") or {},
        )


@dataclass(frozen=True)
class Submitted:
    """What became of a submission: queued now, found earlier, or refused."""

    status: str  # "queued", "existing", "blocked"
    record: Record | None = None


@dataclass(frozen=True)
class Job:
    """One claimed job: the chat is leased to this worker until it completes it."""

    id: str
    chat: str
    token: str
    method: str
    payload: Mapping[str, Any]
    attempts: int
    sent_ids: tuple[int, ...]
    ambiguous: bool
    blocked: bool


@dataclass(frozen=True)
class Wait:
    """Nothing to claim now; ``ms`` until the earliest due chat (-1: none)."""

    ms: int


@dataclass(frozen=True)
class ChatLimit:
    """At most ``count`` messages in any ``window_ms``; ``free`` skips every limit."""

    count: int
    window_ms: int
    free: bool = False


class Outbox:
    """Redis operations of the outbox; one per process, shared by callers and workers."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str,
        idempotency_ttl_seconds: int,
        global_limit: tuple[int, int, int],
        lease_ms: int,
        log_ttl_seconds: int = 7 * 24 * 3600,
        max_queued_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.redis = client
        self.prefix = prefix
        self._ttl = idempotency_ttl_seconds
        self._log_ttl_ms = log_ttl_seconds * 1000
        self._max_queued_bytes = max_queued_bytes
        self._global = global_limit
        self._lease_ms = lease_ms
        self._enqueue = client.register_script(_scripts.ENQUEUE)
        self._claim = client.register_script(_scripts.CLAIM)
        self._complete = client.register_script(_scripts.COMPLETE)
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self.wake = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None

    def idem_key(self, method: str, key: str) -> str:
        return f"{self.prefix}idem:{method}:{key}"

    # -- callers ---------------------------------------------------------

    async def submit(
        self,
        *,
        method: str,
        key: str,
        chat: int,
        fingerprint: str,
        payload: Mapping[str, Any],
        limit: ChatLimit,
        edit_target: int = 0,
    ) -> Submitted:
        job = uuid.uuid4().hex
        pending = json.dumps({"s": "pending", "fp": fingerprint, "job": job})
        # The caller's trace context rides with the job, so the Telegram call
        # a worker makes later (maybe in another replica) joins the caller's trace.
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        payload = {**payload, TRACE_FIELD: carrier, ENQUEUED_FIELD: time.time()}
        status, raw = await self._enqueue(
            keys=[self.idem_key(method, key), self.prefix + "due", self.prefix + "lease"],
            args=[
                self.prefix,
                job,
                str(chat),
                pending,
                self._ttl,
                method,
                json.dumps(payload, ensure_ascii=False),
                str(edit_target) if edit_target else "",
                "1" if limit.free else "0",
                limit.count,
                limit.window_ms,
                self._max_queued_bytes,
            ],
        )
        if status == "existing":
            return Submitted("existing", Record.parse(raw))
        if status == "queued":
            self.wake.set()
        return Submitted(status)

    async def get(self, idem_key: str) -> Record | None:
        raw = await self.redis.get(idem_key)
        return Record.parse(str(raw)) if raw is not None else None

    async def wait(self, idem_key: str, seconds: float) -> Record | None:
        """The final record for ``idem_key``, or None if it is not final in time.

        Pub/sub wakes the waiter at once. Each (re)subscription wakes every
        waiter to look again, covering messages published while it was down;
        a slow poll covers anything else.
        """
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while True:
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.setdefault(idem_key, []).append(fut)
            try:
                rec = await self.get(idem_key)
                if rec is not None and rec.final:
                    return rec
                left = end - loop.time()
                if left <= 0:
                    return rec
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(fut, min(left, _POLL_SECONDS))
            finally:
                waiters = self._waiters.get(idem_key, [])
                if fut in waiters:
                    waiters.remove(fut)
                if not waiters:
                    self._waiters.pop(idem_key, None)

    async def due_in(self, chat: int) -> float | None:
        """Seconds until ``chat`` may send next, as scheduled now."""
        score = await self.redis.zscore(self.prefix + "due", str(chat))
        if score is None:
            return None
        now_s, now_us = await self.redis.time()
        return max(0.0, (float(score) - (now_s * 1000 + now_us // 1000)) / 1000)

    async def is_blocked(self, chat: int) -> bool:
        return bool(await self.redis.exists(f"{self.prefix}blocked:{chat}"))

    # -- workers ---------------------------------------------------------

    async def claim(self, token: str) -> Job | Wait:
        while True:
            res = await self._claim(
                keys=[self.prefix + "due", self.prefix + "glog", self.prefix + "lease"],
                args=[
                    self.prefix,
                    self._global[0],
                    self._lease_ms,
                    token,
                    self._global[1],
                    self._global[2],
                    self._log_ttl_ms,
                ],
            )
            kind = res[0]
            if kind == "again":
                continue
            if kind != "job":
                return Wait(int(res[1]))
            flat = cast(list[str], res[3])
            fields = dict(zip(flat[0::2], flat[1::2], strict=True))
            ids = fields.get("ids", "")
            return Job(
                id=str(res[2]),
                chat=str(res[1]),
                token=token,
                method=fields.get("method", ""),
                payload=json.loads(fields.get("payload") or "{}"),
                attempts=int(fields.get("attempts", "1")),
                sent_ids=tuple(int(x) for x in ids.split(",") if x),
                ambiguous=bool(res[4]),
                blocked=bool(res[5]),
            )

    async def complete(
        self,
        job: Job,
        outcome: str,
        body: Mapping[str, Any] | None = None,
        *,
        delay_ms: int = 0,
        counted: bool = False,
        part_id: int = 0,
        blocked_ttl: int = 0,
        reason: str = "",
    ) -> bool:
        """Record a job's outcome; False when the lease was lost meanwhile.

        ``counted``: Telegram may have counted the request (its rate window) and
        a retry uses up an attempt; a flood wait (429) is neither.
        """
        done = await self._complete(
            keys=[self.prefix + "due", self.prefix + "lease", self.prefix + "glog"],
            args=[
                self.prefix,
                job.chat,
                job.id,
                job.token,
                outcome,
                json.dumps(body or {}, ensure_ascii=False),
                max(0, delay_ms),
                self._ttl,
                "1" if counted else "0",
                part_id,
                blocked_ttl,
                reason,
                self._log_ttl_ms,
            ],
        )
        self.wake.set()
        return bool(done)

    # -- notifications ---------------------------------------------------

    def start_listener(self) -> None:
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="notifier-outbox-listener")

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None

    def _wake_all(self) -> None:
        self.wake.set()
        for futs in self._waiters.values():
            for fut in futs:
                if not fut.done():
                    fut.set_result(None)

    async def _listen(self) -> None:
        with untraced():
            await self._listen_untraced()

    async def _listen_untraced(self) -> None:
        events, wake = self.prefix + "events", self.prefix + "wake"
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(events, wake)
                self._wake_all()
                while True:
                    msg = await pubsub.get_message(timeout=1.0)
                    if msg is None:
                        continue
                    if msg["channel"] == wake:
                        self.wake.set()
                    else:
                        for fut in self._waiters.get(str(msg["data"]), ()):
                            if not fut.done():
                                fut.set_result(None)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as err:
                # Waiters poll meanwhile; just come back.
                log.warning("outbox subscription lost: %s", type(err).__name__)
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
