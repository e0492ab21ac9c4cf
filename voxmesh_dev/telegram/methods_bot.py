"""Bot API methods about the bot itself and its chats: getMe, the command menu
(setMyCommands, getMyCommands, deleteMyCommands), button presses (answerCallbackQuery) and
chat members (getChatMember, getChatAdministrators)."""

from __future__ import annotations

import json
import re
from typing import Any

from voxmesh_dev.telegram.params import Handler, Params, bad_request
from voxmesh_dev.telegram.state import BotState

_COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")


class BotMethods:
    def __init__(self, state: BotState) -> None:
        self.state = state

    def handlers(self) -> dict[str, Handler]:
        return {
            "getme": self.get_me,
            "answercallbackquery": self.answer_callback_query,
            "getchatmember": self.get_chat_member,
            "getchatadministrators": self.get_chat_administrators,
            "setmycommands": self.set_my_commands,
            "getmycommands": self.get_my_commands,
            "deletemycommands": self.delete_my_commands,
        }

    async def get_me(self, p: Params) -> Any:
        return {
            **self.state.bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def answer_callback_query(self, p: Params) -> Any:
        query_id = p.get_str("callback_query_id") or ""
        # A query is answered once; a second answer is as invalid as an unknown id.
        if query_id not in self.state.open_callbacks:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        text = p.get_str("text")
        if text is not None and len(text) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        self.state.open_callbacks.discard(query_id)
        self.state.callback_answers[query_id] = {
            "text": text,
            "show_alert": p.get_bool("show_alert"),
            "url": p.get_str("url"),
            "cache_time": p.get_int("cache_time") or 0,
        }
        return True

    async def get_chat_member(self, p: Params) -> Any:
        chat_id = p.chat_id()
        user_id = p.get_int("user_id", required=True)
        assert user_id is not None
        # A private chat has two members: the user (whose id is the chat's) and the bot.
        if chat_id > 0 and user_id not in (chat_id, self.state.bot_id):
            raise bad_request("member not found")
        return self.state.member(chat_id, user_id)

    async def get_chat_administrators(self, p: Params) -> Any:
        chat_id = p.chat_id()
        if chat_id > 0:
            raise bad_request("there are no administrators in the private chat")
        return [self.state.member(chat_id, uid) for uid in self.state.admins.get(chat_id, [])]

    def _commands_key(self, p: Params) -> tuple[str, str]:
        # Telegram keeps one command list per (scope, language); the scope object is the key.
        scope = p.get_json("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), p.get_str("language_code") or ""

    async def set_my_commands(self, p: Params) -> Any:
        commands = p.get_json("commands")
        if not isinstance(commands, list):
            raise bad_request("can't parse commands JSON object")
        if len(commands) > 100:
            raise bad_request("too many commands")
        for command in commands:
            if not isinstance(command, dict):
                raise bad_request("can't parse BotCommand")
            if not _COMMAND_RE.fullmatch(str(command.get("command", ""))):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        self.state.commands[self._commands_key(p)] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    async def get_my_commands(self, p: Params) -> Any:
        return self.state.commands.get(self._commands_key(p), [])

    async def delete_my_commands(self, p: Params) -> Any:
        self.state.commands.pop(self._commands_key(p), None)
        return True
