from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Task(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_UNSPECIFIED: _ClassVar[Task]
    TASK_TRANSCRIBE: _ClassVar[Task]
    TASK_TRANSLATE: _ClassVar[Task]

class OutputFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTPUT_FORMAT_UNSPECIFIED: _ClassVar[OutputFormat]
    OUTPUT_FORMAT_TEXT: _ClassVar[OutputFormat]
    OUTPUT_FORMAT_TIMESTAMPED_TEXT: _ClassVar[OutputFormat]
    OUTPUT_FORMAT_SRT: _ClassVar[OutputFormat]
    OUTPUT_FORMAT_VTT: _ClassVar[OutputFormat]

class InputMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INPUT_MODE_UNSPECIFIED: _ClassVar[InputMode]
    INPUT_MODE_FILE: _ClassVar[InputMode]
    INPUT_MODE_LIVE_PCM: _ClassVar[InputMode]
TASK_UNSPECIFIED: Task
TASK_TRANSCRIBE: Task
TASK_TRANSLATE: Task
OUTPUT_FORMAT_UNSPECIFIED: OutputFormat
OUTPUT_FORMAT_TEXT: OutputFormat
OUTPUT_FORMAT_TIMESTAMPED_TEXT: OutputFormat
OUTPUT_FORMAT_SRT: OutputFormat
OUTPUT_FORMAT_VTT: OutputFormat
INPUT_MODE_UNSPECIFIED: InputMode
INPUT_MODE_FILE: InputMode
INPUT_MODE_LIVE_PCM: InputMode

class TranscriptionConfig(_message.Message):
    __slots__ = ("language", "task", "word_timestamps", "output_format", "input_mode", "sample_rate_hz", "initial_prompt", "hotwords", "beam_size", "model", "paid_seconds")
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    WORD_TIMESTAMPS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    INPUT_MODE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    INITIAL_PROMPT_FIELD_NUMBER: _ClassVar[int]
    HOTWORDS_FIELD_NUMBER: _ClassVar[int]
    BEAM_SIZE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PAID_SECONDS_FIELD_NUMBER: _ClassVar[int]
    language: str
    task: Task
    word_timestamps: bool
    output_format: OutputFormat
    input_mode: InputMode
    sample_rate_hz: int
    initial_prompt: str
    hotwords: str
    beam_size: int
    model: str
    paid_seconds: float
    def __init__(self, language: _Optional[str] = ..., task: _Optional[_Union[Task, str]] = ..., word_timestamps: _Optional[bool] = ..., output_format: _Optional[_Union[OutputFormat, str]] = ..., input_mode: _Optional[_Union[InputMode, str]] = ..., sample_rate_hz: _Optional[int] = ..., initial_prompt: _Optional[str] = ..., hotwords: _Optional[str] = ..., beam_size: _Optional[int] = ..., model: _Optional[str] = ..., paid_seconds: _Optional[float] = ...) -> None: ...

class PaidSeconds(_message.Message):
    __slots__ = ("paid_seconds",)
    PAID_SECONDS_FIELD_NUMBER: _ClassVar[int]
    paid_seconds: float
    def __init__(self, paid_seconds: _Optional[float] = ...) -> None: ...

class AudioInfo(_message.Message):
    __slots__ = ("duration_seconds", "final")
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    duration_seconds: float
    final: bool
    def __init__(self, duration_seconds: _Optional[float] = ..., final: _Optional[bool] = ...) -> None: ...

class Word(_message.Message):
    __slots__ = ("start_seconds", "end_seconds", "word", "probability")
    START_SECONDS_FIELD_NUMBER: _ClassVar[int]
    END_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WORD_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    start_seconds: float
    end_seconds: float
    word: str
    probability: float
    def __init__(self, start_seconds: _Optional[float] = ..., end_seconds: _Optional[float] = ..., word: _Optional[str] = ..., probability: _Optional[float] = ...) -> None: ...

class Segment(_message.Message):
    __slots__ = ("segment_id", "start_seconds", "end_seconds", "text", "words", "final")
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    START_SECONDS_FIELD_NUMBER: _ClassVar[int]
    END_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    segment_id: int
    start_seconds: float
    end_seconds: float
    text: str
    words: _containers.RepeatedCompositeFieldContainer[Word]
    final: bool
    def __init__(self, segment_id: _Optional[int] = ..., start_seconds: _Optional[float] = ..., end_seconds: _Optional[float] = ..., text: _Optional[str] = ..., words: _Optional[_Iterable[_Union[Word, _Mapping]]] = ..., final: _Optional[bool] = ...) -> None: ...

class LanguageDetected(_message.Message):
    __slots__ = ("language", "probability")
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    language: str
    probability: float
    def __init__(self, language: _Optional[str] = ..., probability: _Optional[float] = ...) -> None: ...

class Queued(_message.Message):
    __slots__ = ("position", "active")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    position: int
    active: int
    def __init__(self, position: _Optional[int] = ..., active: _Optional[int] = ...) -> None: ...

class Done(_message.Message):
    __slots__ = ("audio_duration_seconds", "processing_seconds", "model", "device", "formatted_text", "segment_count", "transcribed_seconds")
    AUDIO_DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PROCESSING_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    FORMATTED_TEXT_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIBED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    audio_duration_seconds: float
    processing_seconds: float
    model: str
    device: str
    formatted_text: str
    segment_count: int
    transcribed_seconds: float
    def __init__(self, audio_duration_seconds: _Optional[float] = ..., processing_seconds: _Optional[float] = ..., model: _Optional[str] = ..., device: _Optional[str] = ..., formatted_text: _Optional[str] = ..., segment_count: _Optional[int] = ..., transcribed_seconds: _Optional[float] = ...) -> None: ...

class TranscribeRequest(_message.Message):
    __slots__ = ("config", "audio", "paid", "end_of_audio")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    PAID_FIELD_NUMBER: _ClassVar[int]
    END_OF_AUDIO_FIELD_NUMBER: _ClassVar[int]
    config: TranscriptionConfig
    audio: bytes
    paid: PaidSeconds
    end_of_audio: bool
    def __init__(self, config: _Optional[_Union[TranscriptionConfig, _Mapping]] = ..., audio: _Optional[bytes] = ..., paid: _Optional[_Union[PaidSeconds, _Mapping]] = ..., end_of_audio: _Optional[bool] = ...) -> None: ...

class TranscribeResponse(_message.Message):
    __slots__ = ("language", "segment", "done", "audio", "queued")
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    language: LanguageDetected
    segment: Segment
    done: Done
    audio: AudioInfo
    queued: Queued
    def __init__(self, language: _Optional[_Union[LanguageDetected, _Mapping]] = ..., segment: _Optional[_Union[Segment, _Mapping]] = ..., done: _Optional[_Union[Done, _Mapping]] = ..., audio: _Optional[_Union[AudioInfo, _Mapping]] = ..., queued: _Optional[_Union[Queued, _Mapping]] = ...) -> None: ...

class TranscribeFileRequest(_message.Message):
    __slots__ = ("config", "audio")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    config: TranscriptionConfig
    audio: bytes
    def __init__(self, config: _Optional[_Union[TranscriptionConfig, _Mapping]] = ..., audio: _Optional[bytes] = ...) -> None: ...

class TranscribeFileResponse(_message.Message):
    __slots__ = ("language", "segments", "done")
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    language: LanguageDetected
    segments: _containers.RepeatedCompositeFieldContainer[Segment]
    done: Done
    def __init__(self, language: _Optional[_Union[LanguageDetected, _Mapping]] = ..., segments: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ..., done: _Optional[_Union[Done, _Mapping]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "path", "device", "compute_type", "multilingual", "is_default")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_TYPE_FIELD_NUMBER: _ClassVar[int]
    MULTILINGUAL_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    device: str
    compute_type: str
    multilingual: bool
    is_default: bool
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ..., device: _Optional[str] = ..., compute_type: _Optional[str] = ..., multilingual: _Optional[bool] = ..., is_default: _Optional[bool] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...
