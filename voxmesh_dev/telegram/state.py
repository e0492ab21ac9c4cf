"""What the emulated Telegram knows: the bot, users, chats, files, messages and payments.

One :class:`BotState` per emulator. The method groups (``methods_*``), the update factories
and the update delivery all read and change it; nothing here speaks HTTP, so a reader can
check the bookkeeping without the wire format. Everything runs on the event loop's thread:
no locks.
"""

from __future__ import annotations

import mimetypes
import secrets
import time
from dataclasses import dataclass
from typing import Any

from voxmesh_dev.telegram.records import RecordedCall, RecordedMessage

MB = 1024 * 1024
DOWNLOAD_LIMIT = 20 * MB
UPLOAD_LIMIT = 50 * MB
LOCAL_MODE_LIMIT = 2000 * MB
# Where Telegram's file server puts a file of this type, and its extension there.
_FILE_DIRS = {"audio/ogg": ("voice", ".oga"), "audio/mpeg": ("music", ".mp3")}
# The rights getChatMember reports for an administrator: all of them, since the emulator
# keeps no per-admin rights.
_ADMIN_RIGHTS = (
    "can_manage_chat",
    "can_delete_messages",
    "can_manage_video_chats",
    "can_restrict_members",
    "can_promote_members",
    "can_change_info",
    "can_invite_users",
    "can_post_stories",
    "can_edit_stories",
    "can_delete_stories",
    "can_send_welcome_messages",
)


def now() -> int:
    """Telegram's dates: Unix seconds."""
    return int(time.time())


def unique_id() -> str:
    return "AgAD" + secrets.token_urlsafe(9)


def without_reply(message: dict[str, Any]) -> dict[str, Any]:
    # Telegram does not nest replies: reply_to_message has no reply_to_message of its own
    return {k: v for k, v in message.items() if k != "reply_to_message"}


@dataclass
class StoredFile:
    """A file on the emulated file server: sent by a user (add_file) or uploaded by the bot."""

    file_id: str
    file_unique_id: str
    file_path: str
    content: bytes
    mime_type: str
    file_name: str | None

    def as_document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "mime_type": self.mime_type,
            "file_size": len(self.content),
        }
        if self.file_name is not None:
            doc["file_name"] = self.file_name
        return doc


