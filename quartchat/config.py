"""One loader for every setting.

Precedence, lowest first: built-in defaults < config.toml < ``QUARTCHAT_<SECTION>_<KEY>``
environment variables < the ``overrides`` given to :func:`create_app`.  Unknown sections or
keys are errors, and so is any value of the wrong type or range: start-up stops with a message
that names the key and where the bad value came from.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from ipaddress import ip_network
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .origins import normalize_origin

CONFIG_ENV = "QUARTCHAT_CONFIG"
ENV_PREFIX = "QUARTCHAT_"
BROKER_SCHEMES = ("memory://", "redis://", "rediss://")


class ConfigError(Exception):
    """A setting is missing, unknown or has a bad value; the message names it."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Section):
    bind: str = "127.0.0.1:8000"
    workers: int = Field(1, ge=1, le=64)
    certfile: str = ""
    keyfile: str = ""
    quic_bind: str = Field(
        "",
        description="HOST:PORT (UDP) for HTTP/3 over QUIC, beside the TCP bind; needs TLS "
        "and the h3 extra (pip install 'quartchat[h3]').  Empty: no HTTP/3.",
    )
    secret_key: str = Field(
        "",
        description="Signs the session cookie that lets a reloaded page reclaim its call name. "
        "Empty: a random key, shared through Redis by every process when the broker is Redis.",
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="json: the access log (stdout) and every other log (stderr) are one JSON "
        "object per line.",
    )
    event_loop: Literal["asyncio", "uvloop"] = Field(
        "asyncio",
        description="uvloop: a faster event loop (pip install 'quartchat[uvloop]'); see "
        "docs/performance.md for what it gains.",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For "
        "and X-Forwarded-Proto are believed; empty: nobody's.",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Origins (scheme://host[:port]) of other sites whose pages may open "
        "websockets here; empty: only pages on the host the browser connected to.  "
        "Handshakes without an Origin (not from a browser) are always allowed.",
    )

    @field_validator("secret_key")
    @classmethod
    def _not_a_placeholder(cls, value: str) -> str:
        if "CHANGE-ME" in value:
            raise ValueError(
                "still the example's placeholder: put a random key here (python3 -c "
                "'import secrets; print(secrets.token_hex(32))'), or leave it empty"
            )
        return value

    @field_validator("bind", "quic_bind")
    @classmethod
    def _host_and_port(cls, value: str, info: ValidationInfo) -> str:
        if info.field_name == "quic_bind" and not value:
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:8000")
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, entries: list[str]) -> list[str]:
        return [normalize_origin(entry) for entry in entries]

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses_or_networks(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            try:
                ip_network(entry)
            except ValueError as error:
                raise ValueError(
                    f"{error}: give IP addresses or networks, e.g. 127.0.0.1 or 10.0.0.0/24"
                ) from None
        return entries


class BrokerConfig(_Section):
    url: str = "memory://"
    namespace: str = Field(
        "quartchat",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="Prefix of every Redis channel and key: apps sharing a Redis stay apart.",
    )
    lease_seconds: float = Field(
        10.0,
        ge=1,
        le=3600,
        description="With Redis: how long a crashed process's members and call names stay "
        "listed; live processes renew theirs three times per lease.",
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(BROKER_SCHEMES):
            raise ValueError(
                "must start with memory:// (one process), redis:// or rediss:// (Redis over "
                "TLS), e.g. redis://localhost:6379/0"
            )
        if value.startswith(("redis://", "rediss://")):
            parts = urlsplit(value)
            _ = parts.port  # raises ValueError on a port that is not a number
            if not parts.hostname:
                raise ValueError("a Redis URL needs a host, e.g. redis://localhost:6379/0")
        return value


class StoreConfig(_Section):
    url: str = "sqlite+aiosqlite:///quartchat.db"

    @field_validator("url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if "://" not in value or "+" not in value.split("://", 1)[0]:
            raise ValueError("must be an async SQLAlchemy URL, e.g. sqlite+aiosqlite:///chat.db")
        return value


class LimitsConfig(_Section):
    message_max_chars: int = Field(2000, ge=1, le=100_000)
    frame_max_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)
    request_max_bytes: int = Field(64 * 1024, ge=1024, le=64 * 1024 * 1024)
    rate_per_second: float = Field(5.0, gt=0)
    rate_burst: int = Field(10, ge=1)
    queue_length: int = Field(256, ge=1, le=100_000)
    history_on_join: int = Field(50, ge=0, le=1000)
    page_max: int = Field(200, ge=1, le=10_000)
    typing_interval_seconds: float = Field(2.0, ge=0)
    store_batch_max: int = Field(256, ge=1, le=10_000)
    connections_per_ip: int = Field(
        100,
        ge=1,
        description="Websockets one client address may hold open at once, per process.",
    )
    handshakes_per_ip_per_second: float = Field(
        10.0, gt=0, description="New websockets per client address and second, on average..."
    )
    handshake_burst: int = Field(50, ge=1, description="...with bursts up to this many.")


class CallConfig(_Section):
    ring_timeout_seconds: float = Field(30.0, gt=0, le=600)
    reach_timeout_seconds: float = Field(5.0, gt=0, le=60)
    sdp_max_bytes: int = Field(32 * 1024, ge=1024, le=1024 * 1024)
    candidate_max_bytes: int = Field(1024, ge=128, le=16 * 1024)
    rate_per_second: float = Field(20.0, gt=0)
    rate_burst: int = Field(60, ge=1)


class IceConfig(_Section):
    stun_urls: list[str] = Field(default_factory=list)
    turn_urls: list[str] = Field(default_factory=list)
    turn_secret: str = ""
    turn_ttl_seconds: int = Field(3600, ge=60, le=7 * 24 * 3600)

    @field_validator("stun_urls")
    @classmethod
    def _stun_scheme(cls, urls: list[str]) -> list[str]:
        return _with_scheme(urls, ("stun:", "stuns:"))

    @field_validator("turn_urls")
    @classmethod
    def _turn_scheme(cls, urls: list[str]) -> list[str]:
        return _with_scheme(urls, ("turn:", "turns:"))

    @model_validator(mode="after")
    def _turn_needs_secret(self) -> IceConfig:
        if self.turn_urls and not self.turn_secret:
            raise ValueError(
                "turn_urls need turn_secret (the TURN server's static-auth-secret): browsers "
                "only ever get short-lived credentials derived from it"
            )
        return self


def _with_scheme(urls: list[str], schemes: tuple[str, ...]) -> list[str]:
    for url in urls:
        if not url.startswith(schemes) or len(url) <= len(url.split(":", 1)[0]) + 1:
            raise ValueError(f"{url!r} must start with {' or '.join(schemes)}")
    return urls


class Settings(_Section):
    server: ServerConfig = ServerConfig()
    broker: BrokerConfig = BrokerConfig()
    store: StoreConfig = StoreConfig()
    limits: LimitsConfig = LimitsConfig()
    call: CallConfig = CallConfig()
    ice: IceConfig = IceConfig()


def load_settings(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Merge the layers and validate them.

    Arguments:
        path: a config.toml; when None, ``$QUARTCHAT_CONFIG``, else ./config.toml if present.
        environ: the environment to read ``QUARTCHAT_*`` from (default ``os.environ``).
        overrides: ``{section: {key: value}}`` applied last (tests, embedding).
    """
    environ = os.environ if environ is None else environ
    merged: dict[str, dict[str, Any]] = {}
    origin: dict[tuple[str, str], str] = {}

    toml_path = _resolve_path(path, environ)
    if toml_path is not None:
        _merge(merged, origin, _read_toml(toml_path), str(toml_path))
    _merge(merged, origin, _from_environ(environ), "environment")
    if overrides:
        _merge(merged, origin, overrides, "overrides")

    try:
        return Settings.model_validate(merged)
    except ValidationError as error:
        raise ConfigError(_describe(error, origin)) from None


def _resolve_path(path: str | Path | None, environ: Mapping[str, str]) -> Path | None:
    if path is None and environ.get(CONFIG_ENV):
        path = environ[CONFIG_ENV]
    if path is not None:
        resolved = Path(path)
        if not resolved.is_file():
            raise ConfigError(f"config file not found: {resolved}")
        return resolved
    default = Path("config.toml")
    return default if default.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None


def _from_environ(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Map ``QUARTCHAT_LIMITS_RATE_BURST=3`` to ``{"limits": {"rate_burst": "3"}}``."""
    layer: dict[str, dict[str, Any]] = {}
    sections = {name.upper(): name for name in Settings.model_fields}
    for variable, value in environ.items():
        if not variable.startswith(ENV_PREFIX) or variable == CONFIG_ENV:
            continue
        rest = variable[len(ENV_PREFIX) :]
        section_key, _, key = rest.partition("_")
        if section_key not in sections or not key:
            raise ConfigError(f"{variable}: no such setting (expected QUARTCHAT_<SECTION>_<KEY>)")
        section = sections[section_key]
        field = _field_type(section, key.lower())
        layer.setdefault(section, {})[key.lower()] = _split_list(value) if field is list else value
    return layer


def _field_type(section: str, key: str) -> Any:
    model = Settings.model_fields[section].annotation
    fields = model.model_fields if isinstance(model, type) and issubclass(model, BaseModel) else {}
    annotation = fields[key].annotation if key in fields else None
    return getattr(annotation, "__origin__", annotation)


def _split_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _merge(
    merged: dict[str, dict[str, Any]],
    origin: dict[tuple[str, str], str],
    layer: Mapping[str, Any],
    source: str,
) -> None:
    for section, values in layer.items():
        if not isinstance(values, Mapping):
            merged[section] = values  # let validation report the bad section shape
            continue
        target = merged.setdefault(section, {})
        for key, value in values.items():
            target[key] = value
            origin[(section, key)] = source


def _describe(error: ValidationError, origin: Mapping[tuple[str, str], str]) -> str:
    lines = []
    for problem in error.errors():
        location = [str(part) for part in problem["loc"]]
        name = ".".join(location)
        where = origin.get((location[0], location[1])) if len(location) > 1 else None
        if where == "environment":
            where = f"${ENV_PREFIX}{location[0].upper()}_{location[1].upper()}"
        message = "unknown setting" if problem["type"] == "extra_forbidden" else problem["msg"]
        suffix = f" (from {where})" if where else ""
        lines.append(f"{name}: {message}{suffix}")
    return "invalid configuration: " + "; ".join(lines)
