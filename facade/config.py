"""Facade settings: one frozen object, read once from the environment.

| variable | default | |
| --- | --- | --- |
| ``FACADE_HTTP_ADDR`` | ``127.0.0.1:8090`` | the API, ``/healthz``, ``/readyz``, ``/metrics`` |
| ``TRANSCRIBER_TARGET`` | ``127.0.0.1:50052`` | the transcriber it calls |
| ``FACADE_API_KEYS`` | none | ``identity:key,...``; callers send ``Authorization: Bearer <key>`` |
| ``FACADE_MAX_UPLOAD_BYTES`` | 26214400 (25 MiB, OpenAI's limit) | larger uploads get 413 |
| ``FACADE_REQUEST_TIMEOUT_SECONDS`` | 600 | the deadline of each transcription call |
| ``FACADE_GRACE_SECONDS`` | 30 | requests in flight on SIGTERM get this long |

With no API keys every caller is ``anonymous``, which is allowed only when the
facade listens on loopback: a facade reachable from the network needs keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from voxmesh.config import ConfigError, env_addr, env_float, env_int, is_loopback, parse_addr
from voxmesh.tls import TlsSettings

ANONYMOUS = "anonymous"


def parse_api_keys(name: str, raw: str) -> dict[str, str]:
    """``identity:key,...`` -> {key: identity}; a key may map to one identity only."""
    keys: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        identity, sep, key = item.partition(":")
        identity, key = identity.strip(), key.strip()
        if not sep or not identity or not key:
            raise ConfigError(f"{name}: {item.split(':', 1)[0]!r}... is not identity:key")
        if len(key) < 16:
            raise ConfigError(f"{name}: the key of {identity!r} is shorter than 16 characters")
        if key in keys:
            raise ConfigError(f"{name}: {identity!r} and {keys[key]!r} share a key")
        keys[key] = identity
    return keys


@dataclass(frozen=True)
class FacadeSettings:
    http_addr: str = "127.0.0.1:8090"
    transcriber_target: str = "127.0.0.1:50052"
    #: API key -> caller identity; empty: no authentication (loopback only).
    api_keys: Mapping[str, str] = field(default_factory=dict)
    max_upload_bytes: int = 25 * 1024 * 1024
    request_timeout_seconds: float = 600.0
    grace_seconds: float = 30.0
    tls: TlsSettings | None = None

    def __post_init__(self) -> None:
        host, _ = parse_addr("FACADE_HTTP_ADDR", self.http_addr)
        if not self.api_keys and not is_loopback(host):
            raise ConfigError(
                f"FACADE_API_KEYS is required when FACADE_HTTP_ADDR={self.http_addr} "
                "is not loopback"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FacadeSettings:
        return cls(
            http_addr=env_addr(env, "FACADE_HTTP_ADDR", "127.0.0.1:8090"),
            transcriber_target=env.get("TRANSCRIBER_TARGET", "").strip() or "127.0.0.1:50052",
            api_keys=parse_api_keys("FACADE_API_KEYS", env.get("FACADE_API_KEYS", "")),
            max_upload_bytes=env_int(
                env, "FACADE_MAX_UPLOAD_BYTES", 25 * 1024 * 1024, min=1, max=1 << 31
            ),
            request_timeout_seconds=env_float(
                env, "FACADE_REQUEST_TIMEOUT_SECONDS", 600.0, min=1, max=86400
            ),
            grace_seconds=env_float(env, "FACADE_GRACE_SECONDS", 30.0, min=0, max=3600),
            tls=TlsSettings.from_env(env),
        )
