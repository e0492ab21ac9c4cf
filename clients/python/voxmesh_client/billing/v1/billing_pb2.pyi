import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_USER: _ClassVar[Role]
    ROLE_ADMIN: _ClassVar[Role]
    ROLE_BANNED: _ClassVar[Role]

class HoldState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HOLD_STATE_UNSPECIFIED: _ClassVar[HoldState]
    HOLD_STATE_PENDING: _ClassVar[HoldState]
    HOLD_STATE_CAPTURED: _ClassVar[HoldState]
    HOLD_STATE_RELEASED: _ClassVar[HoldState]
    HOLD_STATE_EXPIRED: _ClassVar[HoldState]

class TransactionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSACTION_KIND_UNSPECIFIED: _ClassVar[TransactionKind]
    TRANSACTION_KIND_TOP_UP: _ClassVar[TransactionKind]
    TRANSACTION_KIND_CAPTURE: _ClassVar[TransactionKind]
    TRANSACTION_KIND_REFUND: _ClassVar[TransactionKind]
    TRANSACTION_KIND_GRANT: _ClassVar[TransactionKind]
    TRANSACTION_KIND_TRIAL: _ClassVar[TransactionKind]
    TRANSACTION_KIND_TOP_UP_REFUND: _ClassVar[TransactionKind]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_DONE: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]
ROLE_UNSPECIFIED: Role
ROLE_USER: Role
ROLE_ADMIN: Role
ROLE_BANNED: Role
HOLD_STATE_UNSPECIFIED: HoldState
HOLD_STATE_PENDING: HoldState
HOLD_STATE_CAPTURED: HoldState
HOLD_STATE_RELEASED: HoldState
HOLD_STATE_EXPIRED: HoldState
TRANSACTION_KIND_UNSPECIFIED: TransactionKind
TRANSACTION_KIND_TOP_UP: TransactionKind
TRANSACTION_KIND_CAPTURE: TransactionKind
TRANSACTION_KIND_REFUND: TransactionKind
TRANSACTION_KIND_GRANT: TransactionKind
TRANSACTION_KIND_TRIAL: TransactionKind
TRANSACTION_KIND_TOP_UP_REFUND: TransactionKind
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_DONE: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState

class User(_message.Message):
    __slots__ = ("user_id", "username", "language_code", "role", "create_time")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_CODE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    username: str
    language_code: str
    role: Role
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, user_id: _Optional[int] = ..., username: _Optional[str] = ..., language_code: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("chat_id", "message_id", "file_id", "duration_seconds", "trace_id", "job_id")
    CHAT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    chat_id: int
    message_id: int
    file_id: str
    duration_seconds: int
    trace_id: str
    job_id: str
    def __init__(self, chat_id: _Optional[int] = ..., message_id: _Optional[int] = ..., file_id: _Optional[str] = ..., duration_seconds: _Optional[int] = ..., trace_id: _Optional[str] = ..., job_id: _Optional[str] = ...) -> None: ...

