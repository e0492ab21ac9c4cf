"""The upload spools of all active streams must fit the disk they are written to."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from transcriber.config import TranscriberConfig, TranscriberConfigError

MIB = 1024 * 1024


def test_the_spool_budget_bounds_uploads_times_active_streams() -> None:
    env = {
        "TRANSCRIBER_DEVICE": "cpu",
        "TRANSCRIBER_MAX_ACTIVE_STREAMS": "2",
        "TRANSCRIBER_MAX_UPLOAD_BYTES": str(512 * MIB),
        "TRANSCRIBER_SPOOL_BUDGET_BYTES": str(1024 * MIB),
    }
    assert TranscriberConfig.from_env(env).spool_budget_bytes == 1024 * MIB
    with pytest.raises(TranscriberConfigError, match="TRANSCRIBER_SPOOL_BUDGET_BYTES"):
        TranscriberConfig.from_env({**env, "TRANSCRIBER_MAX_ACTIVE_STREAMS": "3"})
    # Unset: a developer's disk is not checked.
    assert TranscriberConfig.from_env({"TRANSCRIBER_DEVICE": "cpu"}).spool_budget_bytes == 0


def test_a_config_that_does_not_fit_stops_the_process_with_one_line() -> None:
    env = {
        **os.environ,
        "TRANSCRIBER_DEVICE": "cpu",
        "TRANSCRIBER_MAX_ACTIVE_STREAMS": "4",
        "TRANSCRIBER_SPOOL_BUDGET_BYTES": str(1024 * MIB),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "transcriber"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("transcriber: TRANSCRIBER_SPOOL_BUDGET_BYTES=1073741824")