class BotState:
    """The records behind the Bot API; the public ones are what tests assert on."""

    def __init__(self, *, bot_id: int, bot_username: str, local_mode: bool) -> None:
        self.bot_id = bot_id
        self.bot_username = bot_username
        # A local Bot API server (--local): only its file size limits differ here.
        self.local_mode = local_mode

        # What the bot did, for tests (BotApiEmulator exposes these under the same names).
        self.calls: list[RecordedCall] = []
        self.callback_answers: dict[str, dict[str, Any]] = {}
        self.pre_checkout_answers: dict[str, dict[str, Any]] = {}
        # Stars payments made (charge id -> payer) and those refunded.
        self.charges: dict[str, int] = {}
        self.refunded: set[str] = set()
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.blocked: set[int] = set()

        self.files: dict[str, StoredFile] = {}
        self.files_by_path: dict[str, StoredFile] = {}
        # The bot's messages: per chat in order, and by (chat, message id).
        self.messages: dict[int, list[RecordedMessage]] = {}
        self.message_index: dict[tuple[int, int], RecordedMessage] = {}
        # Users' messages, as they arrived in updates: replies and callbacks point at them.
        self.user_messages: dict[tuple[int, int], dict[str, Any]] = {}
        # Message ids count per chat, shared by the users' messages and the bot's.
        self.next_message_id: dict[int, int] = {}
        self.chats: dict[int, dict[str, Any]] = {}
        self.users: dict[int, dict[str, Any]] = {}
        self.admins: dict[int, list[int]] = {}
        # Queries the bot may still answer, once each.
        self.open_callbacks: set[str] = set()
        self.open_pre_checkouts: set[str] = set()

    @property
    def download_limit(self) -> int:
        return LOCAL_MODE_LIMIT if self.local_mode else DOWNLOAD_LIMIT

    @property
    def upload_limit(self) -> int:
        return LOCAL_MODE_LIMIT if self.local_mode else UPLOAD_LIMIT

    # ------------------------------------------------------------------ files

    def store_file(self, content: bytes, *, mime_type: str, file_name: str | None) -> StoredFile:
        number = len(self.files) + 1
        folder, ext = _FILE_DIRS.get(mime_type, ("documents", ""))
        if mime_type.startswith("video/"):
            folder = "videos"
        if not ext:
            if file_name and "." in file_name:
                ext = "." + file_name.rsplit(".", 1)[1]
            else:
                ext = mimetypes.guess_extension(mime_type) or ""
        stored = StoredFile(
            file_id=f"BQACAgIAAxkBAAI{secrets.token_urlsafe(27)}",
            file_unique_id=unique_id(),
            file_path=f"{folder}/file_{number}{ext}",
            content=content,
            mime_type=mime_type,
            file_name=file_name,
        )
        self.files[stored.file_id] = stored
        self.files_by_path[stored.file_path] = stored
        return stored

    def media(self, file_id: str, *, duration: int) -> dict[str, Any]:
        """A Voice/Audio/Video object for file_id; an unknown id still gets a plausible one."""
        stored = self.files.get(file_id)
        if stored is None:
            return {"file_id": file_id, "file_unique_id": unique_id(), "duration": duration}
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "duration": duration,
            "mime_type": stored.mime_type,
            "file_size": len(stored.content),
        }

    # ------------------------------------------------------------------ users and chats

    def user_dict(self, user_id: int, *, username: str, language_code: str) -> dict[str, Any]:
        user = {
            "id": user_id,
            "is_bot": False,
            "first_name": username.capitalize(),
            "username": username,
            "language_code": language_code,
        }
        self.users[user_id] = user
        return user

    def bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "VoxMesh Test Bot",
            "username": self.bot_username,
        }

    def chat_for_update(self, chat_id: int, chat_type: str, user: dict[str, Any]) -> dict[str, Any]:
        if chat_type == "private":
            chat = {"id": chat_id, "type": "private", "first_name": user["first_name"]}
            if "username" in user:
                chat["username"] = user["username"]
        else:
            chat = {"id": chat_id, "type": chat_type, "title": f"Chat {chat_id}"}
        self.chats[chat_id] = chat
        return chat

    def chat(self, chat_id: int) -> dict[str, Any]:
        """The Chat object for chat_id; one never seen is made up from the id's sign."""
        chat = self.chats.get(chat_id)
        if chat is not None:
            return chat
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": "User"}
        kind = "supergroup" if str(chat_id).startswith("-100") else "group"
        return {"id": chat_id, "type": kind, "title": f"Chat {chat_id}"}

    def member(self, chat_id: int, user_id: int) -> dict[str, Any]:
        """A ChatMember: administrator if set_chat_admins said so, else member."""
        if user_id == self.bot_id:
            user = self.bot_user()
        else:
            user = self.users.get(user_id) or {
                "id": user_id,
                "is_bot": False,
                "first_name": f"User{user_id}",
            }
        if user_id in self.admins.get(chat_id, []):
            return {
                "status": "administrator",
                "user": user,
                "can_be_edited": False,
                "is_anonymous": False,
                **dict.fromkeys(_ADMIN_RIGHTS, True),
            }
        return {"status": "member", "user": user}

    # ------------------------------------------------------------------ messages

    def alloc_message_id(self, chat_id: int) -> int:
        number = self.next_message_id.get(chat_id, 1)
        self.next_message_id[chat_id] = number + 1
        return number

    def reserve_message_id(self, chat_id: int, message_id: int) -> None:
        """A message came with its own id: later ones in that chat must number past it."""
        self.next_message_id[chat_id] = max(self.next_message_id.get(chat_id, 1), message_id + 1)

    def add_bot_message(self, recorded: RecordedMessage) -> None:
        self.messages.setdefault(recorded.chat_id, []).append(recorded)
        self.message_index[(recorded.chat_id, recorded.message_id)] = recorded

    def find_message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        """A live message of the bot's or a user's, as a Message object; None if gone."""
        recorded = self.message_index.get((chat_id, message_id))
        if recorded is not None:
            return None if recorded.deleted else recorded.payload
        return self.user_messages.get((chat_id, message_id))

    def note_update(self, update: dict[str, Any]) -> None:
        """Learn what an incoming update tells: its chat, user, message, open queries."""
        for key in ("message", "edited_message", "channel_post", "business_message"):
            message = update.get(key)
            if isinstance(message, dict) and "chat" in message:
                chat = message["chat"]
                self.chats.setdefault(chat["id"], chat)
                mid = int(message["message_id"])
                self.reserve_message_id(chat["id"], mid)
                self.user_messages[(chat["id"], mid)] = message
                if "from" in message:
                    self.users.setdefault(message["from"]["id"], message["from"])
        if "callback_query" in update:
            self.open_callbacks.add(str(update["callback_query"]["id"]))
        if "pre_checkout_query" in update:
            self.open_pre_checkouts.add(str(update["pre_checkout_query"]["id"]))
