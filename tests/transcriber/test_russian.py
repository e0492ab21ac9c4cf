"""Russian through the multilingual base model: detected as Russian, transcribed closely.

The clip is committed (tests/data/ru_paragraph.ogg, made with festival's
Russian voice; tests/data/README.md has the command), so no synthesizer is
needed here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import cer, normalise_ru
from tests.transcriber.conftest import REPO_ROOT, ServerFactory
from transcriber.v1 import transcriber_pb2 as pb

pytestmark = pytest.mark.slow

DATA = REPO_ROOT / "tests" / "data"


def test_normalise_ru_drops_case_punctuation_and_yo() -> None:
    assert normalise_ru("Лёгкий  ветер, с юга!") == "легкий ветер с юга"
    assert cer("Лёгкий ветер", "легкий ветер.") == 0.0


async def test_base_transcribes_a_russian_paragraph(start_server: ServerFactory) -> None:
    data = (DATA / "ru_paragraph.ogg").read_bytes()
    reference = (DATA / "ru_paragraph.txt").read_text(encoding="utf-8")
    srv = await start_server()
    reply = await srv.stub.TranscribeFile(
        pb.TranscribeFileRequest(config=pb.TranscriptionConfig(model="base"), audio=data),
        timeout=120,
    )
    assert reply.done.model == "base"
    assert reply.done.audio_duration_seconds == pytest.approx(66.0, abs=1.5)
    assert reply.language.language == "ru"
    assert reply.language.probability > 0.5
    text = " ".join(s.text for s in reply.segments)
    measured = cer(reference, text)
    assert measured <= 0.10, (measured, text)


def test_reference_text_matches_the_clip() -> None:
    """Guards against one of the pair being replaced without the other."""
    assert Path(DATA / "ru_paragraph.ogg").stat().st_size < 250_000
    reference = (DATA / "ru_paragraph.txt").read_text(encoding="utf-8")
    assert reference.startswith("Утром в нашем городе") and len(reference.split()) > 100
