"""The one validation layer: every request is checked here, field by field,
and turned into a domain command before any work starts.

A bad field is INVALID_ARGUMENT (reason INVALID_REQUEST) with metadata
"field" naming it, so callers can point at what they sent wrong.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
import uuid

from google.protobuf.message import Message

from billing import domain, jobs
from billing.domain import (
    MAX_AMOUNT_CREDITS,
    MAX_DURATION_SECONDS,
    MAX_HOLD_TTL_SECONDS,
    IdempotencyKey,
    Role,
)
from billing.v1 import billing_pb2 as pb
from voxmesh.errors import invalid_field

MAX_KEY_CHARS = 128
MAX_REASON_CHARS = 256
MAX_USERNAME_CHARS = 64
MAX_LANGUAGE_CHARS = 16
MAX_FILE_ID_CHARS = 512
MAX_PROVIDER_CHARS = 64
MAX_CHARGE_ID_CHARS = 256
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100

MAX_SPEC_BYTES = 16 * 1024
MAX_OWNER_CHARS = 128
MAX_OUTCOME_CHARS = 64

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_PAGE_TOKEN = struct.Struct(">qq")
# ListRunnableJobs cursor: (the user's oldest movable job's seq, user id).
_RUNNABLE_TOKEN = struct.Struct(">qq")
_FINISHED = {
    pb.JOB_STATE_DONE: jobs.JobState.DONE,
    pb.JOB_STATE_FAILED: jobs.JobState.FAILED,
    pb.JOB_STATE_CANCELLED: jobs.JobState.CANCELLED,
}
# ListStaleJobs cursor: (create_time in microseconds since the epoch, hold id).
_STALE_TOKEN = struct.Struct(">q16s")
MAX_STALE_AGE_SECONDS = 7 * 86400

_ROLES = {
    pb.ROLE_USER: Role.USER,
    pb.ROLE_ADMIN: Role.ADMIN,
    pb.ROLE_BANNED: Role.BANNED,
}


def _user_id(value: int, field: str = "user_id") -> int:
    if value <= 0:
        raise invalid_field(field, f"{field} must be a positive Telegram user id")
    return value


def _amount(value: int, field: str = "amount_credits", *, allow_zero: bool = False) -> int:
    low = 0 if allow_zero else 1
    if not low <= value <= MAX_AMOUNT_CREDITS:
        raise invalid_field(field, f"{field} must be {low} to {MAX_AMOUNT_CREDITS}")
    return value


def _text(value: str, field: str, max_chars: int, *, required: bool = False) -> str:
    if required and not value:
        raise invalid_field(field, f"{field} is required")
    if len(value) > max_chars:
        raise invalid_field(field, f"{field} is longer than {max_chars} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise invalid_field(field, f"{field} contains control characters")
    return value


def _uuid(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise invalid_field(field, f"{field} is not a UUID") from None


def _hold_id(value: str) -> uuid.UUID:
    return _uuid(value, "hold_id")


def _trace_id(value: str, field: str) -> str:
    if value and not _TRACE_ID.match(value):
        raise invalid_field(field, f"{field} must be 32 lowercase hex characters")
    return value


def _digest(request: Message) -> bytes:
    return hashlib.sha256(request.SerializeToString(deterministic=True)).digest()


def idempotency_key(
    method: str, request: Message, *, ignore: tuple[str, ...] = ()
) -> IdempotencyKey:
    """The key, scoped to ``method``, with the hash of what the caller asked for.

    The hash covers the deterministic serialisation of the request with the
    key cleared, and the fields named in ``ignore`` ("job.trace_id": a
    nested one) too: those say how, not what (a re-delivered update brings a
    new trace id), so a request differing only there is a replay. The hash
    of the whole request, what keys stored before were checked against, is
    accepted as well.
    """
    key: str = getattr(request, "idempotency_key")  # noqa: B009 - every keyed request has it
    _text(key, "idempotency_key", MAX_KEY_CHARS, required=True)
    body = type(request)()
    body.CopyFrom(request)
    body.ClearField("idempotency_key")
    legacy = _digest(body)
    for path in ignore:
        *parents, name = path.split(".")
        holder: Message | None = body
        for parent in parents:
            # An absent parent has nothing to clear (and touching it would set it).
            holder = (
                getattr(holder, parent) if holder is not None and holder.HasField(parent) else None
            )
        if holder is not None:
            holder.ClearField(name)
    digest = _digest(body)
    return IdempotencyKey(
        method=method, key=key, request_hash=digest, legacy_hash=legacy if ignore else None
    )


def ensure_user(req: pb.EnsureUserRequest) -> domain.EnsureUser:
    return domain.EnsureUser(
        user_id=_user_id(req.user_id),
        username=_text(req.username, "username", MAX_USERNAME_CHARS),
        language_code=_text(req.language_code, "language_code", MAX_LANGUAGE_CHARS),
    )


def user_id(
    req: pb.GetUserRequest | pb.GetBalanceRequest | pb.CancelJobRequest | pb.EraseUserRequest,
) -> int:
    return _user_id(req.user_id)


def quote(req: pb.QuoteRequest) -> int:
    if not 1 <= req.duration_seconds <= MAX_DURATION_SECONDS:
        raise invalid_field(
            "duration_seconds", f"duration_seconds must be 1 to {MAX_DURATION_SECONDS}"
        )
    return req.duration_seconds


def _job(req: pb.ReserveRequest) -> domain.Job:
    if not req.HasField("job"):
        raise invalid_field("job", "job is required")
    job = req.job
    if job.chat_id == 0:
        raise invalid_field("job.chat_id", "job.chat_id is required")
    if job.message_id <= 0:
        raise invalid_field("job.message_id", "job.message_id must be positive")
    if not 0 <= job.duration_seconds <= MAX_DURATION_SECONDS:
        raise invalid_field(
            "job.duration_seconds", f"job.duration_seconds must be 0 to {MAX_DURATION_SECONDS}"
        )
    return domain.Job(
        chat_id=job.chat_id,
        message_id=job.message_id,
        file_id=_text(job.file_id, "job.file_id", MAX_FILE_ID_CHARS),
        duration_seconds=job.duration_seconds,
        trace_id=_trace_id(job.trace_id, "job.trace_id"),
        job_id=_uuid(job.job_id, "job.job_id") if job.job_id else None,
    )


def _ttl(req: pb.ReserveRequest | pb.ExtendHoldRequest) -> int | None:
    if not req.HasField("ttl"):
        return None
    ttl = req.ttl
    if ttl.nanos or not 1 <= ttl.seconds <= MAX_HOLD_TTL_SECONDS:
        raise invalid_field("ttl", f"ttl must be whole seconds, 1 to {MAX_HOLD_TTL_SECONDS}")
    return int(ttl.seconds)


def reserve(req: pb.ReserveRequest) -> tuple[IdempotencyKey, domain.Reserve]:
    idem = idempotency_key("Reserve", req, ignore=("job.trace_id",))
    return idem, domain.Reserve(
        user_id=_user_id(req.user_id),
        amount_credits=_amount(req.amount_credits),
        job=_job(req),
        ttl_seconds=_ttl(req),
    )


def capture(req: pb.CaptureRequest) -> tuple[IdempotencyKey, domain.Capture]:
    idem = idempotency_key("Capture", req)
    return idem, domain.Capture(
        hold_id=_hold_id(req.hold_id),
        amount_credits=_amount(req.amount_credits, allow_zero=True),
    )


def release(req: pb.ReleaseRequest) -> tuple[IdempotencyKey, domain.Release]:
    idem = idempotency_key("Release", req)
    return idem, domain.Release(
        hold_id=_hold_id(req.hold_id), reason=_text(req.reason, "reason", MAX_REASON_CHARS)
    )


def extend_hold(req: pb.ExtendHoldRequest) -> tuple[IdempotencyKey, domain.ExtendHold]:
    idem = idempotency_key("ExtendHold", req)
    return idem, domain.ExtendHold(
        hold_id=_hold_id(req.hold_id),
        amount_credits=_amount(req.amount_credits),
        ttl_seconds=_ttl(req),
    )


def get_hold(req: pb.GetHoldRequest) -> uuid.UUID:
    return _hold_id(req.hold_id)


def top_up(req: pb.TopUpRequest) -> tuple[IdempotencyKey, domain.TopUp]:
    idem = idempotency_key("TopUp", req)
    return idem, domain.TopUp(
        user_id=_user_id(req.user_id),
        amount_credits=_amount(req.amount_credits),
        provider=_text(req.provider, "provider", MAX_PROVIDER_CHARS, required=True),
        provider_charge_id=_text(
            req.provider_charge_id, "provider_charge_id", MAX_CHARGE_ID_CHARS, required=True
        ),
    )


def refund_top_up(req: pb.RefundTopUpRequest) -> tuple[IdempotencyKey, domain.RefundTopUp]:
    idem = idempotency_key("RefundTopUp", req)
    return idem, domain.RefundTopUp(
        provider=_text(req.provider, "provider", MAX_PROVIDER_CHARS, required=True),
        provider_charge_id=_text(
            req.provider_charge_id, "provider_charge_id", MAX_CHARGE_ID_CHARS, required=True
        ),
        reason=_text(req.reason, "reason", MAX_REASON_CHARS),
    )


def refund(req: pb.RefundRequest) -> tuple[IdempotencyKey, domain.Refund]:
    idem = idempotency_key("Refund", req)
    return idem, domain.Refund(
        hold_id=_hold_id(req.hold_id),
        amount_credits=_amount(req.amount_credits),
        reason=_text(req.reason, "reason", MAX_REASON_CHARS),
    )


def grant(req: pb.GrantRequest) -> tuple[IdempotencyKey, domain.Grant]:
    idem = idempotency_key("Grant", req)
    return idem, domain.Grant(
        actor_user_id=_user_id(req.actor_user_id, "actor_user_id"),
        user_id=_user_id(req.user_id),
        amount_credits=_amount(req.amount_credits),
    )


def set_role(req: pb.SetRoleRequest) -> domain.SetRole:
    actor = _user_id(req.actor_user_id, "actor_user_id")
    target = _user_id(req.user_id)
    role = _ROLES.get(req.role)
    if role is None:
        raise invalid_field("role", "role must be ROLE_USER, ROLE_ADMIN or ROLE_BANNED")
    return domain.SetRole(actor_user_id=actor, user_id=target, role=role)


def stats(req: pb.StatsRequest) -> int:
    return _user_id(req.actor_user_id, "actor_user_id")


def list_transactions(req: pb.ListTransactionsRequest) -> tuple[int, int | None, int]:
    """(user id, transaction id to page below or None, page size)."""
    uid = _user_id(req.user_id)
    if req.page_size < 0 or req.page_size > MAX_PAGE_SIZE:
        raise invalid_field("page_size", f"page_size must be 0 to {MAX_PAGE_SIZE}")
    size = req.page_size or DEFAULT_PAGE_SIZE
    before = decode_page_token(req.page_token, uid) if req.page_token else None
    return uid, before, size


def encode_page_token(user_id: int, before_id: int) -> str:
    raw = _PAGE_TOKEN.pack(user_id, before_id)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str, user_id: int) -> int:
    """The cursor in a token from encode_page_token, for the same user only."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        owner, before = _PAGE_TOKEN.unpack(raw)
    except (binascii.Error, struct.error, ValueError):
        raise invalid_field("page_token", "page_token is not a token from this API") from None
    if owner != user_id or before <= 0:
        raise invalid_field("page_token", "page_token belongs to another listing")
    return int(before)


