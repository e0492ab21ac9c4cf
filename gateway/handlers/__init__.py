"""One Router per feature, built fresh by :func:`routers` (order matters: errors last).

Each module registers its handlers in its own ``make_router()`` rather than
on a module-level Router, which could be attached to one Dispatcher only.
"""

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
        start.make_router(),
        account.make_router(),
        payments.make_router(),
        settings.make_router(),
        admin.make_router(),
        groups.make_router(),
        media.make_router(),
        fallback.make_router(),
        errors.make_router(),
    ]
