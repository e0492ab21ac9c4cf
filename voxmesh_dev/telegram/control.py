"""The emulator's /_emulator/ JSON endpoints, for tests that run it in another process.

:class:`~voxmesh_dev.telegram.client.EmulatorClient` is their client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from voxmesh_dev.telegram.faults import FaultPolicy

if TYPE_CHECKING:
    from voxmesh_dev.telegram.emulator import BotApiEmulator


class ControlApi:
    """JSON endpoints under /_emulator/ for tests that run the emulator in another process."""

    def __init__(self, emulator: BotApiEmulator) -> None:
        self.emu = emulator

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_post("/_emulator/files", self.add_file)
        router.add_post("/_emulator/updates", self.push_update)
        router.add_get("/_emulator/chats/{chat_id}/messages", self.messages)
        router.add_get("/_emulator/calls", self.calls)
        router.add_get("/_emulator/faults", self.get_faults)
        router.add_post("/_emulator/faults", self.set_faults)
        router.add_post("/_emulator/admins", self.set_admins)
        router.add_post("/_emulator/blocked", self.set_blocked)
        router.add_post("/_emulator/redeliver", self.redeliver)
        router.add_get("/_emulator/webhook/deliveries", self.deliveries)

    async def add_file(self, request: web.Request) -> web.StreamResponse:
        content = await request.read()
        file_id = self.emu.add_file(
            content,
            mime_type=request.query.get("mime_type", "audio/ogg"),
            file_name=request.query.get("file_name"),
        )
        return web.json_response({"file_id": file_id})

    async def push_update(self, request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        kind = body.pop("kind", None)
        try:
            update = body if kind is None else self._build(str(kind), body)
        except (TypeError, ValueError) as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        return web.json_response({"update_id": self.emu.push_update(update)})

    def _build(self, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
        emu = self.emu
        if kind in ("voice", "audio", "video", "video_note"):
            fields[kind] = (fields.pop("file_id"), int(fields.pop("duration")))
            return emu.make_message_update(**fields)
        if kind == "document":
            fields["document"] = fields.pop("file_id")
            return emu.make_message_update(**fields)
        if kind in ("message", "text"):
            for media in ("voice", "audio", "video", "video_note"):
                if fields.get(media) is not None:
                    fields[media] = tuple(fields[media])
            return emu.make_message_update(**fields)
        if kind == "pre_checkout":
            return emu.make_pre_checkout_update(**fields)
        if kind == "successful_payment":
            return emu.make_successful_payment_update(**fields)
        if kind == "callback":
            return emu.make_callback_update(**fields)
        raise ValueError(f"unknown update kind {kind!r}")

    async def messages(self, request: web.Request) -> web.StreamResponse:
        chat_id = int(request.match_info["chat_id"])
        return web.json_response([m.to_json() for m in self.emu.messages(chat_id)])

    async def calls(self, request: web.Request) -> web.StreamResponse:
        calls = self.emu.calls(request.query.get("method"))
        return web.json_response([c.to_json() for c in calls])

    async def get_faults(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.emu.faults.to_json())

    async def set_faults(self, request: web.Request) -> web.StreamResponse:
        try:
            self.emu.faults = FaultPolicy.from_json(await _json_object(request))
        except (TypeError, ValueError) as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        return web.json_response(self.emu.faults.to_json())

    async def set_admins(self, request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        self.emu.set_chat_admins(int(body["chat_id"]), [int(u) for u in body["user_ids"]])
        return web.json_response({"ok": True})

    async def set_blocked(self, request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        self.emu.block_chat(int(body["chat_id"]), bool(body.get("blocked", True)))
        return web.json_response({"ok": True})

    async def redeliver(self, request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        try:
            status = await self.emu.redeliver(int(body["update_id"]))
        except (RuntimeError, KeyError) as exc:
            raise web.HTTPBadRequest(text=f"cannot redeliver: {exc}") from None
        return web.json_response({"status": status})

    async def deliveries(self, request: web.Request) -> web.StreamResponse:
        return web.json_response([d.__dict__ for d in self.emu.webhook_deliveries])


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="body must be a JSON object") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return body
