"""Test doubles that run as real servers (no mocks of internals)."""

from .upstream import (
    EndlessStream,
    ErrorStatus,
    FakeUpstream,
    Fault,
    Hang,
    Html,
    RecordedRequest,
    ResetMidStream,
    SlowFirstByte,
    fake_embedding,
    rate_limited,
    reply_tokens,
)

__all__ = [
    "EndlessStream",
    "ErrorStatus",
    "FakeUpstream",
    "Fault",
    "Hang",
    "Html",
    "RecordedRequest",
    "ResetMidStream",
    "SlowFirstByte",
    "fake_embedding",
    "rate_limited",
    "reply_tokens",
]
