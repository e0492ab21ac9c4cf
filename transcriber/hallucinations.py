"""Whisper's stock phrases: what it writes over silence, music and noise.

Whisper was trained on subtitles, so audio with no speech often comes back
as a subtitle credit or a channel's sign-off. VAD and the no-speech and
log-probability thresholds stop most of it; these phrases are dropped where
a segment is nothing else (a sentence that merely contains them stays).
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

from transcriber.asr import Word

# Normalised text: lower case, words and single spaces, ё as е, dots dropped.
# Sign-offs count only when they are the whole segment.
_SIGN_OFFS = frozenset(
    {
        "thank you for watching",
        "thanks for watching",
        "thank you so much for watching",
        "thank you for listening",
        "please subscribe",
        "subscribe to my channel",
        "like and subscribe",
        "see you in the next video",
        "продолжение следует",
        "спасибо за просмотр",
        "спасибо за внимание",
        "подписывайтесь на канал",
        "ставьте лайки",
        "до новых встреч",
    }
)
# Credits may name their author (a few words) after the phrase.
_CREDITS = (
    "subtitles by",
    "transcription by",
    "captions by",
    "amaraorg",
    "субтитры сделал",
    "субтитры создавал",
    "субтитры подготовил",
    "субтитры подогнал",
    "субтитры делал",
    "редактор субтитров",
)
_MAX_NAME_WORDS = 6


def _normalise(text: str) -> str:
    text = text.lower().replace("ё", "е").replace(".", "")
    text = re.sub(r"[^\w\s]", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def is_stock_phrase(text: str) -> bool:
    """Whether ``text`` is only one of Whisper's stock phrases (and perhaps a name)."""
    norm = _normalise(text)
    if not norm:
        return bool(text.strip())  # punctuation alone: ". . ." and the like
    if norm in _SIGN_OFFS:
        return True
    for phrase in _CREDITS:
        if norm.startswith(phrase):
            return len(norm[len(phrase) :].split()) <= _MAX_NAME_WORDS
    return False


# OpenAI Whisper's test for words made up over a pause (its
# hallucination_silence_threshold): improbable, or too short or too long to
# be spoken. faster-whisper has the same test nested inside its decoding loop,
# where nothing else can call it, so it is restated here.
_IMPROBABLE = 0.15
_SHORTEST = 0.133
_LONGEST = 2.0


def _anomaly(word: Word) -> float:
    score = 1.0 if word.probability < _IMPROBABLE else 0.0
    duration = word.end - word.start
    if duration < _SHORTEST:
        score += (_SHORTEST - duration) * 15
    if duration > _LONGEST:
        score += duration - _LONGEST
    return score


def is_anomalous(words: Sequence[Word]) -> bool:
    """Whether these words look made up: Whisper's own test on their first eight."""
    spoken = [w for w in words if w.word.strip(string.punctuation + string.whitespace)][:8]
    if not spoken:
        return False
    score = sum(_anomaly(w) for w in spoken)
    return score >= 3 or score + 0.01 >= len(spoken)
