"""Configuration: one YAML file plus environment variables, validated at start.

Where the file comes from, first match wins: ``--config PATH``, ``$TURNOUT_CONFIG``,
``./turnout.yaml``. With no file, built-in defaults apply and a hosted backend is registered
for every provider whose API key is in the environment (``OPENAI_API_KEY``, ...).

Secrets may be written as ``env:NAME`` to read them from the environment at start.
Every mistake raises :class:`~turnout.exceptions.ConfigError` naming the file, the key and the fix.
"""

from __future__ import annotations

import difflib
import importlib.util
import ipaddress
import os
import re
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from turnout.backends.presets import PRESETS, get_preset
from turnout.exceptions import ConfigError
from turnout.policies.privacy_rules import CATEGORIES as PRIVACY_CATEGORIES

__all__ = [
    "BackendConfig",
    "Config",
    "CorsConfig",
    "DatabaseConfig",
    "Deployment",
    "KeysConfig",
    "LaunchConfig",
    "LimitsConfig",
    "LocalConfig",
    "LocalModelConfig",
    "ModelConfig",
    "PrivacyConfig",
    "RateLimitRule",
    "ServerConfig",
    "Timeouts",
    "TlsConfig",
    "find_config_file",
    "load_config",
    "parse_listen",
]

DEFAULT_CONFIG_NAME = "turnout.yaml"
#: the built-in backend that serves in-process models
LOCAL_BACKEND = "local"
#: the demo model's public names: the transformers engine, and the llama.cpp engine on the
#: same model in GGUF form (served when llama-cpp-python is installed)
DEMO_NAME = "local-demo"
DEMO_GGUF_NAME = "local-demo-gguf"


def llama_cpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


DEFAULT_PORT = 8400
SECRET_FIELDS = frozenset(
    {"api_key", "master_key", "redis_url", "url", "key_password", "headers", "env"}
)
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _sendable(text: str) -> bool:
    """Can travel in an HTTP/1.1 header: latin-1, no CR, LF or NUL."""
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return not any(c in text for c in "\r\n\0")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeouts(_Strict):
    """Seconds. ``read`` is the longest silence allowed between two bytes of a response;
    ``total`` is the overall deadline of one request, all tries included."""

    connect: Annotated[float, Field(gt=0)] = 10.0
    read: Annotated[float, Field(gt=0)] = 300.0
    total: Annotated[float, Field(gt=0)] = 600.0


class LaunchConfig(_Strict):
    """An engine server that turnout starts, watches and restarts (vLLM, llama-server,
    ollama serve, TGI): the backend then talks to it as to any OpenAI-compatible server."""

    #: the command and its arguments, e.g. [vllm, serve, /models/qwen, --port, "8000"]
    command: Annotated[list[str], Field(min_length=1)]
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    #: path on the backend's host answering 200 when the server is ready
    health_path: str = "/health"
    #: seconds to wait for the first healthy answer
    startup_timeout: Annotated[float, Field(gt=0)] = 600.0
    #: seconds between health checks once running
    health_interval: Annotated[float, Field(gt=0)] = 5.0
    #: restarts wait 1, 2, 4, ... seconds, at most this long
    max_backoff: Annotated[float, Field(gt=0)] = 60.0
    #: seconds a stopped server gets between SIGTERM and SIGKILL
    stop_timeout: Annotated[float, Field(gt=0)] = 15.0


