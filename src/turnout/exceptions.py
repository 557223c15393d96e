"""The one error hierarchy of turnout.

Every layer raises only these errors; foreign exceptions (HTTP client, pydantic, OS errors) are
converted at the boundary where they occur and re-raised ``from`` the original. Each front door
renders them in its own wire format in exactly one place (``turnout.server.errors``).

::

    TurnoutError                      500 api_error / internal_error
    ├── ConfigError                       invalid configuration (never reaches a client)
    ├── LimiterUnavailable            503 rate_limiter_unavailable (Redis down, fail closed)
    ├── StorageUnavailable            503 storage_unavailable (database unreachable or unmigrated)
    ├── ClientError                   4xx: the caller can fix it
    │   ├── InvalidRequest            400 invalid_request_error (param names the field)
    │   ├── AuthenticationFailed      401 invalid_api_key
    │   ├── BudgetExceeded            402 budget_exceeded (the API key spent its budget)
    │   ├── PermissionDenied          403 permission_denied
    │   ├── ModelNotFound             404 model_not_found
    │   ├── NotFound                  404 not_found (an API key, or another admin object)
    │   ├── UnknownURL                404 unknown_url
    │   ├── MethodNotAllowed          405 method_not_allowed
    │   ├── RequestTimeout            408 request_timeout (headers or body came too slowly)
    │   ├── RequestTooLarge           413 request_too_large
    │   │   └── HeadersTooLarge       431 headers_too_large (server.max_header_bytes)
    │   ├── SensitiveDataBlocked      400 sensitive_data_blocked (privacy policy block)
    │   └── RateLimited               429 rate_limit_exceeded (retry_after)
    └── BackendError                  a backend or upstream failed; .retryable drives fallback
        ├── UpstreamError             502 upstream_error (5xx, unexpected status)
        ├── UpstreamInvalidResponse   502 upstream_invalid_response (not the promised format)
        ├── UpstreamAuthError         502 upstream_auth_error (gateway's own credentials refused)
        ├── UpstreamUnavailable       503 upstream_unavailable (refused, reset, 503)
        │   └── NoLocalDeployment     503 no_local_deployment (privacy: local, none up)
        ├── UpstreamTimeout           504 upstream_timeout (deadline or read timeout)
        ├── UpstreamRateLimited       429 rate_limit_exceeded (upstream 429, retry_after)
        ├── UpstreamBadRequest        400 the upstream refused the request as invalid
        │   └── ContextLengthExceeded 400 context_length_exceeded
        ├── UpstreamNotFound          404 model_not_found (the upstream does not know the model)
        └── NotSupported              400 the backend lacks a capability (e.g. embeddings)
"""

from __future__ import annotations

__all__ = [
    "AuthenticationFailed",
    "BackendError",
    "BudgetExceeded",
    "ClientError",
    "ConfigError",
    "ContextLengthExceeded",
    "HeadersTooLarge",
    "InvalidRequest",
    "LimiterUnavailable",
    "MethodNotAllowed",
    "ModelNotFound",
    "NoLocalDeployment",
    "NotFound",
    "NotSupported",
    "PermissionDenied",
    "RateLimited",
    "RequestTimeout",
    "RequestTooLarge",
    "SensitiveDataBlocked",
    "StorageUnavailable",
    "TurnoutError",
    "UnknownURL",
    "UpstreamAuthError",
    "UpstreamBadRequest",
    "UpstreamError",
    "UpstreamInvalidResponse",
    "UpstreamNotFound",
    "UpstreamRateLimited",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]


class TurnoutError(Exception):
    """Base of every error turnout raises on purpose."""

    status: int = 500
    type: str = "api_error"
    code: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.retry_after = retry_after


class ConfigError(TurnoutError):
    """The configuration is invalid; the message names the file, the key and the fix."""

    code = "config_error"


class LimiterUnavailable(TurnoutError):
    """The shared rate-limit store (Redis) cannot be reached and the gateway is set to refuse
    requests then (``limits.on_redis_error: closed``)."""

    status = 503
    code = "rate_limiter_unavailable"


class StorageUnavailable(TurnoutError):
    """The database cannot be reached, or its schema cannot be brought up to date; the
    message names the database (password masked) and what to check."""

    status = 503
    code = "storage_unavailable"


class ClientError(TurnoutError):
    """The request is wrong in a way the caller can fix."""

    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class InvalidRequest(ClientError):
    code = "invalid_parameter"


class AuthenticationFailed(ClientError):
    status = 401
    code = "invalid_api_key"


class BudgetExceeded(ClientError):
    """The API key has spent its budget (``budget``, US dollars); refused before any backend
    is called. 402 rather than 429: waiting does not help, an admin must raise the budget."""

    status = 402
    type = "insufficient_quota"
    code = "budget_exceeded"


class PermissionDenied(ClientError):
    status = 403
    type = "permission_error"
    code = "permission_denied"


class ModelNotFound(ClientError):
    status = 404
    code = "model_not_found"

    def __init__(self, message: str, **kwargs: object) -> None:
        kwargs.setdefault("param", "model")
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class NotFound(ClientError):
    """An API key (or another admin object) that does not exist, or that the calling key may
    not see: a developer key finds only its own records (404, never 403, so nothing leaks)."""

    status = 404
    code = "not_found"


class UnknownURL(ClientError):
    status = 404
    code = "unknown_url"


class MethodNotAllowed(ClientError):
    status = 405
    code = "method_not_allowed"


class RequestTimeout(ClientError):
    """The request's headers or body did not arrive in time (``server.header_timeout``,
    ``server.body_timeout``)."""

    status = 408
    code = "request_timeout"


class RequestTooLarge(ClientError):
    status = 413
    code = "request_too_large"


class HeadersTooLarge(RequestTooLarge):
    """The request line and headers are over ``server.max_header_bytes``."""

    status = 431
    code = "headers_too_large"


class SensitiveDataBlocked(ClientError):
    """The prompt carries sensitive data and the model's privacy policy is ``block``."""

    code = "sensitive_data_blocked"


class RateLimited(ClientError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class BackendError(TurnoutError):
    """A backend failed. ``retryable`` tells the router whether another try may succeed."""

    status = 502
    type = "api_error"
    code = "upstream_error"
    retryable = True

    def __init__(self, message: str, *, backend: str | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.backend = backend


class UpstreamError(BackendError):
    pass


class UpstreamInvalidResponse(BackendError):
    code = "upstream_invalid_response"


class UpstreamAuthError(BackendError):
    code = "upstream_auth_error"
    retryable = False


class UpstreamUnavailable(BackendError):
    status = 503
    code = "upstream_unavailable"


class NoLocalDeployment(UpstreamUnavailable):
    """Sensitive data under privacy policy ``local``, and no local deployment is up: the
    request is refused rather than sent to a hosted API."""

    code = "no_local_deployment"
    retryable = False


class UpstreamTimeout(BackendError):
    status = 504
    code = "upstream_timeout"


class UpstreamRateLimited(BackendError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class UpstreamBadRequest(BackendError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"
    retryable = False


class ContextLengthExceeded(UpstreamBadRequest):
    code = "context_length_exceeded"


class UpstreamNotFound(BackendError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"
    retryable = False


class NotSupported(BackendError):
    status = 400
    type = "invalid_request_error"
    code = "not_supported"
    retryable = False
