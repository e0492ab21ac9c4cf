"""The worker side of the outbox: claim a chat, call Telegram, record the outcome.

One dispatcher per process claims jobs one at a time (a claim is a single
short script) and hands each to a task, at most ``max_inflight`` at once.
Per-chat order holds because a claimed chat stays leased until its job's
outcome is recorded; the limits hold because the claim and completion
scripts keep them in Redis for every replica.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import time
import uuid
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from redis.exceptions import RedisError

from notifier.config import NotifierSettings
from notifier.metrics import NotifierMetrics
from notifier.outbox import ENQUEUED_FIELD, TRACE_FIELD, Job, Outbox, Wait
from notifier.telegram import Permanent, TelegramClient, Transient
from voxmesh.telemetry import context_from, untraced

log = logging.getLogger(__name__)

# The longest the dispatcher sleeps without looking again: covers leases
# that expire and wake-ups lost while pub/sub reconnects.
_MAX_IDLE_SECONDS = 0.5


def backoff_seconds(
    attempt: int, retry_after: float | None, *, base: float, cap: float, rng: random.Random
) -> float:
    """Capped exponential backoff with jitter; Telegram's retry_after wins when given."""
    if retry_after is not None and retry_after > 0:
        # A little extra spreads the retries of many chats told the same wait.
        return retry_after + rng.uniform(0.0, min(1.0, 0.1 * retry_after))
    delay = min(cap, base * 2.0 ** max(0, attempt - 1))
    return float(delay / 2 + rng.uniform(0.0, delay / 2))


