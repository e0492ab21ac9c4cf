"""The HTTP front of the emulator: ``/bot<token>/<method>`` and ``/file/bot<token>/<path>``.

Each request is checked (token), parsed (:mod:`voxmesh_dev.telegram.params`), perhaps failed
on purpose (:mod:`voxmesh_dev.telegram.faults`), run by the method group that owns the
method, answered in the Bot API's envelope and recorded in ``state.calls``, faults included,
so a test sees every call as the client saw it (or did not).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
from aiohttp import web

from voxmesh_dev.telegram.faults import FaultPolicy, injected_error, lose
from voxmesh_dev.telegram.params import (
    ApiError,
    Handler,
    Params,
    UploadedFile,
    error_body,
    read_multipart,
    read_request,
)
from voxmesh_dev.telegram.records import RecordedCall
from voxmesh_dev.telegram.state import BotState

log = logging.getLogger(__name__)


class Dispatcher:
    """Routes Bot API requests to the method table; ``methods`` is filled by the emulator."""

    def __init__(self, *, token: str, state: BotState, closing: asyncio.Event) -> None:
        self.token = token
        self.state = state
        self.faults = FaultPolicy()
        # Lower-cased method name -> handler: Telegram's method names are case-insensitive.
        self.methods: dict[str, Handler] = {}
        self._closing = closing

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_route("*", "/bot{token}/{method}", self.handle_api)
        router.add_get("/file/bot{token}/{path:.+}", self.handle_download)

    async def handle_api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            body = error_body(ApiError(401, "Unauthorized"))
            self.record(method, {}, 401, body)
            return web.json_response(body, status=401)
        try:
            params = await read_request(request, self.state.upload_limit)
        except ApiError as exc:
            body = error_body(exc)
            self.record(method, {}, exc.status, body)
            return web.json_response(body, status=exc.status)
        fault = self.faults.pick(method)
        if fault in ("429", "500"):
            injected = injected_error(fault, self.faults.retry_after)
            body = error_body(injected)
            self.record(method, params.recorded(), injected.status, body, fault=fault)
            return web.json_response(body, status=injected.status)
        # A hang or drop before the method runs: nothing happened, and the client can't tell.
        if fault is not None and not self.faults.lose_response:
            self.record(method, params.recorded(), 0, None, fault=fault)
            return await lose(request, fault, self.faults.hang_seconds, self._closing)
        status, body = await self.run_method(method, params)
        self.record(method, params.recorded(), 0 if fault else status, body, fault=fault)
        # ...or after it ran (lose_response): it happened, and the client can't tell either.
        if fault is not None:
            return await lose(request, fault, self.faults.hang_seconds, self._closing)
        return web.json_response(body, status=status)

    async def handle_download(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        stored = self.state.files_by_path.get(path)
        if request.match_info["token"] != self.token or stored is None:
            self.record("download", {"file_path": path}, 404, None)
            # the real file server answers unknown paths with a bare 404
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
            )
        fault = self.faults.pick("download")
        if fault in ("429", "500"):
            status = int(fault)
            self.record("download", {"file_path": path}, status, None, fault=fault)
            return web.Response(
                status=status,
                text="Too Many Requests" if status == 429 else "Internal Server Error",
            )
        if fault is not None:
            self.record("download", {"file_path": path}, 0, None, fault=fault)
            return await lose(request, fault, self.faults.hang_seconds, self._closing)
        self.record("download", {"file_path": path}, 200, None)
        return web.Response(body=stored.content, content_type="application/octet-stream")

    async def run_method(self, method: str, params: Params) -> tuple[int, dict[str, Any]]:
        handler = self.methods.get(method.lower())
        try:
            if handler is None:
                raise ApiError(404, "Not Found")
            result = await handler(params)
        except ApiError as exc:
            return exc.status, error_body(exc)
        body: dict[str, Any] = {"ok": True, "result": result}
        return 200, body

    def record(
        self,
        method: str,
        params: dict[str, Any],
        status: int,
        body: dict[str, Any] | None,
        *,
        fault: str | None = None,
    ) -> None:
        error_code = None
        description = None
        if body is not None and not body.get("ok", True):
            error_code = body.get("error_code")
            description = body.get("description")
        elif fault is not None and status == 0:
            description = f"injected fault: {fault}"
        self.state.calls.append(
            RecordedCall(
                method=method,
                params=params,
                time=time.time(),
                status=status,
                error_code=error_code,
                description=description,
                fault=fault,
            )
        )
        if error_code is not None:
            log.debug("bot api %s -> %s %s", method, error_code, description)

    async def run_webhook_reply(self, resp: aiohttp.ClientResponse) -> None:
        """Execute a Bot API method sent back in the webhook's answer, as Telegram does."""
        values: dict[str, Any]
        files: dict[str, UploadedFile] = {}
        if resp.content_type == "application/json":
            try:
                body = await resp.json()
            except ValueError:
                return
            if not isinstance(body, dict):
                return
            values = body
        elif resp.content_type == "multipart/form-data":
            reader = aiohttp.MultipartReader(resp.headers, resp.content)
            try:
                values, files = await read_multipart(reader, self.state.upload_limit)
            except ApiError:
                return
        else:
            await resp.read()
            return
        method = values.pop("method", None)
        if not isinstance(method, str):
            return
        params = Params(values, files)
        # Telegram tells the bot nothing of how it went: the outcome is only recorded.
        status, body = await self.run_method(method, params)
        self.record(method, params.recorded(), status, body)