class BackendConfig(_Strict):
    type: Literal["openai_compat"] = "openai_compat"
    preset: str = "openai_compat"
    base_url: str | None = None
    api_key: SecretStr | None = None
    api_version: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: Timeouts = Field(default_factory=Timeouts)
    max_connections: Annotated[int, Field(ge=1, le=100_000)] = 512
    #: ``NAME/any-model`` reaches this backend with ``any-model`` passed through
    passthrough: bool = True
    #: ask for usage in streams (``stream_options.include_usage``); default from the preset
    stream_usage: bool | None = None
    #: the deployment runs on the operator's own hardware; default from the preset
    local: bool | None = None
    #: verify the upstream's TLS certificate and host name (turn off only for tests)
    tls_verify: bool = True
    #: a PEM bundle of extra CAs to trust (e.g. the private CA of an internal vLLM)
    tls_ca_file: str | None = None
    #: start and supervise the engine server behind base_url (see LaunchConfig)
    launch: LaunchConfig | None = None

    @field_validator("tls_ca_file")
    @classmethod
    def _ca_exists(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).expanduser().is_file():
            raise ValueError(f"no such file {value!r}; give the path of a PEM CA bundle")
        return value

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        if value not in PRESETS:
            raise ValueError(f"unknown preset {value!r}; choose one of: {', '.join(PRESETS)}")
        return value

    @field_validator("headers")
    @classmethod
    def _sendable_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"header name {name!r} is not a valid HTTP token")
            if not _sendable(text):
                raise ValueError(
                    f"the value of header {name!r} has a line break, NUL or non-latin-1 character"
                )
        return value

    @field_validator("api_key")
    @classmethod
    def _sendable_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _sendable(value.get_secret_value()):
            raise ValueError("the key has a line break, NUL or non-latin-1 character; check it")
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http(s) URL; write e.g. https://host/v1")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _needs_url(self) -> BackendConfig:
        if self.resolved_base_url is None:
            raise ValueError(
                f"base_url is required for preset {self.preset!r}; set base_url: https://..."
            )
        return self

    @property
    def resolved_base_url(self) -> str | None:
        return self.base_url or get_preset(self.preset).base_url


class Deployment(_Strict):
    backend: str
    model: Annotated[str, Field(min_length=1)]
    weight: Annotated[float, Field(ge=0)] = 1.0
    #: a canary: rolled back to weight 0 when it does worse than the others (see rollback)
    canary: bool = False

    @property
    def label(self) -> str:
        return f"{self.backend}/{self.model}"


class RollbackConfig(_Strict):
    """When a canary deployment is set to weight 0, judged over a sliding window."""

    #: seconds of recent requests the comparison looks at
    window: Annotated[float, Field(gt=0, le=86400)] = 300.0
    #: requests each side needs in the window before anything is judged
    min_requests: Annotated[int, Field(ge=1)] = 20
    #: roll back when the canary's error rate exceeds the stable one's by more (0.05: 5 points)
    max_error_rate_increase: Annotated[float, Field(ge=0, le=1)] = 0.05
    #: roll back when the canary's p95 latency exceeds the stable one's times this factor
    max_latency_ratio: Annotated[float, Field(ge=1)] = 1.5


_STICKY = re.compile(r"^(key|session|header:[A-Za-z0-9-]{1,64})$")


class ModelConfig(_Strict):
    description: str = ""
    deployments: Annotated[list[Deployment], Field(min_length=1)]
    #: how the first deployment is chosen: weighted, latency, least_busy or cost
    strategy: Literal["weighted", "latency", "least_busy", "cost"] = "weighted"
    #: what keeps a caller on one variant, first present wins: key, session, header:NAME
    sticky: list[str] = Field(default_factory=list)
    #: public model names tried, in order, when every deployment of this one failed
    fallbacks: list[str] = Field(default_factory=list)
    #: what a request carrying sensitive data does: allow, local, redact or block
    privacy: Literal["allow", "local", "redact", "block"] = "allow"
    #: automatic rollback of canary deployments (on when a deployment is a canary)
    rollback: RollbackConfig = Field(default_factory=RollbackConfig)

    @model_validator(mode="after")
    def _some_weight(self) -> ModelConfig:
        if not any(d.weight > 0 for d in self.deployments):
            raise ValueError("every deployment has weight 0; give at least one a weight > 0")
        labels = [d.label for d in self.deployments]
        if len(set(labels)) != len(labels):
            raise ValueError("a deployment (backend + model) is listed twice; list each once")
        return self

    @field_validator("sticky")
    @classmethod
    def _sticky(cls, value: list[str]) -> list[str]:
        for item in value:
            if not _STICKY.match(item):
                raise ValueError(
                    f"{item!r} is not a sticky source; use key, session or header:HEADER-NAME"
                )
        return [item.lower() for item in value]


