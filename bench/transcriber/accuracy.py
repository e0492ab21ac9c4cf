"""Accuracy and speed of each bundled model at beam 1 and 5, through the service core.

One command: ``python -m bench.transcriber.accuracy`` (``--models``, ``--beams``).
For each model and beam it transcribes, with the windowing the service runs
(``transcriber.windowing``, one loaded model, the server's decode settings):

* English: jfk.flac (11 s) and the MIT grant of multilingual.mp3 (29.5 s), WER;
* Russian: tests/data/ru_paragraph.ogg (66 s), CER (multilingual models only);

and reports the real-time factor (processing seconds per audio second) of
each. The default beam size of ``transcriber.config`` was chosen from this
table (see the comment there and the README).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import jiwer  # noqa: E402
import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

from bench.transcriber.run import MIT_GRANT, SR, shared_audio, wer  # noqa: E402
from transcriber.asr import DecodeOptions  # noqa: E402
from transcriber.config import TranscriberConfig  # noqa: E402
from transcriber.models import ModelRegistry  # noqa: E402
from transcriber.windowing import WindowedTranscriber  # noqa: E402

Audio = npt.NDArray[np.float32]


def normalise_ru(text: str) -> str:
    text = text.lower().replace("ё", "е")
    text = re.sub(r"[^\w\s]", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def cer(reference: str, hypothesis: str) -> float:
    return float(jiwer.cer(normalise_ru(reference), normalise_ru(hypothesis)))


def clips() -> list[tuple[str, str, Audio, str]]:
    """(name, language, audio, reference) of the committed English and Russian clips."""
    from faster_whisper import decode_audio

    audio_dir = shared_audio()
    jfk_text = json.loads((audio_dir / "transcripts.json").read_text())["jfk.flac"]["text"]
    data = REPO / "tests" / "data"
    return [
        ("jfk", "en", decode_audio(str(audio_dir / "jfk.flac")), jfk_text),
        (
            "mit",
            "en",
            decode_audio(str(audio_dir / "multilingual.mp3"))[: int(29.5 * SR)],
            MIT_GRANT,
        ),
        (
            "ru",
            "ru",
            decode_audio(str(data / "ru_paragraph.ogg")),
            (data / "ru_paragraph.txt").read_text(encoding="utf-8"),
        ),
    ]


def transcribe(
    registry: ModelRegistry, model: str, audio: Audio, beam: int, language: str | None
) -> tuple[str, float]:
    """Text and wall seconds of one transcription by the service's windowing."""
    recognizer = registry.get(model)
    windows = WindowedTranscriber(
        recognizer,
        DecodeOptions(language=language, beam_size=beam),
        emit=lambda _: None,
        cancel=threading.Event(),
    )
    start = time.perf_counter()
    transcript = windows.run(iter([audio.astype(np.float32)]))
    return " ".join(s.text.strip() for s in transcript.segments), time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny.en,base")
    parser.add_argument("--beams", default="1,5")
    parser.add_argument(
        "--auto", action="store_true", help="let multilingual models detect the language"
    )
    args = parser.parse_args(argv)
    config = replace(
        TranscriberConfig.from_env({"TRANSCRIBER_DEVICE": "cpu"}), max_active_streams=1
    )
    registry = ModelRegistry(config)
    print(f"{'model':8} {'beam':>4} {'clip':5} {'error':>12} {'RTF':>6}  text")
    for model in args.models.split(","):
        multilingual = registry.multilingual(model)
        registry.get(model)
        for beam in (int(b) for b in args.beams.split(",")):
            for name, language, audio, reference in clips():
                if language != "en" and not multilingual:
                    continue
                lang = None if (args.auto and multilingual) else language
                transcribe(registry, model, audio[: SR * 2], beam, lang)  # warm-up
                text, wall = transcribe(registry, model, audio, beam, lang)
                seconds = audio.size / SR
                error = (
                    f"CER {cer(reference, text):.3f}"
                    if language == "ru"
                    else f"WER {wer(reference, text):.3f}"
                )
                rtf = wall / seconds
                print(f"{model:8} {beam:>4} {name:5} {error:>12} {rtf:6.3f}  {text[:60]!r}")


if __name__ == "__main__":
    main()
