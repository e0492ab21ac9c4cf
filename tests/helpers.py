"""Helpers shared by tests: transcript accuracy against the reference recordings."""

from __future__ import annotations

import json
import pathlib
import re


def wer(reference: str, hypothesis: str) -> float:
    import jiwer

    def norm(text: str) -> str:
        return re.sub(r"[^\w\s]", "", text.lower()).strip()

    return float(jiwer.wer(norm(reference), norm(hypothesis)))


def normalise_ru(text: str) -> str:
    # Whisper writes "е" for "ё" as often as not; neither is an error of hearing.
    text = text.lower().replace("ё", "е")
    text = re.sub(r"[^\w\s]", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate, for languages (Russian) whose words inflect."""
    import jiwer

    return float(jiwer.cer(normalise_ru(reference), normalise_ru(hypothesis)))


def reference_text(audio: pathlib.Path, name: str) -> str:
    return str(json.loads((audio / "transcripts.json").read_text())[name]["text"])


def readme_block(containing: str) -> str:
    """The README's one shell block holding ``containing``, as a user would paste it."""
    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", readme, flags=re.DOTALL)
    [block] = [b for b in blocks if containing in b]
    return block