class Deliverer:
    """Runs the dispatcher loop until :meth:`stop`."""

    def __init__(
        self,
        outbox: Outbox,
        telegram: TelegramClient,
        settings: NotifierSettings,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._outbox = outbox
        self._tg = telegram
        self._settings = settings
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._slots = asyncio.Semaphore(settings.max_inflight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        # One token per process: a lease it holds is recognisably its own.
        self._token = uuid.uuid4().hex
        self._tracer = trace.get_tracer("voxmesh.notifier")
        self.metrics: NotifierMetrics | None = None

    def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._run(), name="notifier-dispatcher")

    async def stop(self, grace: float = 5.0) -> None:
        """Stop claiming; let deliveries in flight finish within ``grace``."""
        self._stopping.set()
        self._outbox.wake.set()
        if self._loop_task is not None:
            await self._loop_task
            self._loop_task = None
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                # Their leases expire and another worker delivers them.
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*pending, return_exceptions=True)

    async def _run(self) -> None:
        with untraced():
            await self._dispatch()

    async def _dispatch(self) -> None:
        wake = self._outbox.wake
        while not self._stopping.is_set():
            await self._slots.acquire()
            wake.clear()
            try:
                claimed = await self._outbox.claim(self._token)
            except RedisError as err:
                self._slots.release()
                log.warning("outbox claim failed: %s", type(err).__name__)
                await self._sleep(wake, 0.5)
                continue
            except Exception:
                self._slots.release()
                log.exception("outbox claim failed")
                await self._sleep(wake, 0.5)
                continue
            if isinstance(claimed, Wait):
                self._slots.release()
                idle = _MAX_IDLE_SECONDS if claimed.ms < 0 else claimed.ms / 1000
                await self._sleep(wake, min(idle, _MAX_IDLE_SECONDS))
                continue
            task = asyncio.create_task(self._deliver_then_release(claimed))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _sleep(self, wake: asyncio.Event, seconds: float) -> None:
        if seconds <= 0 or self._stopping.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), seconds)

    async def _deliver_then_release(self, job: Job) -> None:
        try:
            await self.deliver(job)
        except RedisError as err:
            # The lease expires and the job is claimed again.
            log.warning("recording outcome of job %s failed: %s", job.id, type(err).__name__)
        except Exception as err:
            # A bug, not Telegram: retrying would jam the chat's queue forever.
            # Bury the job (dead letters keep the reason) and let the chat move on.
            log.exception("delivering job %s failed", job.id)
            with contextlib.suppress(RedisError):
                await self._outbox.complete(
                    job,
                    "dead",
                    _error("INTERNAL", "INTERNAL", "the message could not be sent"),
                    reason=f"unexpected {type(err).__name__}",
                )
        finally:
            self._slots.release()

    async def deliver(self, job: Job) -> None:
        enqueued = job.payload.get(ENQUEUED_FIELD)
        if self.metrics is not None and isinstance(enqueued, float) and job.attempts <= 1:
            self.metrics.wait.observe(max(0.0, time.time() - enqueued))
        # The dispatcher loop runs untraced; a delivery belongs to its caller's trace.
        token = otel_context.attach(context_from(job.payload.get(TRACE_FIELD) or {}))
        try:
            with self._tracer.start_as_current_span(
                f"notifier.deliver/{job.method}",
                kind=SpanKind.CONSUMER,
                attributes={"telegram.chat_id": job.chat, "notifier.attempt": job.attempts},
            ):
                await self._deliver(job)
        finally:
            otel_context.detach(token)

    async def _deliver(self, job: Job) -> None:
        if job.ambiguous:
            # The last worker died while Telegram had this request; it may have
            # been sent. Delivering again risks a duplicate, dropping risks a
            # loss; a paid transcript must not be lost.
            log.warning("job %s was in flight when its worker died; sending again", job.id)
        if job.blocked:
            await self._outbox.complete(
                job,
                "failed",
                _error("FAILED_PRECONDITION", "TELEGRAM_FORBIDDEN", "the chat has blocked the bot"),
            )
            return
        p = job.payload
        chat = int(job.chat)
        try:
            if job.method == "send":
                parts: list[str] = p["parts"]
                index = len(job.sent_ids)
                last = index == len(parts) - 1
                sent = await self._tg.send_message(
                    chat,
                    parts[index],
                    html=p["html"],
                    reply_to=p["reply_to"] if index == 0 else 0,
                    buttons=_buttons(p["buttons"]) if last else None,
                )
                if not last:
                    await self._outbox.complete(job, "part", counted=True, part_id=sent.message_id)
                    return
                ids = [*job.sent_ids, sent.message_id]
                body: dict[str, Any] = {"message_id": sent.message_id, "message_ids": ids}
            elif job.method == "edit":
                await self._tg.edit_message(
                    chat,
                    p["message_id"],
                    p["text"],
                    html=p["html"],
                    buttons=_buttons(p["buttons"]),
                )
                body = {"message_id": p["message_id"], "coalesced": False}
            elif job.method == "document":
                sent = await self._tg.send_document(
                    chat,
                    p["filename"],
                    base64.b64decode(p["content"]),
                    caption=p["caption"],
                    reply_to=p["reply_to"],
                )
                body = {"message_id": sent.message_id}
            elif job.method == "delete":
                deleted = await self._tg.delete_message(chat, p["message_id"])
                body = {"deleted": deleted}
            else:
                await self._outbox.complete(
                    job,
                    "dead",
                    _error("INTERNAL", "INTERNAL", "unknown job kind"),
                    reason=f"unknown method {job.method!r}",
                )
                return
        except Permanent as err:
            reason = "TELEGRAM_FORBIDDEN" if err.forbidden else "TELEGRAM_BAD_REQUEST"
            log.info("telegram refused job %s in chat %s: %s", job.id, chat, reason)
            await self._outbox.complete(
                job,
                "failed",
                _error("FAILED_PRECONDITION", reason, err.description),
                blocked_ttl=self._settings.blocked_ttl_seconds if err.forbidden else 0,
            )
            return
        except Transient as err:
            await self._retry_or_bury(job, err.description, err.retry_after)
            return
        await self._outbox.complete(job, "done", body, counted=job.method != "delete")

    async def _retry_or_bury(self, job: Job, description: str, retry_after: float | None) -> None:
        s = self._settings
        delay = backoff_seconds(
            job.attempts,
            retry_after,
            base=s.backoff_base_seconds,
            cap=s.backoff_cap_seconds,
            rng=self._rng,
        )
        # A flood wait (429 with retry_after) was not counted by Telegram, and is
        # not a failed attempt either: only failures use up max_attempts (the
        # outbox gives the attempt back), however long Telegram asks us to wait.
        failed = retry_after is None
        if failed and job.attempts >= s.max_attempts:
            log.warning("job %s dead after %d attempts: %s", job.id, job.attempts, description)
            await self._outbox.complete(
                job,
                "dead",
                _error("UNAVAILABLE", "TELEGRAM_UNAVAILABLE", description, retry_after=delay),
                reason=description,
                counted=True,
            )
            return
        log.info(
            "job %s attempt %d failed, retry in %.2fs: %s", job.id, job.attempts, delay, description
        )
        await self._outbox.complete(job, "retry", delay_ms=int(delay * 1000), counted=failed)


def _error(
    code: str, reason: str, description: str, *, retry_after: float | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"code": code, "reason": reason, "description": description}
    if retry_after is not None:
        out["retry_after"] = round(retry_after, 3)
    return out


def _buttons(rows: list[list[list[str]]]) -> list[list[tuple[str, str]]]:
    return [[(b[0], b[1]) for b in row] for row in rows]