class RetryConfig(_Strict):
    """Tries per request and the pause between them."""

    #: tries of a deployment the request already tried (after the whole fallback chain)
    max_retries: Annotated[int, Field(ge=0, le=10)] = 2
    #: first backoff before trying a deployment again; doubles each time, with full jitter
    backoff: Annotated[float, Field(ge=0, le=60)] = 0.25
    #: longest backoff
    max_backoff: Annotated[float, Field(ge=0, le=600)] = 8.0
    #: an upstream asking (Retry-After) for a longer pause than this is not retried
    max_retry_after: Annotated[float, Field(ge=0, le=3600)] = 30.0
    #: seconds one try may take before its response starts (None: the backend's timeouts)
    try_timeout: Annotated[float | None, Field(gt=0)] = None
    #: retries may add at most this share of the requests (e.g. 0.2 = 20%) ...
    budget_ratio: Annotated[float, Field(ge=0, le=10)] = 0.2
    #: ... plus this many retries per second regardless
    budget_min_per_second: Annotated[float, Field(ge=0)] = 3.0


class BreakerConfig(_Strict):
    """Circuit breaking: ejecting a failing deployment, and bringing it back."""

    #: consecutive failures that eject a deployment
    failures: Annotated[int, Field(ge=1)] = 5
    #: seconds of the first ejection; each further one doubles it
    ejection: Annotated[float, Field(gt=0)] = 30.0
    #: the longest ejection
    max_ejection: Annotated[float, Field(gt=0)] = 600.0
    #: the largest share of a model's deployments ejected at once (one always stays)
    max_ejected_share: Annotated[float, Field(ge=0, le=1)] = 0.5
    #: seconds between active health checks of ejected deployments (0: none)
    health_interval: Annotated[float, Field(ge=0)] = 10.0


class PriceConfig(_Strict):
    #: US dollars per million prompt tokens
    input: Annotated[float, Field(ge=0)]
    #: US dollars per million completion tokens
    output: Annotated[float, Field(ge=0)]


class RouterConfig(_Strict):
    retries: RetryConfig = Field(default_factory=RetryConfig)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)


class LocalModelConfig(_Strict):
    """A model served in process from local files."""

    engine: Literal["transformers", "llama_cpp"] = "transformers"
    #: a model directory (transformers) or a .gguf file (llama_cpp), inside local.model_dirs
    path: str
    description: str = ""
    #: engine options, e.g. num_blocks / max_batch_tokens (transformers), instances (llama_cpp)
    options: dict[str, Any] = Field(default_factory=dict)
    #: transformers engine: none, int8 (CPU: dynamic int8; GPU: bitsandbytes) or int4 (GPU)
    quantization: Literal["none", "int8", "int4"] = "none"
    #: load when the gateway starts instead of on first use
    preload: bool = False

    @field_validator("quantization")
    @classmethod
    def _quantization(cls, value: str, info: Any) -> str:  # info: pydantic ValidationInfo
        if value == "none":
            return value
        if info.data.get("engine") == "llama_cpp":
            raise ValueError(
                "a GGUF file carries its own quantization: leave quantization at none and pick "
                "a quantized file (for example hf:ORG/NAME:Q4_K_M)"
            )
        options = info.data.get("options") or {}
        if value == "int4" and str(options.get("device", "cpu")) == "cpu":
            raise ValueError(
                "int4 needs a CUDA GPU (bitsandbytes): set options.device: cuda, or use int8 "
                "on the CPU, or a 4-bit GGUF file with the llama_cpp engine"
            )
        return value


class LocalConfig(_Strict):
    """In-process engines: the built-in backend ``local``."""

    #: directories model files may come from (default: DATA_DIR/models)
    model_dirs: list[str] = Field(default_factory=list)
    #: seconds an idle model stays loaded; -1 keeps it loaded
    keep_alive: float = 300.0
    #: most models loaded at once; the least recently used is unloaded first
    max_loaded: Annotated[int, Field(ge=1, le=1000)] = 3
    #: generate and serve the demo model ``local-demo`` (default: on without a config file)
    demo: bool | None = None
    models: dict[str, LocalModelConfig] = Field(default_factory=dict)

    @field_validator("keep_alive")
    @classmethod
    def _keep_alive(cls, value: float) -> float:
        if value < 0 and value != -1:
            raise ValueError("use a number of seconds, or -1 to keep models loaded")
        return value


