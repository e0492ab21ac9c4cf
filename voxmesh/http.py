"""The one way to put an aiohttp application on a port (the facade, the dev servers)."""

from __future__ import annotations

from aiohttp import web


async def serve_http(runner: web.AppRunner, host: str, port: int) -> int:
    """Set ``runner`` up and listen on host:port (0 picks a free port); return the port."""
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    # aiohttp exposes the bound port only on the site's private server.
    sockets = getattr(site._server, "sockets", None) or []
    return int(sockets[0].getsockname()[1]) if sockets else port