def list_stale_jobs(
    req: pb.ListStaleJobsRequest,
) -> tuple[int, int, tuple[int, uuid.UUID] | None]:
    """(age in seconds, page size, cursor after which to list or None)."""
    if not 1 <= req.older_than_seconds <= MAX_STALE_AGE_SECONDS:
        raise invalid_field(
            "older_than_seconds", f"older_than_seconds must be 1 to {MAX_STALE_AGE_SECONDS}"
        )
    if req.page_size < 0 or req.page_size > MAX_PAGE_SIZE:
        raise invalid_field("page_size", f"page_size must be 0 to {MAX_PAGE_SIZE}")
    after = decode_stale_token(req.page_token) if req.page_token else None
    return req.older_than_seconds, req.page_size or DEFAULT_PAGE_SIZE, after


def encode_stale_token(create_micros: int, hold_id: uuid.UUID) -> str:
    raw = _STALE_TOKEN.pack(create_micros, hold_id.bytes)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_stale_token(token: str) -> tuple[int, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        micros, hold = _STALE_TOKEN.unpack(raw)
    except (binascii.Error, struct.error, ValueError):
        raise invalid_field("page_token", "page_token is not a token from this API") from None
    return int(micros), uuid.UUID(bytes=hold)


# --- durable jobs ------------------------------------------------------------


def submit_job(req: pb.SubmitJobRequest) -> tuple[IdempotencyKey, jobs.SubmitJob]:
    # The spec is how to run the note, serialised by the caller (a re-delivered
    # update may serialise it differently); the note itself is user, chat, message.
    idem = idempotency_key("SubmitJob", req, ignore=("spec", "trace_id"))
    if req.chat_id == 0:
        raise invalid_field("chat_id", "chat_id is required")
    if req.message_id <= 0:
        raise invalid_field("message_id", "message_id must be positive")
    if len(req.spec) > MAX_SPEC_BYTES:
        raise invalid_field("spec", f"spec is larger than {MAX_SPEC_BYTES} bytes")
    return idem, jobs.SubmitJob(
        user_id=_user_id(req.user_id),
        chat_id=req.chat_id,
        message_id=req.message_id,
        spec=req.spec,
        trace_id=_trace_id(req.trace_id, "trace_id"),
    )


def _lease(req: pb.ClaimJobRequest | pb.RenewJobRequest, bounds: tuple[float, float]) -> float:
    low, high = bounds
    seconds = req.lease.seconds + req.lease.nanos / 1e9
    if not req.HasField("lease") or not low <= seconds <= high:
        raise invalid_field("lease", f"lease must be {low:g} to {high:g} seconds")
    return seconds


def _attempt(value: int) -> int:
    if value <= 0:
        raise invalid_field("attempt", "attempt must be the positive attempt of a claim")
    return value


def claim_job(req: pb.ClaimJobRequest, lease_bounds: tuple[float, float]) -> jobs.ClaimJob:
    return jobs.ClaimJob(
        user_id=_user_id(req.user_id),
        owner=_text(req.owner, "owner", MAX_OWNER_CHARS),
        lease_seconds=_lease(req, lease_bounds),
    )


def renew_job(req: pb.RenewJobRequest, lease_bounds: tuple[float, float]) -> jobs.RenewJob:
    return jobs.RenewJob(
        job_id=_uuid(req.job_id, "job_id"),
        attempt=_attempt(req.attempt),
        lease_seconds=_lease(req, lease_bounds),
    )


def finish_job(req: pb.FinishJobRequest) -> jobs.FinishJob:
    state = _FINISHED.get(req.state)
    if state is None:
        raise invalid_field(
            "state", "state must be JOB_STATE_DONE, JOB_STATE_FAILED or JOB_STATE_CANCELLED"
        )
    return jobs.FinishJob(
        job_id=_uuid(req.job_id, "job_id"),
        attempt=_attempt(req.attempt),
        state=state,
        outcome=_text(req.outcome, "outcome", MAX_OUTCOME_CHARS, required=True),
    )


def attach_job_message(req: pb.AttachJobMessageRequest) -> tuple[uuid.UUID, int]:
    job_id = _uuid(req.job_id, "job_id")
    if req.status_message_id <= 0:
        raise invalid_field("status_message_id", "status_message_id must be positive")
    return job_id, req.status_message_id


def list_runnable_jobs(req: pb.ListRunnableJobsRequest) -> tuple[int, tuple[int, int] | None]:
    """(page size, cursor after which to list or None)."""
    if req.page_size < 0 or req.page_size > MAX_PAGE_SIZE:
        raise invalid_field("page_size", f"page_size must be 0 to {MAX_PAGE_SIZE}")
    after = None
    if req.page_token:
        try:
            raw = base64.urlsafe_b64decode(req.page_token + "=" * (-len(req.page_token) % 4))
            seq, user = _RUNNABLE_TOKEN.unpack(raw)
        except (binascii.Error, struct.error, ValueError):
            raise invalid_field("page_token", "page_token is not a token from this API") from None
        after = (int(seq), int(user))
    return req.page_size or DEFAULT_PAGE_SIZE, after


def encode_runnable_token(seq: int, user: int) -> str:
    return base64.urlsafe_b64encode(_RUNNABLE_TOKEN.pack(seq, user)).decode().rstrip("=")


def role_to_proto(role: Role) -> pb.Role:
    for value, name in _ROLES.items():
        if name is role:
            return value
    raise AssertionError(role)
