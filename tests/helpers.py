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


def reference_text(audio: pathlib.Path, name: str) -> str:
    return str(json.loads((audio / "transcripts.json").read_text())[name]["text"])
