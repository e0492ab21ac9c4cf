"""What every sending method shares: reading text, captions, replies and keyboards, checking
the bot may send, and recording the message it sent.

sendMessage, editMessageText, sendDocument and sendInvoice validate these parameters with
the same wording as Telegram, and all count against the same flood limits, so the rules live
here once rather than in each method group.
"""

from __future__ import annotations

from typing import Any

from voxmesh_dev.telegram.html_entities import EntityParseError, parse_html, strip_text
from voxmesh_dev.telegram.limits import RateLimiter
from voxmesh_dev.telegram.params import ApiError, Params, bad_request
from voxmesh_dev.telegram.records import RecordedMessage
from voxmesh_dev.telegram.state import BotState, now, without_reply

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024


class Outbox:
    """Validates a send's common parameters and records what the bot sent."""

    def __init__(self, state: BotState, limiter: RateLimiter) -> None:
        self.state = state
        self.limiter = limiter

    def check_can_send(self, chat_id: int) -> None:
        """403 for a blocked chat, 429 past the flood limits; checked after validation."""
        if chat_id in self.state.blocked:
            if chat_id > 0:
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            raise ApiError(403, "Forbidden: bot was kicked from the group chat")
        retry = self.limiter.retry_after(chat_id)
        if retry is not None:
            raise ApiError(429, f"Too Many Requests: retry after {retry}", retry_after=retry)

    def count_send(self, chat_id: int) -> None:
        """One more send to chat_id against the flood limits (new_message counts its own)."""
        self.limiter.record(chat_id)

    def text(self, p: Params) -> tuple[str, list[dict[str, Any]]]:
        """The ``text`` parameter after entity parsing, and its entities."""
        raw = p.get_str("text")
        if not raw:
            raise bad_request("message text is empty")
        text, entities = _format(raw, p.get_str("parse_mode"), p.get_json("entities"))
        if not text:
            raise bad_request("message text is empty")
        if len(text) > MAX_TEXT_LENGTH:
            raise bad_request("message is too long")
        return text, entities

    def caption(self, p: Params) -> tuple[str | None, list[dict[str, Any]]]:
        raw = p.get_str("caption")
        if not raw:
            return None, []
        text, entities = _format(raw, p.get_str("parse_mode"), p.get_json("caption_entities"))
        if len(text) > MAX_CAPTION_LENGTH:
            raise bad_request("message caption is too long")
        return text or None, entities

    def reply(self, chat_id: int, p: Params) -> tuple[int | None, dict[str, Any] | None]:
        """The replied-to message's id and object, from reply_parameters or the old fields."""
        reply = p.get_json("reply_parameters", what="reply parameters")
        allow_missing = p.get_bool("allow_sending_without_reply")
        message_id: int | None = None
        if isinstance(reply, dict):
            raw_id = reply.get("message_id")
            if not isinstance(raw_id, int):
                raise bad_request("message to be replied not found")
            message_id = raw_id
            allow_missing = bool(reply.get("allow_sending_without_reply", allow_missing))
        elif reply is not None:
            raise bad_request("can't parse reply parameters JSON object")
        else:
            message_id = p.get_int("reply_to_message_id")
        if message_id is None:
            return None, None
        target = self.state.find_message(chat_id, message_id)
        if target is None:
            if allow_missing:
                return None, None
            raise bad_request("message to be replied not found")
        return message_id, without_reply(target)

    def markup(self, p: Params) -> dict[str, Any] | None:
        markup = p.get_json("reply_markup", what="reply keyboard markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise bad_request("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            rows = markup["inline_keyboard"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise bad_request(
                    "can't parse inline keyboard button: InlineKeyboardButton must be an Object"
                )
            for row in rows:
                for button in row:
                    _check_button(button)
        return markup

    def new_message(
        self,
        chat_id: int,
        *,
        text: str | None = None,
        entities: list[dict[str, Any]] | None = None,
        parse_mode: str | None = None,
        reply: tuple[int | None, dict[str, Any] | None] = (None, None),
        markup: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> RecordedMessage:
        """Record a message the bot sent (counted against the flood limits); return it."""
        message_id = self.state.alloc_message_id(chat_id)
        date = now()
        payload: dict[str, Any] = {
            "message_id": message_id,
            "from": self.state.bot_user(),
            "chat": self.state.chat(chat_id),
            "date": date,
        }
        if reply[1] is not None:
            payload["reply_to_message"] = reply[1]
        if text is not None:
            payload["text"] = text
            if entities:
                payload["entities"] = entities
        if extra:
            payload.update(extra)
        # Only an inline keyboard belongs to the message; a reply keyboard is the chat's.
        if markup is not None and "inline_keyboard" in markup:
            payload["reply_markup"] = markup
        recorded = RecordedMessage(
            message_id=message_id,
            chat_id=chat_id,
            date=date,
            text=text,
            first_text=text,
            entities=list(entities or []),
            parse_mode=parse_mode,
            reply_to_message_id=reply[0],
            reply_markup=markup,
            payload=payload,
        )
        self.state.add_bot_message(recorded)
        self.count_send(chat_id)
        return recorded


def _format(raw: str, parse_mode: str | None, entities: Any) -> tuple[str, list[dict[str, Any]]]:
    mode = (parse_mode or "").lower()
    if mode == "html":
        try:
            text, parsed = parse_html(raw)
        except EntityParseError as exc:
            raise bad_request(f"can't parse entities: {exc}") from None
    elif mode in ("", "markdown", "markdownv2"):
        # Markdown is stored verbatim (see the emulator's docstring); explicit entities only
        # count without a parse_mode, as on Telegram.
        text = raw
        parsed = list(entities) if isinstance(entities, list) and not mode else []
    else:
        raise bad_request("unsupported parse_mode")
    text, parsed = strip_text(text, parsed)
    return text, parsed


def _check_button(button: Any) -> None:
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise bad_request("can't parse inline keyboard button: Text must be a String")
    if not button["text"]:
        raise bad_request("BUTTON_TEXT_EMPTY")
    actions = [k for k in button if k != "text"]
    if len(actions) != 1:
        raise bad_request(
            "can't parse inline keyboard button: exactly one action field is required"
        )
    data = button.get("callback_data")
    if data is not None and not 1 <= len(str(data).encode("utf-8")) <= 64:
        raise bad_request("BUTTON_DATA_INVALID")
    url = button.get("url")
    if url is not None and not str(url).startswith(("http://", "https://", "tg://")):
        raise bad_request(
            f"inline keyboard button URL '{url}' is invalid: Unsupported URL protocol"
        )
