"""Realistic incoming updates, built the way Telegram would send them (not yet pushed).

A test builds one with a ``make_*_update`` method and hands it to ``push_update``;
:class:`~voxmesh_dev.telegram.emulator.BotApiEmulator` inherits these, so they read
``emu.make_message_update(...)``. Building registers what the update mentions (the user, the
chat, a successful payment's charge) in the :class:`~voxmesh_dev.telegram.state.BotState`,
since a later Bot API call may refer to it.
"""

from __future__ import annotations

import secrets
from typing import Any

from voxmesh_dev.telegram.state import BotState, now, unique_id, without_reply


class UpdateFactory:
    """The ``make_*_update`` helpers, over one emulator's state."""

    def __init__(self, state: BotState) -> None:
        self.state = state

    def make_message_update(
        self,
        *,
        chat_id: int,
        user_id: int,
        chat_type: str = "private",
        language_code: str = "en",
        text: str | None = None,
        caption: str | None = None,
        voice: tuple[str, int] | None = None,
        audio: tuple[str, int] | None = None,
        video: tuple[str, int] | None = None,
        video_note: tuple[str, int] | None = None,
        document: str | None = None,
        reply_to_message_id: int | None = None,
        forward: bool = False,
        message_id: int | None = None,
        username: str = "alice",
    ) -> dict[str, Any]:
        """Build a realistic ``{"message": ...}`` update from a user (not yet pushed)."""
        state = self.state
        user = state.user_dict(user_id, username=username, language_code=language_code)
        chat = state.chat_for_update(chat_id, chat_type, user)
        if message_id is None:
            message_id = state.alloc_message_id(chat_id)
        else:
            state.reserve_message_id(chat_id, message_id)
        message: dict[str, Any] = {
            "message_id": message_id,
            "from": user,
            "chat": chat,
            "date": now(),
        }
        if text is not None:
            message["text"] = text
            if text.startswith("/"):
                command = text.split(maxsplit=1)[0]
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        if caption is not None:
            message["caption"] = caption
        self._attach_media(message, voice=voice, audio=audio, video=video, video_note=video_note)
        if document is not None:
            stored = state.files.get(document)
            message["document"] = (
                stored.as_document()
                if stored is not None
                else {"file_id": document, "file_unique_id": unique_id()}
            )
        if reply_to_message_id is not None:
            target = state.find_message(chat_id, reply_to_message_id)
            if target is not None:
                message["reply_to_message"] = without_reply(target)
        if forward:
            origin_user = state.user_dict(user_id + 1, username="bob", language_code=language_code)
            message["forward_origin"] = {
                "type": "user",
                "sender_user": origin_user,
                "date": now() - 60,
            }
        return {"message": message}

    def _attach_media(
        self,
        message: dict[str, Any],
        *,
        voice: tuple[str, int] | None,
        audio: tuple[str, int] | None,
        video: tuple[str, int] | None,
        video_note: tuple[str, int] | None,
    ) -> None:
        state = self.state
        if voice is not None:
            message["voice"] = state.media(voice[0], duration=voice[1])
        if audio is not None:
            media = state.media(audio[0], duration=audio[1])
            stored = state.files.get(audio[0])
            if stored is not None and stored.file_name:
                media["file_name"] = stored.file_name
            message["audio"] = media
        if video is not None:
            media = state.media(video[0], duration=video[1])
            message["video"] = {**media, "width": 640, "height": 360}
        if video_note is not None:
            media = state.media(video_note[0], duration=video_note[1])
            media.pop("mime_type", None)
            message["video_note"] = {**media, "length": 240}

    def make_pre_checkout_update(
        self,
        *,
        user_id: int,
        total_amount: int,
        invoice_payload: str,
        currency: str = "XTR",
        query_id: str | None = None,
        username: str = "alice",
        language_code: str = "en",
    ) -> dict[str, Any]:
        """Build a ``pre_checkout_query`` update, as when the user taps Pay."""
        user = self.state.user_dict(user_id, username=username, language_code=language_code)
        return {
            "pre_checkout_query": {
                "id": query_id or str(secrets.randbits(62)),
                "from": user,
                "currency": currency,
                "total_amount": total_amount,
                "invoice_payload": invoice_payload,
            }
        }

    def make_successful_payment_update(
        self,
        *,
        chat_id: int,
        user_id: int,
        total_amount: int,
        invoice_payload: str,
        currency: str = "XTR",
        telegram_payment_charge_id: str | None = None,
        username: str = "alice",
        language_code: str = "en",
    ) -> dict[str, Any]:
        """Build the service message Telegram sends after the payment went through."""
        update = self.make_message_update(
            chat_id=chat_id, user_id=user_id, username=username, language_code=language_code
        )
        charge = telegram_payment_charge_id or f"stxEMU{secrets.token_hex(12)}"
        # The charge exists from now on: refundStarPayment checks the payer against it.
        self.state.charges[charge] = user_id
        update["message"]["successful_payment"] = {
            "currency": currency,
            "total_amount": total_amount,
            "invoice_payload": invoice_payload,
            "telegram_payment_charge_id": charge,
            "provider_payment_charge_id": "",
        }
        return update

    def make_callback_update(
        self,
        *,
        chat_id: int,
        user_id: int,
        data: str,
        message_id: int,
        query_id: str | None = None,
        username: str = "alice",
        language_code: str = "en",
    ) -> dict[str, Any]:
        """Build a ``callback_query`` update: the user pressed a button on a bot message."""
        state = self.state
        query: dict[str, Any] = {
            "id": query_id or str(secrets.randbits(62)),
            "from": state.user_dict(user_id, username=username, language_code=language_code),
            "chat_instance": str(abs(hash((state.bot_id, chat_id)))),
            "data": data,
        }
        target = state.find_message(chat_id, message_id)
        if target is not None:
            query["message"] = target
        return {"callback_query": query}