class RateLimitRule(_Strict):
    """Limits for one subject (a client IP; later an API key). Unset: no limit of that kind."""

    #: requests per minute, refilled evenly (one every 60/N seconds)
    requests_per_minute: Annotated[int | None, Field(ge=1)] = None
    #: requests allowed at once from a full bucket (default: requests_per_minute)
    burst: Annotated[int | None, Field(ge=1)] = None
    #: prompt + completion tokens per minute (max_tokens reserved up front, then settled)
    tokens_per_minute: Annotated[int | None, Field(ge=1)] = None

    @model_validator(mode="after")
    def _some_limit(self) -> RateLimitRule:
        if self.requests_per_minute is None and self.tokens_per_minute is None:
            raise ValueError("set requests_per_minute and/or tokens_per_minute, or remove the rule")
        if self.burst is not None and self.requests_per_minute is None:
            raise ValueError("burst needs requests_per_minute; set it too")
        return self


class LimitsConfig(_Strict):
    """Rate limits, counted in memory or in Redis shared by every replica."""

    #: the limit for each client IP address (None: no per-IP limit)
    per_ip: RateLimitRule | None = None
    #: the limit for each API key that has no limits of its own (None: none)
    per_key: RateLimitRule | None = None
    #: proxies (CIDRs) whose X-Forwarded-For names the client; others are not believed
    trusted_proxies: list[str] = Field(default_factory=list)
    #: shared counts in Redis (redis://, rediss://, unix://); $TURNOUT_REDIS_URL overrides
    redis_url: SecretStr | None = None
    #: seconds to connect to Redis or wait for its answer
    redis_timeout: Annotated[float, Field(gt=0, le=10)] = 0.25
    #: when Redis fails: "local" counts in memory, "closed" refuses requests (503)
    on_redis_error: Literal["local", "closed"] = "local"
    #: share of each limit one replica allows while counting locally (1/replicas: the sum holds)
    fallback_share: Annotated[float, Field(gt=0, le=1)] = 1.0
    #: seconds Redis is left alone after a failure before it is tried again
    redis_retry_interval: Annotated[float, Field(gt=0, le=300)] = 1.0
    #: tokens reserved for the output of a request that names no max_tokens
    default_reservation: Annotated[int, Field(ge=0)] = 1024
    #: subjects counted in memory at most (the least recently used are forgotten first)
    max_keys: Annotated[int, Field(ge=100)] = 100_000
    #: prefix of every Redis key (to share one Redis between gateways)
    key_prefix: Annotated[str, Field(min_length=1, max_length=100)] = "turnout:rl:"

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(
                    f"{cidr!r} is not an IP network; write e.g. 10.0.0.0/8 or 192.0.2.7"
                ) from None
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(_REDIS_SCHEMES):
            raise ValueError("not a Redis URL; write redis://HOST:6379/0 (or rediss://, unix://)")
        return value


_PATTERN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class PrivacyConfig(_Strict):
    """What the privacy detector looks for (turnout.policies.privacy, docs/privacy.md)."""

    #: the built-in categories that are on (None: all of them)
    categories: list[str] | None = None
    #: the operator's regular expressions, name -> pattern; found as ``custom:NAME``
    patterns: dict[str, str] = Field(default_factory=dict)
    #: words or phrases found anywhere, case-insensitively; found as ``keyword``
    keywords: list[str] = Field(default_factory=list)

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, value: list[str] | None) -> list[str] | None:
        unknown = [name for name in value or () if name not in PRIVACY_CATEGORIES]
        if unknown:
            raise ValueError(
                f"unknown category {', '.join(map(repr, unknown))}; "
                f"choose from: {', '.join(PRIVACY_CATEGORIES)}"
            )
        return value

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pattern in value.items():
            if not _PATTERN_NAME.fullmatch(name):
                raise ValueError(
                    f"pattern name {name!r}: use letters, digits, '_', '.' and '-' (at most 64)"
                )
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"{name}: not a valid regular expression ({exc}); fix it (Python re "
                    "syntax) or remove it"
                ) from None
            if compiled.fullmatch("") is not None:
                raise ValueError(
                    f"{name}: the pattern matches empty text; make it match at least one "
                    "character (e.g. + instead of *)"
                )
        return value

    @field_validator("keywords")
    @classmethod
    def _not_blank(cls, value: list[str]) -> list[str]:
        for i, word in enumerate(value):
            if not word.strip():
                raise ValueError(f"keywords[{i}] is empty; remove it or write the word")
        return value


