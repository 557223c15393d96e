"""What the middleware shares: a header lookup, and answering with an error itself."""

from __future__ import annotations

from turnout.exceptions import TurnoutError
from turnout.server.errors import error_headers, openai_error
from turnout.server.http import Scope, Send, new_request_id

__all__ = ["header", "reject"]


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first request header called ``name`` (lower case), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def reject(
    send: Send, exc: TurnoutError, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Answer the request with ``exc`` as an OpenAI error object, like the gateway would."""
    body = openai_error(exc)
    await send(
        {
            "type": "http.response.start",
            "status": exc.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", new_request_id().encode()),
                *error_headers(exc),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
