"""Bot API methods on text messages: sendMessage, editMessageText, deleteMessage, sendChatAction."""

from __future__ import annotations

from typing import Any

from voxmesh_dev.telegram.outgoing import Outbox
from voxmesh_dev.telegram.params import ApiError, Handler, Params, bad_request
from voxmesh_dev.telegram.state import BotState, now

NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)


class MessageMethods:
    def __init__(self, state: BotState, outbox: Outbox) -> None:
        self.state = state
        self.outbox = outbox

    def handlers(self) -> dict[str, Handler]:
        return {
            "sendmessage": self.send_message,
            "editmessagetext": self.edit_message_text,
            "deletemessage": self.delete_message,
            "sendchataction": self.send_chat_action,
        }

    async def send_message(self, p: Params) -> Any:
        chat_id = p.chat_id()
        text, entities = self.outbox.text(p)
        reply = self.outbox.reply(chat_id, p)
        markup = self.outbox.markup(p)
        self.outbox.check_can_send(chat_id)
        message = self.outbox.new_message(
            chat_id,
            text=text,
            entities=entities,
            parse_mode=p.get_str("parse_mode"),
            reply=reply,
            markup=markup,
        )
        return message.payload

    async def edit_message_text(self, p: Params) -> Any:
        if p.has("inline_message_id"):
            raise bad_request("inline messages are not supported by the emulator")
        chat_id = p.chat_id()
        message_id = p.get_int(
            "message_id", required=True, missing="message identifier is not specified"
        )
        assert message_id is not None
        recorded = self.state.message_index.get((chat_id, message_id))
        if recorded is None or recorded.deleted:
            if (chat_id, message_id) in self.state.user_messages:
                raise bad_request("message can't be edited")
            raise bad_request("message to edit not found")
        if recorded.text is None:
            raise bad_request("there is no text in the message to edit")
        text, entities = self.outbox.text(p)
        markup = self.outbox.markup(p)
        inline = markup if markup is not None and "inline_keyboard" in markup else None
        if (
            text == recorded.text
            and entities == recorded.entities
            and inline == recorded.payload.get("reply_markup")
        ):
            raise bad_request(NOT_MODIFIED)
        self.outbox.check_can_send(chat_id)
        # An edit counts against the flood limits like a send.
        self.outbox.count_send(chat_id)
        recorded.text = text
        recorded.entities = list(entities)
        recorded.edits.append(text)
        recorded.reply_markup = markup
        payload = recorded.payload
        payload["text"] = text
        payload["edit_date"] = now()
        if entities:
            payload["entities"] = entities
        else:
            payload.pop("entities", None)
        # editMessageText without reply_markup removes the inline keyboard, as on Telegram
        if inline is None:
            payload.pop("reply_markup", None)
        else:
            payload["reply_markup"] = inline
        return payload

    async def delete_message(self, p: Params) -> Any:
        chat_id = p.chat_id()
        message_id = p.get_int(
            "message_id", required=True, missing="message identifier is not specified"
        )
        assert message_id is not None
        recorded = self.state.message_index.get((chat_id, message_id))
        if recorded is not None and not recorded.deleted:
            # Kept, flagged: tests assert on what the user saw before it went.
            recorded.deleted = True
            return True
        if self.state.user_messages.pop((chat_id, message_id), None) is not None:
            return True
        raise bad_request("message to delete not found")

    async def send_chat_action(self, p: Params) -> Any:
        chat_id = p.chat_id()
        action = p.get_str("action")
        if not action:
            raise bad_request("action is empty")
        if action not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        if chat_id in self.state.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return True
