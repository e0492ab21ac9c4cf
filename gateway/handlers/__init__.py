"""One Router per feature, combined once in :func:`routers`."""

from __future__ import annotations

from aiogram import Router

from gateway.handlers import commands, media


def routers() -> list[Router]:
    return [commands.router, media.router]
