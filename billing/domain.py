"""Billing rules in plain Python: prices, who may do what, what a hold allows.

No gRPC and no database here. The store (billing/store.py is its port) calls
these checks while it
holds the row locks, so a decision is always made on the current state;
each check raises the :mod:`voxmesh.errors` error a caller should see.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime

from voxmesh.errors import FailedPrecondition, NotFound, PermissionDenied, invalid_field

# One bound for every amount a request may carry: far above any real
# payment, far below where bigint sums over a user's history could overflow.
MAX_AMOUNT_CREDITS = 10**12
MAX_DURATION_SECONDS = 86_400
# The longest a hold may stay pending, whoever sets it (config or the caller).
MAX_HOLD_TTL_SECONDS = 7 * 86_400


class Role(enum.StrEnum):
    USER = "user"
    ADMIN = "admin"
    BANNED = "banned"


class HoldState(enum.StrEnum):
    PENDING = "pending"
    CAPTURED = "captured"
    RELEASED = "released"
    EXPIRED = "expired"


class TxKind(enum.StrEnum):
    """Why credits moved. HOLD and RELEASE shuttle credits between a user and
    escrow; the others change what the user owns and make up their statement."""

    TRIAL = "trial"
    TOP_UP = "top_up"
    CAPTURE = "capture"
    REFUND = "refund"
    GRANT = "grant"
    HOLD = "hold"
    RELEASE = "release"
    TOP_UP_REFUND = "top_up_refund"


STATEMENT_KINDS = (
    TxKind.TRIAL,
    TxKind.TOP_UP,
    TxKind.CAPTURE,
    TxKind.REFUND,
    TxKind.GRANT,
    TxKind.TOP_UP_REFUND,
)
# Kinds that take credits from the user's book balance (shown as negative).
_DEBIT_KINDS = frozenset({TxKind.CAPTURE, TxKind.TOP_UP_REFUND})


@dataclass(frozen=True)
class Pricing:
    per_minute_credits: int

    def price(self, duration_seconds: int) -> int:
        """ceil(seconds * per_minute / 60), at least 1 credit, in integers only."""
        return max(1, -(-duration_seconds * self.per_minute_credits // 60))

    def seconds_for(self, balance_credits: int) -> int:
        """The longest audio whose price fits in ``balance_credits``."""
        if balance_credits <= 0:
            return 0
        return balance_credits * 60 // self.per_minute_credits


@dataclass(frozen=True)
class User:
    user_id: int
    username: str
    language_code: str
    role: Role
    create_time: datetime


@dataclass(frozen=True)
class Balance:
    balance_credits: int
    held_credits: int


@dataclass(frozen=True)
class Job:
    chat_id: int
    message_id: int
    file_id: str
    duration_seconds: int
    trace_id: str
    #: The durable job (SubmitJob) the hold pays for; None for a plain Reserve.
    job_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Hold:
    hold_id: uuid.UUID
    user_id: int
    amount_credits: int
    captured_credits: int
    refunded_credits: int
    state: HoldState
    expire_time: datetime
    job: Job


@dataclass(frozen=True)
class StaleJob:
    """A pending hold older than a threshold: a job its gateway may have abandoned."""

    hold: Hold
    create_time: datetime
    language_code: str


@dataclass(frozen=True)
class HoldResult:
    """A hold after a money call, with the owner's spendable balance."""

    hold: Hold
    balance_credits: int


@dataclass(frozen=True)
class Transaction:
    transaction_id: int
    kind: TxKind
    amount_credits: int  # positive, as stored
    balance_after_credits: int
    description: str
    create_time: datetime

    @property
    def signed_amount(self) -> int:
        """The change of the user's book balance (positive credits the user)."""
        return -self.amount_credits if self.kind in _DEBIT_KINDS else self.amount_credits


@dataclass(frozen=True)
class TransactionResult:
    transaction: Transaction
    balance_credits: int


@dataclass(frozen=True)
class Stats:
    users: int
    holds_pending: int
    credits_held: int
    credits_captured: int
    credits_topped_up: int
    holds_expired: int = 0
    credits_top_up_refunded: int = 0


@dataclass(frozen=True)
class IdempotencyKey:
    """A key scoped to one method, and the hash of the request it came with."""

    method: str
    key: str
    request_hash: bytes
    #: The hash an earlier release computed for the same request, accepted too
    #: so that keys stored before a fingerprint changed keep replaying.
    legacy_hash: bytes | None = None

    def matches(self, stored_hash: bytes) -> bool:
        return stored_hash in (self.request_hash, self.legacy_hash)


# Commands: validated requests, in domain terms.


@dataclass(frozen=True)
class EnsureUser:
    user_id: int
    username: str
    language_code: str


@dataclass(frozen=True)
class Reserve:
    user_id: int
    amount_credits: int
    job: Job
    #: The caller's hold lifetime; None: the configured default.
    ttl_seconds: int | None = None


@dataclass(frozen=True)
class Capture:
    hold_id: uuid.UUID
    amount_credits: int


