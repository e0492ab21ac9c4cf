from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ParseMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PARSE_MODE_UNSPECIFIED: _ClassVar[ParseMode]
    PARSE_MODE_HTML: _ClassVar[ParseMode]

class ChatKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHAT_KIND_UNSPECIFIED: _ClassVar[ChatKind]
    CHAT_KIND_PRIVATE: _ClassVar[ChatKind]
    CHAT_KIND_GROUP: _ClassVar[ChatKind]
PARSE_MODE_UNSPECIFIED: ParseMode
PARSE_MODE_HTML: ParseMode
CHAT_KIND_UNSPECIFIED: ChatKind
CHAT_KIND_PRIVATE: ChatKind
CHAT_KIND_GROUP: ChatKind

class Button(_message.Message):
    __slots__ = ("text", "callback_data")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_DATA_FIELD_NUMBER: _ClassVar[int]
    text: str
    callback_data: str
    def __init__(self, text: _Optional[str] = ..., callback_data: _Optional[str] = ...) -> None: ...

class ButtonRow(_message.Message):
    __slots__ = ("buttons",)
    BUTTONS_FIELD_NUMBER: _ClassVar[int]
    buttons: _containers.RepeatedCompositeFieldContainer[Button]
    def __init__(self, buttons: _Optional[_Iterable[_Union[Button, _Mapping]]] = ...) -> None: ...

class SendRequest(_message.Message):
    __slots__ = ("idempotency_key", "chat_id", "text", "parse_mode", "reply_to_message_id", "buttons", "chat_kind")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CHAT_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PARSE_MODE_FIELD_NUMBER: _ClassVar[int]
    REPLY_TO_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    BUTTONS_FIELD_NUMBER: _ClassVar[int]
    CHAT_KIND_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    chat_id: int
    text: str
    parse_mode: ParseMode
    reply_to_message_id: int
    buttons: _containers.RepeatedCompositeFieldContainer[ButtonRow]
    chat_kind: ChatKind
    def __init__(self, idempotency_key: _Optional[str] = ..., chat_id: _Optional[int] = ..., text: _Optional[str] = ..., parse_mode: _Optional[_Union[ParseMode, str]] = ..., reply_to_message_id: _Optional[int] = ..., buttons: _Optional[_Iterable[_Union[ButtonRow, _Mapping]]] = ..., chat_kind: _Optional[_Union[ChatKind, str]] = ...) -> None: ...

class SendResponse(_message.Message):
    __slots__ = ("message_id", "message_ids")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    message_id: int
    message_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, message_id: _Optional[int] = ..., message_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class EditRequest(_message.Message):
    __slots__ = ("idempotency_key", "chat_id", "message_id", "text", "parse_mode", "buttons", "chat_kind")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CHAT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PARSE_MODE_FIELD_NUMBER: _ClassVar[int]
    BUTTONS_FIELD_NUMBER: _ClassVar[int]
    CHAT_KIND_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    chat_id: int
    message_id: int
    text: str
    parse_mode: ParseMode
    buttons: _containers.RepeatedCompositeFieldContainer[ButtonRow]
    chat_kind: ChatKind
    def __init__(self, idempotency_key: _Optional[str] = ..., chat_id: _Optional[int] = ..., message_id: _Optional[int] = ..., text: _Optional[str] = ..., parse_mode: _Optional[_Union[ParseMode, str]] = ..., buttons: _Optional[_Iterable[_Union[ButtonRow, _Mapping]]] = ..., chat_kind: _Optional[_Union[ChatKind, str]] = ...) -> None: ...

class EditResponse(_message.Message):
    __slots__ = ("message_id", "coalesced")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    COALESCED_FIELD_NUMBER: _ClassVar[int]
    message_id: int
    coalesced: bool
    def __init__(self, message_id: _Optional[int] = ..., coalesced: _Optional[bool] = ...) -> None: ...

class SendDocumentRequest(_message.Message):
    __slots__ = ("idempotency_key", "chat_id", "filename", "content", "caption", "reply_to_message_id", "chat_kind")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CHAT_ID_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    REPLY_TO_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CHAT_KIND_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    chat_id: int
    filename: str
    content: bytes
    caption: str
    reply_to_message_id: int
    chat_kind: ChatKind
    def __init__(self, idempotency_key: _Optional[str] = ..., chat_id: _Optional[int] = ..., filename: _Optional[str] = ..., content: _Optional[bytes] = ..., caption: _Optional[str] = ..., reply_to_message_id: _Optional[int] = ..., chat_kind: _Optional[_Union[ChatKind, str]] = ...) -> None: ...

class SendDocumentResponse(_message.Message):
    __slots__ = ("message_id",)
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    message_id: int
    def __init__(self, message_id: _Optional[int] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("idempotency_key", "chat_id", "message_id")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CHAT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    chat_id: int
    message_id: int
    def __init__(self, idempotency_key: _Optional[str] = ..., chat_id: _Optional[int] = ..., message_id: _Optional[int] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class AnswerCallbackRequest(_message.Message):
    __slots__ = ("idempotency_key", "callback_query_id", "text", "show_alert")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SHOW_ALERT_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    callback_query_id: str
    text: str
    show_alert: bool
    def __init__(self, idempotency_key: _Optional[str] = ..., callback_query_id: _Optional[str] = ..., text: _Optional[str] = ..., show_alert: _Optional[bool] = ...) -> None: ...

class AnswerCallbackResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
