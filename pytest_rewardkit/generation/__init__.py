"""Model responses for rows: an OpenAI-compatible client and cassette-backed generation."""

from __future__ import annotations

from pytest_rewardkit.generation.aliases import MODEL_ALIASES, resolve_model
from pytest_rewardkit.generation.client import (
    AuthenticationError,
    BadResponse,
    ChatClient,
    ClientSettings,
    ConnectionFailed,
    GenerationError,
    GenerationTimeout,
    RateLimitError,
    RequestRejected,
    RetryableError,
    ServerError,
)
from pytest_rewardkit.generation.runner import GenerationConfig, Generator, Progress, request_body

__all__ = [
    "MODEL_ALIASES",
    "AuthenticationError",
    "BadResponse",
    "ChatClient",
    "ClientSettings",
    "ConnectionFailed",
    "GenerationConfig",
    "GenerationError",
    "GenerationTimeout",
    "Generator",
    "Progress",
    "RateLimitError",
    "RequestRejected",
    "RetryableError",
    "ServerError",
    "request_body",
    "resolve_model",
]