@dataclass(frozen=True)
class Release:
    hold_id: uuid.UUID
    reason: str


@dataclass(frozen=True)
class ExtendHold:
    hold_id: uuid.UUID
    #: The hold's new total, at least its current amount.
    amount_credits: int
    #: New lifetime from now; None keeps the expiry.
    ttl_seconds: int | None


@dataclass(frozen=True)
class RefundTopUp:
    provider: str
    provider_charge_id: str
    reason: str


@dataclass(frozen=True)
class TopUpRefundResult:
    """A taken-back payment: the ledger row, the balance after, whose it was."""

    transaction: Transaction
    balance_credits: int
    user_id: int


@dataclass(frozen=True)
class TopUp:
    user_id: int
    amount_credits: int
    provider: str
    provider_charge_id: str


@dataclass(frozen=True)
class Refund:
    hold_id: uuid.UUID
    amount_credits: int
    reason: str


@dataclass(frozen=True)
class Grant:
    actor_user_id: int
    user_id: int
    amount_credits: int


@dataclass(frozen=True)
class SetRole:
    actor_user_id: int
    user_id: int
    role: Role


# Rules. Each runs on rows the caller has locked.


def user_not_found(user_id: int) -> NotFound:
    return NotFound(f"user {user_id} not found", metadata={"user_id": user_id})


def hold_not_found(hold_id: uuid.UUID) -> NotFound:
    return NotFound(f"hold {hold_id} not found", metadata={"hold_id": str(hold_id)})


def check_reserve(role: Role, balance_credits: int, amount_credits: int) -> None:
    """A banned user may not reserve; nobody may reserve more than they have."""
    if role is Role.BANNED:
        raise PermissionDenied("user is banned", reason="USER_BANNED")
    if amount_credits > balance_credits:
        raise FailedPrecondition(
            "insufficient funds",
            reason="INSUFFICIENT_FUNDS",
            metadata={"required_credits": amount_credits, "balance_credits": balance_credits},
        )


def check_pending(hold: Hold) -> None:
    if hold.state is not HoldState.PENDING:
        raise FailedPrecondition(
            f"hold is {hold.state.value}, not pending",
            reason="HOLD_NOT_PENDING",
            metadata={"hold_id": str(hold.hold_id), "state": hold.state.value},
        )


def check_capture(hold: Hold, amount_credits: int) -> None:
    """Only a pending hold, and never more than it reserved."""
    check_pending(hold)
    if amount_credits > hold.amount_credits:
        raise FailedPrecondition(
            "capture exceeds the hold",
            reason="CAPTURE_EXCEEDS_HOLD",
            metadata={
                "hold_id": str(hold.hold_id),
                "hold_credits": hold.amount_credits,
                "requested_credits": amount_credits,
            },
        )


def check_refund(hold: Hold, amount_credits: int) -> None:
    """Only what was captured and not refunded yet comes back."""
    if hold.state is not HoldState.CAPTURED:
        raise FailedPrecondition(
            f"hold is {hold.state.value}; only a captured hold can be refunded",
            reason="HOLD_NOT_PENDING",
            metadata={"hold_id": str(hold.hold_id), "state": hold.state.value},
        )
    refundable = hold.captured_credits - hold.refunded_credits
    if amount_credits > refundable:
        raise FailedPrecondition(
            "refund exceeds what was captured",
            reason="CAPTURE_EXCEEDS_HOLD",
            metadata={
                "hold_id": str(hold.hold_id),
                "refundable_credits": refundable,
                "requested_credits": amount_credits,
            },
        )


def require_admin(role: Role | None) -> None:
    """An unknown actor is refused like a non-admin: no hint who exists."""
    if role is not Role.ADMIN:
        raise PermissionDenied("the caller is not an admin", reason="NOT_ADMIN")


def check_extend(hold: Hold, balance_credits: int, amount_credits: int) -> int:
    """The credits an extension takes from the balance: only a pending hold
    grows, never shrinks, and only by what the user can spend."""
    check_pending(hold)
    if amount_credits < hold.amount_credits:
        raise invalid_field(
            "amount_credits",
            f"amount_credits must be at least the hold's {hold.amount_credits} credits",
        )
    increase = amount_credits - hold.amount_credits
    if increase > balance_credits:
        raise FailedPrecondition(
            "insufficient funds",
            reason="INSUFFICIENT_FUNDS",
            metadata={"required_credits": increase, "balance_credits": balance_credits},
        )
    return increase


def charge_not_found(provider: str, charge_id: str) -> NotFound:
    return NotFound(
        "no top-up with this provider charge id",
        metadata={"provider": provider, "provider_charge_id": charge_id},
    )


def check_refund_top_up(balance_credits: int, amount_credits: int) -> None:
    """Only credits the user still has can be taken back."""
    if amount_credits > balance_credits:
        raise FailedPrecondition(
            "the user already spent these credits",
            reason="BALANCE_TOO_LOW",
            metadata={"balance_credits": balance_credits, "required_credits": amount_credits},
        )