_DATABASE_SCHEMES = ("sqlite:", "sqlite+aiosqlite:", "postgres:", "postgresql:", "postgresql+")


class DatabaseConfig(_Strict):
    """Where keys, the request log and the audit trail are stored."""

    #: SQLite (sqlite:///PATH) or PostgreSQL (postgresql://USER:PASSWORD@HOST/DB);
    #: $TURNOUT_DATABASE_URL overrides; default sqlite:///DATA_DIR/turnout.db
    url: SecretStr | None = None

    @field_validator("url")
    @classmethod
    def _database_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(_DATABASE_SCHEMES):
            raise ValueError(
                "not a database URL; write postgresql://USER:PASSWORD@HOST:5432/DB "
                "or sqlite:///PATH/turnout.db (here or in $TURNOUT_DATABASE_URL)"
            )
        return value


_HOST_PATTERN = re.compile(r"^(\*|(\*\.)?[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?|\[?[0-9a-f:.]+\]?)$")
_ORIGIN = re.compile(r"^https?://[^/\s?#]+$")
_CORS_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


class TlsConfig(_Strict):
    """HTTPS serving (``turnout serve --ssl-certfile/--ssl-keyfile`` override the files)."""

    #: PEM file with the server certificate first, then its chain
    cert_file: str | None = None
    #: PEM file with the private key (None: the key is in cert_file)
    key_file: str | None = None
    #: password of an encrypted key_file
    key_password: SecretStr | None = None
    #: lowest TLS version accepted
    min_version: Literal["1.2", "1.3"] = "1.2"

    @field_validator("cert_file", "key_file")
    @classmethod
    def _readable(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).expanduser().is_file():
            raise ValueError(f"no such file {value!r}; give the path of a PEM file")
        return value

    @model_validator(mode="after")
    def _key_needs_cert(self) -> TlsConfig:
        if self.cert_file is None and (self.key_file or self.key_password):
            raise ValueError("key_file and key_password need cert_file; set it too")
        return self


