"""The client package from its source folder (clients/python), and a real transcriber.

In-process tests import ``voxmesh_client`` from the repository; the slow
install test checks the package as a team would get it: built and installed
into an empty virtualenv.
"""

from __future__ import annotations

import sys

from tests.transcriber.conftest import (  # noqa: F401 - fixtures used here
    REPO_ROOT,
    audio_dir,
    base_config,
    jfk_audio,
    registry,
    start_server,
    transcripts,
)

CLIENT_ROOT = REPO_ROOT / "clients" / "python"
if str(CLIENT_ROOT) not in sys.path:
    sys.path.insert(0, str(CLIENT_ROOT))
