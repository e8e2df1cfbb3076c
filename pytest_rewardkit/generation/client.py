"""An OpenAI-compatible chat-completions client (Fireworks by default), async, with typed errors,
explicit timeouts and bounded retries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp
from pydantic import SecretStr
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from pytest_rewardkit.recording import Interaction

FIREWORKS_BASE_URL = "https://api.fireworks.ai/inference/v1"
BODY_EXCERPT = 200


class GenerationError(Exception):
    """A model call failed; the row is an error item, never a reward of 0."""


class AuthenticationError(GenerationError):
    """401/403: no request can succeed, so the session stops once."""


class RateLimitError(GenerationError):
    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServerError(GenerationError):
    """5xx: retried."""


class RequestRejected(GenerationError):
    """Another 4xx: the request itself is wrong; retrying cannot help."""


class BadResponse(GenerationError):
    """A 2xx whose body is not the chat-completions JSON we expect."""


class GenerationTimeout(GenerationError):
    """No response within the connect or read timeout: retried."""


class ConnectionFailed(GenerationError):
    """The connection could not be made or was dropped: retried."""


RETRYABLE = (RateLimitError, ServerError, GenerationTimeout, ConnectionFailed)


@dataclass(frozen=True)
class ClientSettings:
    base_url: str = FIREWORKS_BASE_URL
    api_key: SecretStr | None = None  # masked in repr; see pytest_rewardkit.auth
    api_key_env: str = "FIREWORKS_API_KEY"
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    max_attempts: int = 5
    max_retry_time: float = 120.0
    max_backoff: float = 30.0

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"


def _excerpt(raw: bytes) -> str:
    text = raw[:BODY_EXCERPT].decode("utf-8", "replace")
    return repr(text) + (" …" if len(raw) > BODY_EXCERPT else "")


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date; rare for these APIs, fall back to backoff


def _error_message(raw: bytes) -> str:
    try:
        error = json.loads(raw).get("error")
        if isinstance(error, dict):
            return str(error.get("message") or error)
        if error:
            return str(error)
    except (ValueError, AttributeError):
        pass
    return _excerpt(raw)


class ChatClient:
    def __init__(self, settings: ClientSettings, session: aiohttp.ClientSession) -> None:
        self.settings = settings
        self.session = session
        backoff = wait_random_exponential(multiplier=0.5, max=settings.max_backoff)

        def wait(state: RetryCallState) -> float:
            # Honour the server's Retry-After on 429; exponential backoff with jitter otherwise.
            error = state.outcome.exception() if state.outcome else None
            if isinstance(error, RateLimitError) and error.retry_after is not None:
                return min(error.retry_after, settings.max_backoff)
            return float(backoff(state))

        self._retrying = AsyncRetrying(
            retry=retry_if_exception_type(RETRYABLE),
            stop=stop_after_attempt(settings.max_attempts) | stop_after_delay(settings.max_retry_time),
            wait=wait,
            reraise=True,
        )

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.settings.api_key:
            headers["Authorization"] = f"Bearer {self.settings.api_key.get_secret_value()}"
        return headers

    async def create(self, body: dict[str, Any]) -> Interaction:
        """POST the body to chat/completions, retrying what can be retried. The result is the
        exchange as sent and received: scrub it before it is written anywhere."""
        async for attempt in self._retrying:
            with attempt:
                return await self._once(body)
        raise AssertionError("unreachable: tenacity reraises the last error")

    async def _once(self, body: dict[str, Any]) -> Interaction:
        url = self.settings.url
        headers = self.headers()
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.settings.connect_timeout, sock_read=self.settings.read_timeout
        )
        try:
            async with self.session.post(url, json=body, headers=headers, timeout=timeout) as response:
                raw = await response.read()
                status = response.status
                response_headers = {str(k): str(v) for k, v in response.headers.items()}
        except TimeoutError as exc:
            raise GenerationTimeout(
                f"{url}: no response within {self.settings.read_timeout:g}s "
                f"(connect timeout {self.settings.connect_timeout:g}s)"
            ) from exc
        except aiohttp.ClientError as exc:
            raise ConnectionFailed(f"{url}: {type(exc).__name__}: {exc}") from exc
        if status in (401, 403):
            raise AuthenticationError(
                f"{url} answered {status} ({_error_message(raw)}): set {self.settings.api_key_env} to a valid "
                "API key for this endpoint"
            )
        if status == 429:
            retry_after = _retry_after(response_headers.get("Retry-After"))
            raise RateLimitError(f"{url} answered 429 (rate limited): {_error_message(raw)}", retry_after)
        if status >= 500:
            raise ServerError(f"{url} answered {status}: {_error_message(raw)}")
        if status >= 300:
            raise RequestRejected(f"{url} answered {status}: {_error_message(raw)}")
        try:
            parsed = json.loads(raw)
        except ValueError:
            raise BadResponse(f"{url} answered {status} with a body that is not JSON: {_excerpt(raw)}") from None
        choices = parsed.get("choices") if isinstance(parsed, dict) else None
        if not isinstance(choices, list) or not all(
            isinstance(c, dict) and isinstance(c.get("message"), dict) for c in choices
        ):
            raise BadResponse(
                f"{url} answered {status} with JSON that is not a chat completion (no choices[].message): "
                f"{_excerpt(raw)}"
            )
        return Interaction("POST", url, headers, body, status, response_headers, parsed)
