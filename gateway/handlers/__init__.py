"""One Router per feature, combined once in :func:`routers` (order matters: errors last)."""

from __future__ import annotations

from aiogram import Router

from gateway.handlers import (
    account,
    admin,
    errors,
    fallback,
    groups,
    media,
    payments,
    settings,
    start,
)


def routers() -> list[Router]:
    return [
        start.router,
        account.router,
        payments.router,
        settings.router,
        admin.router,
        groups.router,
        media.router,
        fallback.router,
        errors.router,
    ]
