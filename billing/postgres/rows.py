"""Database rows to domain values, the one place that knows column names."""

from __future__ import annotations

import asyncpg

from billing.domain import Hold, HoldState, Job, Role, Stats, Transaction, TxKind, User
from billing.jobs import JobState, QueuedJob


def user(row: asyncpg.Record) -> User:
    return User(
        user_id=row["user_id"],
        username=row["username"],
        language_code=row["language_code"],
        role=Role(row["role"]),
        create_time=row["create_time"],
    )


def hold(row: asyncpg.Record) -> Hold:
    return Hold(
        hold_id=row["hold_id"],
        user_id=row["user_id"],
        amount_credits=row["amount_credits"],
        captured_credits=row["captured_credits"],
        refunded_credits=row["refunded_credits"],
        state=HoldState(row["state"]),
        expire_time=row["expire_time"],
        job=Job(
            chat_id=row["chat_id"],
            message_id=row["message_id"],
            file_id=row["file_id"],
            duration_seconds=row["duration_seconds"],
            trace_id=row["trace_id"],
            job_id=row["job_id"],
        ),
    )


def transaction(row: asyncpg.Record) -> Transaction:
    return Transaction(
        transaction_id=row["transaction_id"],
        kind=TxKind(row["kind"]),
        amount_credits=row["amount_credits"],
        balance_after_credits=row["balance_after"],
        description=row["description"],
        create_time=row["create_time"],
    )


def job(row: asyncpg.Record) -> QueuedJob:
    return QueuedJob(
        job_id=row["job_id"],
        user_id=row["user_id"],
        chat_id=row["chat_id"],
        message_id=row["message_id"],
        state=JobState(row["state"]),
        spec=bytes(row["spec"]),
        status_message_id=row["status_message_id"],
        attempt=row["attempt"],
        lease_expire_time=row["lease_expire_time"],
        cancel_requested=row["cancel_requested"],
        hold_id=row["hold_id"],
        create_time=row["create_time"],
        trace_id=row["trace_id"],
        outcome=row["outcome"],
    )


def stats(row: asyncpg.Record | None) -> Stats:
    assert row is not None
    return Stats(
        users=row["users"],
        holds_pending=row["holds_pending"],
        credits_held=row["held"],
        credits_captured=row["captured"],
        credits_topped_up=row["topped_up"],
        holds_expired=row["holds_expired"],
        credits_top_up_refunded=row["top_up_refunded"],
    )
