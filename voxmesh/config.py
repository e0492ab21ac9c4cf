"""Configuration from the environment (12-factor), typed and fail-fast.

Each service builds one frozen settings object in ``main()`` from
``os.environ`` and passes it down; nothing reads the environment later. A bad
or missing value raises :class:`ConfigError` naming the variable, which the
CLI prints as one line before exiting.
"""

from __future__ import annotations

import ipaddress
import math
import pathlib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

# The largest deadline we honour. gRPC encodes "no deadline" as a far-future
# value; anything past this is treated as no deadline and clamped.
MAX_DEADLINE_SECONDS = 24 * 3600.0


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message is one line."""


def env_str(env: Mapping[str, str], name: str, default: str | None = None) -> str:
    value = env.get(name, "").strip()
    if value:
        return value
    if default is None:
        raise ConfigError(f"{name} is required but not set")
    return default


def env_int(
    env: Mapping[str, str],
    name: str,
    default: int,
    *,
    min: int | None = None,  # noqa: A002 - mirrors the env var docs
    max: int | None = None,  # noqa: A002
) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if min is not None and value < min:
        raise ConfigError(f"{name}={value} is below the minimum {min}")
    if max is not None and value > max:
        raise ConfigError(f"{name}={value} is above the maximum {max}")
    return value


def env_float(
    env: Mapping[str, str],
    name: str,
    default: float,
    *,
    min: float | None = None,  # noqa: A002
    max: float | None = None,  # noqa: A002
) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if math.isnan(value) or (min is not None and value < min):
        raise ConfigError(f"{name}={raw} is below the minimum {min}")
    if max is not None and value > max:
        raise ConfigError(f"{name}={raw} is above the maximum {max}")
    return value


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (true/false)")


def env_choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, "").strip().lower() or default
    if value not in choices:
        raise ConfigError(f"{name}={value!r} must be one of {', '.join(choices)}")
    return value


def env_path(env: Mapping[str, str], name: str, default: pathlib.Path | None) -> pathlib.Path:
    raw = env.get(name, "").strip()
    if raw:
        return pathlib.Path(raw).expanduser()
    if default is None:
        raise ConfigError(f"{name} is required but not set")
    return default


def parse_addr(name: str, value: str) -> tuple[str, int]:
    """Parse ``host:port`` (IPv6 as ``[::1]:50051``); raise ConfigError if malformed."""
    host, sep, port_s = value.rpartition(":")
    if not sep or not port_s.isdigit() or not host:
        raise ConfigError(f"{name}={value!r} is not HOST:PORT")
    port = int(port_s)
    if not 0 <= port <= 65535:
        raise ConfigError(f"{name}={value!r} has a port outside 0..65535")
    return host.strip("[]"), port


def env_addr(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    parse_addr(name, value)
    return value


def is_loopback(host: str) -> bool:
    if host in {"localhost", ""}:
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# Well-known ports (k8s and `voxmesh up` use the same); loopback by default so
# a plaintext server is never exposed by accident.
DEFAULT_PORTS = {"billing": 50051, "transcriber": 50052, "notifier": 50053}
# Drain grace per service: a transcription stream may need a minute to finish.
DEFAULT_GRACE_SECONDS = {"billing": 10.0, "notifier": 15.0, "transcriber": 60.0}


TRACES_EXPORTERS = ("otlp", "zipkin", "console", "none")
PROPAGATORS = ("tracecontext", "baggage", "b3", "b3multi", "none")


@dataclass(frozen=True)
class TelemetrySettings:
    """Tracing and logging, from OpenTelemetry's standard variables.

    Only what voxmesh decides itself is parsed here: which exporters
    (``OTEL_TRACES_EXPORTER``), the sampler and the propagators. Everything
    an exporter or the batch processor is configured with (endpoints,
    protocol, headers, timeouts, compression, ``OTEL_BSP_*``) and the
    resource (``OTEL_RESOURCE_ATTRIBUTES``) is read by the SDK itself from
    the process environment, so its documentation is ours.
    """

    service_name: str
    # Comma-separated OTEL_TRACES_EXPORTER: "otlp" (the spec's default),
    # "zipkin", "console", "none".
    exporter: str = "otlp"
    sampler: str = "parentbased_traceidratio"
    sampler_arg: float = 1.0
    # OTEL_PROPAGATORS; empty means W3C tracecontext and B3 (single and multi).
    propagators: tuple[str, ...] = ()
    zipkin_ui_url: str = "http://127.0.0.1:9411/zipkin"
    log_format: str = "json"
    log_level: str = "INFO"
    # Values no log line, error text or span may carry: the bot token and the
    # passwords of DATABASE_URL and REDIS_URL.
    secrets: tuple[str, ...] = ()

    @property
    def exporters(self) -> tuple[str, ...]:
        return tuple(e for e in self.exporter.split(",") if e and e != "none")

    @classmethod
    def from_env(cls, env: Mapping[str, str], default_service: str) -> TelemetrySettings:
        # VOXMESH_TRACES_EXPORTER is the old name, read only when the standard one is unset.
        name = (
            "OTEL_TRACES_EXPORTER" if env.get("OTEL_TRACES_EXPORTER") else "VOXMESH_TRACES_EXPORTER"
        )
        exporters = [e.strip().lower() for e in env.get(name, "otlp").split(",") if e.strip()]
        for exporter in exporters:
            if exporter not in TRACES_EXPORTERS:
                raise ConfigError(
                    f"{name}={exporter!r} must be one of {', '.join(TRACES_EXPORTERS)}"
                )
        if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            exporters = ["none"]
        for protocol in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
            # The OTLP/gRPC exporter is not installed: refuse rather than send HTTP.
            env_choice(env, protocol, "http/protobuf", ("http/protobuf",))
        propagators = tuple(
            p.strip().lower() for p in env.get("OTEL_PROPAGATORS", "").split(",") if p.strip()
        )
        for propagator in propagators:
            if propagator not in PROPAGATORS:
                raise ConfigError(
                    f"OTEL_PROPAGATORS={propagator!r} must be one of {', '.join(PROPAGATORS)}"
                )
        return cls(
            service_name=env_str(env, "OTEL_SERVICE_NAME", default_service),
            exporter=",".join(exporters) or "none",
            sampler=env_choice(
                env,
                "OTEL_TRACES_SAMPLER",
                "parentbased_traceidratio",
                (
                    "always_on",
                    "always_off",
                    "traceidratio",
                    "parentbased_always_on",
                    "parentbased_always_off",
                    "parentbased_traceidratio",
                ),
            ),
            sampler_arg=env_float(env, "OTEL_TRACES_SAMPLER_ARG", 1.0, min=0.0, max=1.0),
            propagators=propagators,
            zipkin_ui_url=env_str(env, "ZIPKIN_UI_URL", "http://127.0.0.1:9411/zipkin"),
            log_format=env_choice(env, "VOXMESH_LOG_FORMAT", "json", ("json", "text")),
            log_level=env_choice(
                env, "VOXMESH_LOG_LEVEL", "info", ("debug", "info", "warning", "error")
            ).upper(),
            secrets=_secrets(env),
        )


def _secrets(env: Mapping[str, str]) -> tuple[str, ...]:
    found = [env.get("TELEGRAM_BOT_TOKEN", "").strip()]
    for name in ("DATABASE_URL", "REDIS_URL"):
        try:
            found.append(urllib.parse.urlsplit(env.get(name, "")).password or "")
        except ValueError:
            continue  # its own settings reject a malformed URL
    return tuple(s for s in found if s)