class CorsConfig(_Strict):
    """Cross-origin requests from web pages. No origin is allowed unless listed."""

    #: origins allowed to call the API, e.g. https://app.example.com; "*" only if written
    allow_origins: list[str] = Field(default_factory=list)
    #: methods a cross-origin request may use
    allow_methods: list[str] = Field(default_factory=lambda: list(_CORS_METHODS))
    #: request headers a cross-origin request may send (a trailing * matches a prefix)
    allow_headers: list[str] = Field(
        default_factory=lambda: [
            "authorization",
            "content-type",
            "x-api-key",
            "x-request-id",
            "openai-*",
            "anthropic-*",
            "x-stainless-*",
        ]
    )
    #: response headers the page's script may read
    expose_headers: list[str] = Field(
        default_factory=lambda: [
            "x-request-id",
            "retry-after",
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
            "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-tokens",
        ]
    )
    #: let browsers send cookies and HTTP authentication (never with origin "*")
    allow_credentials: bool = False
    #: seconds a browser may cache a preflight answer
    max_age: Annotated[int, Field(ge=0, le=86400)] = 600

    @field_validator("allow_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not _ORIGIN.match(origin):
                raise ValueError(
                    f"{origin!r} is not an origin; write scheme://host[:port] with no path, "
                    "e.g. https://app.example.com"
                )
        return [origin.lower() for origin in value]

    @field_validator("allow_methods")
    @classmethod
    def _methods(cls, value: list[str]) -> list[str]:
        upper = [method.upper() for method in value]
        for method in upper:
            if not _TOKEN.fullmatch(method):
                raise ValueError(f"{method!r} is not an HTTP method")
        return upper

    @field_validator("allow_headers", "expose_headers")
    @classmethod
    def _header_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _TOKEN.fullmatch(name.removesuffix("*") or "x"):
                raise ValueError(f"{name!r} is not a header name")
        return [name.lower() for name in value]

    @model_validator(mode="after")
    def _no_wildcard_with_credentials(self) -> CorsConfig:
        if self.allow_credentials and "*" in self.allow_origins:
            raise ValueError(
                "allow_credentials cannot be used with allow_origins '*' (any web page could "
                "act with the user's credentials); list the origins instead"
            )
        return self


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) to its parts; ValueError naming the fix."""
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"{value!r} is not HOST:PORT with a port from 1 to 65535; write e.g. 127.0.0.1:8401"
        )
    return host, int(port)


class KeysConfig(_Strict):
    """API keys (turnout.policies.keys): held in memory, kept in step with the database."""

    #: seconds between two reads of changed keys (revocations by other replicas) and two
    #: writes of the spend counted here
    refresh_interval: Annotated[float, Field(gt=0, le=60)] = 2.0


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = DEFAULT_PORT
    workers: Annotated[int, Field(ge=1, le=256)] = 1
    master_key: SecretStr | None = None
    #: largest accepted request body; larger ones get 413
    max_body_bytes: Annotated[int, Field(ge=1024)] = 10 * 1024 * 1024
    #: deepest nesting of JSON objects and arrays in a request body; deeper ones get 400
    max_json_depth: Annotated[int, Field(ge=2, le=1000)] = 64
    #: seconds a client has to send the request line and headers (then 408 and closed)
    header_timeout: Annotated[float, Field(gt=0, le=3600)] = 10.0
    #: largest request line plus headers (then 431 and closed)
    max_header_bytes: Annotated[int, Field(ge=1024, le=1024 * 1024)] = 64 * 1024
    #: seconds a client has to send the whole body once its headers are in (then 408)
    body_timeout: Annotated[float, Field(gt=0, le=3600)] = 60.0
    #: Host header values accepted ("*.example.com" covers subdomains; "*" any); None: when
    #: listening on loopback, localhost names only; elsewhere any (see docs/security.md)
    trusted_hosts: list[str] | None = None
    #: cross-origin requests from web pages (none allowed unless configured)
    cors: CorsConfig = Field(default_factory=CorsConfig)
    #: serve HTTPS with this certificate
    tls: TlsConfig = Field(default_factory=TlsConfig)
    #: HOST:PORT of a second listener that alone serves /admin/* (e.g. 127.0.0.1:8401)
    admin_listen: str | None = None
    #: write one row per request to the database (request_log), in batches off the hot path
    log_requests: bool = True
    #: where the generated master key and the SQLite database live (default ~/.turnout)
    data_dir: str | None = None

    @field_validator("trusted_hosts")
    @classmethod
    def _hosts(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError(
                "an empty list refuses every request; list host names, write ['*'] for any "
                "host, or remove the key for the default"
            )
        hosts = [host.lower() for host in value]
        for host in hosts:
            if not _HOST_PATTERN.match(host):
                raise ValueError(
                    f"{host!r} is not a host name; write e.g. api.example.com, "
                    "*.example.com, 10.0.0.5 or * (no scheme, no port)"
                )
        return hosts

    @field_validator("admin_listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is not None:
            parse_listen(value)
        return value

    @model_validator(mode="after")
    def _admin_port_differs(self) -> ServerConfig:
        if self.admin_listen and parse_listen(self.admin_listen)[1] == self.port:
            raise ValueError(
                "admin_listen: its port is server.port; give the admin listener a port of its own"
            )
        return self


class Config(_Strict):
    server: ServerConfig = Field(default_factory=ServerConfig)
    backends: dict[str, BackendConfig] = Field(default_factory=dict)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    local: LocalConfig = Field(default_factory=LocalConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    keys: KeysConfig = Field(default_factory=KeysConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    router: RouterConfig = Field(default_factory=RouterConfig)
    #: token prices by upstream model (or BACKEND/MODEL), over the built-in list prices
    prices: dict[str, PriceConfig] = Field(default_factory=dict)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    #: the model used by /api/v1/predict and turnout.predict() when none is named
    default_model: str | None = None
    #: also register a backend per provider key found in the environment
    env_backends: bool = False
    #: the file this was read from (None: built-in defaults)
    source: str | None = None

    @property
    def demo_enabled(self) -> bool:
        return self.local.demo if self.local.demo is not None else self.source is None

    @property
    def local_names(self) -> set[str]:
        """Names of the local models (the demo included when enabled)."""
        names = set(self.local.models)
        if self.demo_enabled:
            names.add(DEMO_NAME)
            if llama_cpp_available():
                names.add(DEMO_GGUF_NAME)
        return names

    @model_validator(mode="after")
    def _references(self) -> Config:
        if LOCAL_BACKEND in self.backends and self.local_names:
            raise ValueError(
                f"backends.{LOCAL_BACKEND}: the name is reserved for in-process models when "
                "local models are configured; rename the backend"
            )
        for name, model in self.models.items():
            for i, dep in enumerate(model.deployments):
                if dep.backend == LOCAL_BACKEND and LOCAL_BACKEND not in self.backends:
                    if dep.model not in self.local_names:
                        raise ValueError(
                            f"models.{name}.deployments[{i}].model: no local model named "
                            f"{dep.model!r}; define it under local.models"
                        )
                    continue
                if dep.backend not in self.backends:
                    raise ValueError(
                        f"models.{name}.deployments[{i}].backend: no backend named "
                        f"{dep.backend!r}; define it under backends: or use one of "
                        f"{sorted(self.backends) or '(none defined)'}"
                    )
        for name, model in self.models.items():
            for i, other in enumerate(model.fallbacks):
                if other == name or (other not in self.models and other not in self.local_names):
                    raise ValueError(
                        f"models.{name}.fallbacks[{i}]: {other!r} is not another public model; "
                        f"use one of {sorted(set(self.models) - {name}) or '(none defined)'}"
                    )
        if self.default_model is not None and not self._default_reachable():
            raise ValueError(
                f"default_model: {self.default_model!r} is not a model; use one of "
                f"{sorted(self.models) or '(none defined)'} or BACKEND/MODEL with a backend "
                "that allows passthrough"
            )
        return self

    def _default_reachable(self) -> bool:
        name = self.default_model or ""
        if name in self.local_names:
            return True
        prefix, _, model = name.partition("/")
        backend = self.backends.get(prefix)
        return name in self.models or bool(model and backend and backend.passthrough)

    @property
    def data_path(self) -> Path:
        raw = self.server.data_dir or os.environ.get("TURNOUT_HOME") or "~/.turnout"
        return Path(raw).expanduser()


def find_config_file(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The configuration file to read, or None for built-in defaults."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(
                f"{path}: no such configuration file; check the path given to --config"
            )
        return path
    env = os.environ.get("TURNOUT_CONFIG")
    if env:
        path = Path(env)
        if not path.is_file():
            raise ConfigError(f"{path}: no such file (from TURNOUT_CONFIG); fix or unset it")
        return path
    local = Path(DEFAULT_CONFIG_NAME)
    return local if local.is_file() else None


def load_config(
    path: str | os.PathLike[str] | None = None, *, env: dict[str, str] | None = None
) -> Config:
    """Read, resolve and validate the configuration. Raises ConfigError."""
    environ = dict(os.environ) if env is None else env
    file = find_config_file(path)
    where = str(file) if file else "built-in defaults"
    raw: dict[str, Any] = {}
    if file is not None:
        raw = _read_yaml(file)
    raw = _resolve_env_refs(raw, environ, where)
    if file is None or raw.get("env_backends"):
        _add_env_backends(raw, environ)
    master = environ.get("TURNOUT_MASTER_KEY")
    if master:
        raw.setdefault("server", {})
        if isinstance(raw["server"], dict):
            raw["server"]["master_key"] = master
    redis_url = environ.get("TURNOUT_REDIS_URL")
    if redis_url and isinstance(raw.setdefault("limits", {}), dict):
        raw["limits"]["redis_url"] = redis_url
    database_url = environ.get("TURNOUT_DATABASE_URL")
    if database_url and isinstance(raw.setdefault("database", {}), dict):
        raw["database"]["url"] = database_url
    raw["source"] = str(file) if file else None
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, where, raw)) from None


def _read_yaml(file: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        # never str(exc): PyYAML quotes the offending line, which may hold a secret
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError(f"{file}{at}: not valid YAML: {problem}; fix the syntax") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: the top level must be a mapping (server:, backends:, ...)")
    return data


def _resolve_env_refs(node: Any, environ: dict[str, str], where: str, path: str = "") -> Any:
    """Replace every ``env:NAME`` string by the variable's value."""
    if isinstance(node, dict):
        return {
            k: _resolve_env_refs(v, environ, where, f"{path}.{k}" if path else str(k))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_resolve_env_refs(v, environ, where, f"{path}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, str) and node.startswith("env:"):
        name = node[4:]
        if name not in environ:
            raise ConfigError(
                f"{where}: {path}: environment variable {name} is not set; "
                f"export {name}=... or write the value in the file"
            )
        return environ[name]
    return node


def _add_env_backends(raw: dict[str, Any], environ: dict[str, str]) -> None:
    backends = raw.setdefault("backends", {})
    if not isinstance(backends, dict):
        return
    for preset in PRESETS.values():
        key = environ.get(preset.key_env) if preset.key_env else None
        if not key or preset.name in backends:
            continue
        spec: dict[str, Any] = {"preset": preset.name, "api_key": key}
        base = environ.get(preset.base_url_env) if preset.base_url_env else None
        if base:
            if not base.startswith(("http://", "https://")):
                raise ConfigError(
                    f"{preset.base_url_env}={base!r} is not an http(s) URL; "
                    f"write e.g. export {preset.base_url_env}=https://host/v1 or unset it"
                )
            spec["base_url"] = base
        elif preset.base_url is None:
            continue  # e.g. Azure without an endpoint: nothing to call
        if preset.name == "azure" and environ.get("OPENAI_API_VERSION"):
            spec["api_version"] = environ["OPENAI_API_VERSION"]
        backends[preset.name] = spec
    if "gemini" not in backends and environ.get("GOOGLE_API_KEY"):
        backends["gemini"] = {"preset": "gemini", "api_key": environ["GOOGLE_API_KEY"]}


def _format_errors(exc: ValidationError, where: str, raw: dict[str, Any]) -> str:
    lines = [f"{where}: invalid configuration:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown key{_suggest(err['loc'], raw)}; remove it or fix the spelling"
        elif err["type"] == "missing":
            msg = "required; add it"
        elif not (set(map(str, err["loc"])) & SECRET_FIELDS):
            shown = err.get("input")
            if isinstance(shown, str | int | float | bool) and len(repr(shown)) < 60:
                msg = f"{msg} (got {shown!r})"
        lines.append(f"  {loc or '(top level)'}: {msg}")
    return "\n".join(lines)


def _suggest(loc: tuple[int | str, ...], raw: dict[str, Any]) -> str:
    fields = _fields_at(loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), fields, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _fields_at(loc: tuple[int | str, ...]) -> list[str]:
    """The field names of the model found at ``loc``, walking dict keys and list indexes."""
    ann: Any = Config
    for part in loc:
        origin = get_origin(ann)
        if origin in (dict, list):
            ann = get_args(ann)[-1]  # the part is a key or an index: step into the value
            continue
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        field = ann.model_fields.get(str(part))
        if field is None:
            return []
        ann = _unwrap(field.annotation)
    return list(ann.model_fields) if isinstance(ann, type) and issubclass(ann, BaseModel) else []


def _unwrap(ann: Any) -> Any:
    """``X | None`` and ``Annotated[X, ...]`` to ``X``."""
    while True:
        if get_origin(ann) is Annotated:
            ann = get_args(ann)[0]
            continue
        args = [a for a in get_args(ann) if a is not type(None)]
        if get_origin(ann) in (Union, UnionType) and len(args) == 1:
            ann = args[0]
            continue
        return ann