class Hold(_message.Message):
    __slots__ = ("hold_id", "user_id", "amount_credits", "captured_credits", "state", "expire_time", "job")
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CREDITS_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_CREDITS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    hold_id: str
    user_id: int
    amount_credits: int
    captured_credits: int
    state: HoldState
    expire_time: _timestamp_pb2.Timestamp
    job: Job
    def __init__(self, hold_id: _Optional[str] = ..., user_id: _Optional[int] = ..., amount_credits: _Optional[int] = ..., captured_credits: _Optional[int] = ..., state: _Optional[_Union[HoldState, str]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class Transaction(_message.Message):
    __slots__ = ("transaction_id", "kind", "amount_credits", "balance_after_credits", "description", "create_time")
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CREDITS_FIELD_NUMBER: _ClassVar[int]
    BALANCE_AFTER_CREDITS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    transaction_id: int
    kind: TransactionKind
    amount_credits: int
    balance_after_credits: int
    description: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, transaction_id: _Optional[int] = ..., kind: _Optional[_Union[TransactionKind, str]] = ..., amount_credits: _Optional[int] = ..., balance_after_credits: _Optional[int] = ..., description: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EnsureUserRequest(_message.Message):
    __slots__ = ("user_id", "username", "language_code")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_CODE_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    username: str
    language_code: str
    def __init__(self, user_id: _Optional[int] = ..., username: _Optional[str] = ..., language_code: _Optional[str] = ...) -> None: ...

class EnsureUserResponse(_message.Message):
    __slots__ = ("user", "created")
    USER_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    user: User
    created: bool
    def __init__(self, user: _Optional[_Union[User, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetUserRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    def __init__(self, user_id: _Optional[int] = ...) -> None: ...

class GetUserResponse(_message.Message):
    __slots__ = ("user",)
    USER_FIELD_NUMBER: _ClassVar[int]
    user: User
    def __init__(self, user: _Optional[_Union[User, _Mapping]] = ...) -> None: ...

class GetBalanceRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    def __init__(self, user_id: _Optional[int] = ...) -> None: ...

class GetBalanceResponse(_message.Message):
    __slots__ = ("balance_credits", "held_credits", "seconds_available")
    BALANCE_CREDITS_FIELD_NUMBER: _ClassVar[int]
    HELD_CREDITS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    balance_credits: int
    held_credits: int
    seconds_available: int
    def __init__(self, balance_credits: _Optional[int] = ..., held_credits: _Optional[int] = ..., seconds_available: _Optional[int] = ...) -> None: ...

class QuoteRequest(_message.Message):
    __slots__ = ("duration_seconds",)
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    duration_seconds: int
    def __init__(self, duration_seconds: _Optional[int] = ...) -> None: ...

class QuoteResponse(_message.Message):
    __slots__ = ("amount_credits",)
    AMOUNT_CREDITS_FIELD_NUMBER: _ClassVar[int]
    amount_credits: int
    def __init__(self, amount_credits: _Optional[int] = ...) -> None: ...

class ReserveRequest(_message.Message):
    __slots__ = ("idempotency_key", "user_id", "amount_credits", "job", "ttl")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CREDITS_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    user_id: int
    amount_credits: int
    job: Job
    ttl: _duration_pb2.Duration
    def __init__(self, idempotency_key: _Optional[str] = ..., user_id: _Optional[int] = ..., amount_credits: _Optional[int] = ..., job: _Optional[_Union[Job, _Mapping]] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ReserveResponse(_message.Message):
    __slots__ = ("hold",)
    HOLD_FIELD_NUMBER: _ClassVar[int]
    hold: Hold
    def __init__(self, hold: _Optional[_Union[Hold, _Mapping]] = ...) -> None: ...

class CaptureRequest(_message.Message):
    __slots__ = ("idempotency_key", "hold_id", "amount_credits")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CREDITS_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    hold_id: str
    amount_credits: int
    def __init__(self, idempotency_key: _Optional[str] = ..., hold_id: _Optional[str] = ..., amount_credits: _Optional[int] = ...) -> None: ...

class CaptureResponse(_message.Message):
    __slots__ = ("hold", "balance_credits")
    HOLD_FIELD_NUMBER: _ClassVar[int]
    BALANCE_CREDITS_FIELD_NUMBER: _ClassVar[int]
    hold: Hold
    balance_credits: int
    def __init__(self, hold: _Optional[_Union[Hold, _Mapping]] = ..., balance_credits: _Optional[int] = ...) -> None: ...

class ReleaseRequest(_message.Message):
    __slots__ = ("idempotency_key", "hold_id", "reason")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    hold_id: str
    reason: str
    def __init__(self, idempotency_key: _Optional[str] = ..., hold_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ReleaseResponse(_message.Message):
    __slots__ = ("hold", "balance_credits")
    HOLD_FIELD_NUMBER: _ClassVar[int]
    BALANCE_CREDITS_FIELD_NUMBER: _ClassVar[int]
    hold: Hold
    balance_credits: int
    def __init__(self, hold: _Optional[_Union[Hold, _Mapping]] = ..., balance_credits: _Optional[int] = ...) -> None: ...

class TopUpRequest(_message.Message):
    __slots__ = ("idempotency_key", "user_id", "amount_credits", "provider", "provider_charge_id")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CREDITS_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_CHARGE_ID_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    user_id: int
    amount_credits: int
    provider: str
    provider_charge_id: str
    def __init__(self, idempotency_key: _Optional[str] = ..., user_id: _Optional[int] = ..., amount_credits: _Optional[int] = ..., provider: _Optional[str] = ..., provider_charge_id: _Optional[str] = ...) -> None: ...

class TopUpResponse(_message.Message):
    __slots__ = ("transaction", "balance_credits")
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    BALANCE_CREDITS_FIELD_NUMBER: _ClassVar[int]
    transaction: Transaction
    balance_credits: int
    def __init__(self, transaction: _Optional[_Union[Transaction, _Mapping]] = ..., balance_credits: _Optional[int] = ...) -> None: ...

class RefundRequest(_message.Message):
    __slots__ = ("idempotency_key", "hold_id", "amount_credits", "reason")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CREDITS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    hold_id: str
    amount_credits: int
    reason: str
    def __init__(self, idempotency_key: _Optional[str] = ..., hold_id: _Optional[str] = ..., amount_credits: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class RefundResponse(_message.Message):
    __slots__ = ("transaction", "balance_credits")
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    BALANCE_CREDITS_FIELD_NUMBER: _ClassVar[int]
    transaction: Transaction
    balance_credits: int
    def __init__(self, transaction: _Optional[_Union[Transaction, _Mapping]] = ..., balance_credits: _Optional[int] = ...) -> None: ...

class ListTransactionsRequest(_message.Message):
    __slots__ = ("user_id", "page_size", "page_token")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    page_size: int
    page_token: str
    def __init__(self, user_id: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTransactionsResponse(_message.Message):
    __slots__ = ("transactions", "next_page_token")
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    transactions: _containers.RepeatedCompositeFieldContainer[Transaction]
    next_page_token: str
    def __init__(self, transactions: _Optional[_Iterable[_Union[Transaction, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SetRoleRequest(_message.Message):
    __slots__ = ("actor_user_id", "user_id", "role")
    ACTOR_USER_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    actor_user_id: int
    user_id: int
    role: Role
    def __init__(self, actor_user_id: _Optional[int] = ..., user_id: _Optional[int] = ..., role: _Optional[_Union[Role, str]] = ...) -> None: ...

class SetRoleResponse(_message.Message):
    __slots__ = ("user",)
    USER_FIELD_NUMBER: _ClassVar[int]
    user: User
    def __init__(self, user: _Optional[_Union[User, _Mapping]] = ...) -> None: ...

class GrantRequest(_message.Message):
    __slots__ = ("idempotency_key", "actor_user_id", "user_id", "amount_credits")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    ACTOR_USER_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CREDITS_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    actor_user_id: int
    user_id: int
    amount_credits: int
    def __init__(self, idempotency_key: _Optional[str] = ..., actor_user_id: _Optional[int] = ..., user_id: _Optional[int] = ..., amount_credits: _Optional[int] = ...) -> None: ...

class GrantResponse(_message.Message):
    __slots__ = ("transaction", "balance_credits")
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    BALANCE_CREDITS_FIELD_NUMBER: _ClassVar[int]
    transaction: Transaction
    balance_credits: int
    def __init__(self, transaction: _Optional[_Union[Transaction, _Mapping]] = ..., balance_credits: _Optional[int] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ("actor_user_id",)
    ACTOR_USER_ID_FIELD_NUMBER: _ClassVar[int]
    actor_user_id: int
    def __init__(self, actor_user_id: _Optional[int] = ...) -> None: ...

class StatsResponse(_message.Message):
    __slots__ = ("users", "holds_pending", "credits_held", "credits_captured", "credits_topped_up")
    USERS_FIELD_NUMBER: _ClassVar[int]
    HOLDS_PENDING_FIELD_NUMBER: _ClassVar[int]
    CREDITS_HELD_FIELD_NUMBER: _ClassVar[int]
    CREDITS_CAPTURED_FIELD_NUMBER: _ClassVar[int]
    CREDITS_TOPPED_UP_FIELD_NUMBER: _ClassVar[int]
    users: int
    holds_pending: int
    credits_held: int
    credits_captured: int
    credits_topped_up: int
    def __init__(self, users: _Optional[int] = ..., holds_pending: _Optional[int] = ..., credits_held: _Optional[int] = ..., credits_captured: _Optional[int] = ..., credits_topped_up: _Optional[int] = ...) -> None: ...

class ListStaleJobsRequest(_message.Message):
    __slots__ = ("older_than_seconds", "page_size", "page_token")
    OLDER_THAN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    older_than_seconds: int
    page_size: int
    page_token: str
    def __init__(self, older_than_seconds: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class StaleJob(_message.Message):
    __slots__ = ("hold", "create_time", "language_code")
    HOLD_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_CODE_FIELD_NUMBER: _ClassVar[int]
    hold: Hold
    create_time: _timestamp_pb2.Timestamp
    language_code: str
    def __init__(self, hold: _Optional[_Union[Hold, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., language_code: _Optional[str] = ...) -> None: ...

class ListStaleJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[StaleJob]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[StaleJob, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ExtendHoldRequest(_message.Message):
    __slots__ = ("idempotency_key", "hold_id", "amount_credits", "ttl")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CREDITS_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    hold_id: str
    amount_credits: int
    ttl: _duration_pb2.Duration
    def __init__(self, idempotency_key: _Optional[str] = ..., hold_id: _Optional[str] = ..., amount_credits: _Optional[int] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ExtendHoldResponse(_message.Message):
    __slots__ = ("hold", "balance_credits")
    HOLD_FIELD_NUMBER: _ClassVar[int]
    BALANCE_CREDITS_FIELD_NUMBER: _ClassVar[int]
    hold: Hold
    balance_credits: int
    def __init__(self, hold: _Optional[_Union[Hold, _Mapping]] = ..., balance_credits: _Optional[int] = ...) -> None: ...

class GetHoldRequest(_message.Message):
    __slots__ = ("hold_id",)
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    hold_id: str
    def __init__(self, hold_id: _Optional[str] = ...) -> None: ...

class GetHoldResponse(_message.Message):
    __slots__ = ("hold",)
    HOLD_FIELD_NUMBER: _ClassVar[int]
    hold: Hold
    def __init__(self, hold: _Optional[_Union[Hold, _Mapping]] = ...) -> None: ...

class QueuedJob(_message.Message):
    __slots__ = ("job_id", "user_id", "chat_id", "message_id", "state", "spec", "status_message_id", "attempt", "lease_expire_time", "cancel_requested", "hold_id", "create_time", "trace_id", "outcome")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CHAT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATUS_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    user_id: int
    chat_id: int
    message_id: int
    state: JobState
    spec: bytes
    status_message_id: int
    attempt: int
    lease_expire_time: _timestamp_pb2.Timestamp
    cancel_requested: bool
    hold_id: str
    create_time: _timestamp_pb2.Timestamp
    trace_id: str
    outcome: str
    def __init__(self, job_id: _Optional[str] = ..., user_id: _Optional[int] = ..., chat_id: _Optional[int] = ..., message_id: _Optional[int] = ..., state: _Optional[_Union[JobState, str]] = ..., spec: _Optional[bytes] = ..., status_message_id: _Optional[int] = ..., attempt: _Optional[int] = ..., lease_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cancel_requested: _Optional[bool] = ..., hold_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trace_id: _Optional[str] = ..., outcome: _Optional[str] = ...) -> None: ...

class SubmitJobRequest(_message.Message):
    __slots__ = ("idempotency_key", "user_id", "chat_id", "message_id", "spec", "trace_id")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CHAT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    user_id: int
    chat_id: int
    message_id: int
    spec: bytes
    trace_id: str
    def __init__(self, idempotency_key: _Optional[str] = ..., user_id: _Optional[int] = ..., chat_id: _Optional[int] = ..., message_id: _Optional[int] = ..., spec: _Optional[bytes] = ..., trace_id: _Optional[str] = ...) -> None: ...

class SubmitJobResponse(_message.Message):
    __slots__ = ("job", "created", "ahead")
    JOB_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    AHEAD_FIELD_NUMBER: _ClassVar[int]
    job: QueuedJob
    created: bool
    ahead: int
    def __init__(self, job: _Optional[_Union[QueuedJob, _Mapping]] = ..., created: _Optional[bool] = ..., ahead: _Optional[int] = ...) -> None: ...

class ClaimJobRequest(_message.Message):
    __slots__ = ("user_id", "owner", "lease")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    owner: str
    lease: _duration_pb2.Duration
    def __init__(self, user_id: _Optional[int] = ..., owner: _Optional[str] = ..., lease: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ClaimJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: QueuedJob
    def __init__(self, job: _Optional[_Union[QueuedJob, _Mapping]] = ...) -> None: ...

class RenewJobRequest(_message.Message):
    __slots__ = ("job_id", "attempt", "lease")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt: int
    lease: _duration_pb2.Duration
    def __init__(self, job_id: _Optional[str] = ..., attempt: _Optional[int] = ..., lease: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class RenewJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: QueuedJob
    def __init__(self, job: _Optional[_Union[QueuedJob, _Mapping]] = ...) -> None: ...

class FinishJobRequest(_message.Message):
    __slots__ = ("job_id", "attempt", "state", "outcome")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt: int
    state: JobState
    outcome: str
    def __init__(self, job_id: _Optional[str] = ..., attempt: _Optional[int] = ..., state: _Optional[_Union[JobState, str]] = ..., outcome: _Optional[str] = ...) -> None: ...

class FinishJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: QueuedJob
    def __init__(self, job: _Optional[_Union[QueuedJob, _Mapping]] = ...) -> None: ...

class AttachJobMessageRequest(_message.Message):
    __slots__ = ("job_id", "status_message_id")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    status_message_id: int
    def __init__(self, job_id: _Optional[str] = ..., status_message_id: _Optional[int] = ...) -> None: ...

class AttachJobMessageResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: QueuedJob
    def __init__(self, job: _Optional[_Union[QueuedJob, _Mapping]] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    def __init__(self, user_id: _Optional[int] = ...) -> None: ...

class CancelJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: QueuedJob
    def __init__(self, job: _Optional[_Union[QueuedJob, _Mapping]] = ...) -> None: ...

class ListRunnableJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRunnableJobsResponse(_message.Message):
    __slots__ = ("user_ids", "next_page_token")
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    user_ids: _containers.RepeatedScalarFieldContainer[int]
    next_page_token: str
    def __init__(self, user_ids: _Optional[_Iterable[int]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RefundTopUpRequest(_message.Message):
    __slots__ = ("idempotency_key", "provider", "provider_charge_id", "reason")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_CHARGE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    provider: str
    provider_charge_id: str
    reason: str
    def __init__(self, idempotency_key: _Optional[str] = ..., provider: _Optional[str] = ..., provider_charge_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RefundTopUpResponse(_message.Message):
    __slots__ = ("transaction", "balance_credits", "user_id")
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    BALANCE_CREDITS_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    transaction: Transaction
    balance_credits: int
    user_id: int
    def __init__(self, transaction: _Optional[_Union[Transaction, _Mapping]] = ..., balance_credits: _Optional[int] = ..., user_id: _Optional[int] = ...) -> None: ...

class EraseUserRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    def __init__(self, user_id: _Optional[int] = ...) -> None: ...

class EraseUserResponse(_message.Message):
    __slots__ = ("jobs_erased",)
    JOBS_ERASED_FIELD_NUMBER: _ClassVar[int]
    jobs_erased: int
    def __init__(self, jobs_erased: _Optional[int] = ...) -> None: ...
