"""voxmesh's client: the generated stubs of every service and an async transcriber client.

The stubs are importable as ``voxmesh_client.<service>.v1`` (``billing``,
``transcriber``, ``notifier``, ``voxmesh.common``); :class:`TranscriberClient`
wraps the transcriber with deadlines, the mesh's retry policy, TLS and trace
propagation.
"""

from voxmesh_client._channel import RETRY_POLICY, TlsFiles, channel_options, dial, service_config
from voxmesh_client._client import Options, TranscriberClient, Transcript
from voxmesh_client._errors import TranscriberError

__all__ = [
    "RETRY_POLICY",
    "Options",
    "TlsFiles",
    "TranscriberClient",
    "TranscriberError",
    "Transcript",
    "channel_options",
    "dial",
    "service_config",
]
