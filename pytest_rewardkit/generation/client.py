"""An OpenAI-compatible chat-completions client (Fireworks by default), async, with typed errors,
explicit timeouts and bounded retries."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from pytest_rewardkit.errors import GenerationError
from pytest_rewardkit.recording import Interaction
from pytest_rewardkit.retry import RetryPolicy, retry_after, retryable_status

if TYPE_CHECKING:
    # Imported when a request is made: replay-only runs never pay for the HTTP stack.
    import aiohttp

FIREWORKS_BASE_URL = "https://api.fireworks.ai/inference/v1"
_IDS = re.compile(r"[0-9a-fA-F-]{16,}")
BODY_EXCERPT = 200


def failure_signature(error: GenerationError) -> str:
    """What makes two failures the same failure (rows failing alike in a row stop a recording
    early): the error's type and message, without retry statistics, and with long hex or digit runs
    (request ids and the like, which differ between identical failures) blanked."""
    message = error.base_message if isinstance(error, RetryableError) else str(error)
    return f"{type(error).__name__}: {_IDS.sub('#', message)}"


class AuthenticationError(GenerationError):
    """401/403: no request can succeed, so the session stops once."""


class RetryableError(GenerationError):
    """A failure that may pass if tried again later; `retry_after` is how long the server asked
    to wait (its Retry-After header), if it said."""

    def __init__(self, message: str, retry_after: float | None = None, *, base_message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.base_message = base_message or message  # without why retrying stopped


class RateLimitError(RetryableError):
    """429: retried, after the server's Retry-After when it gives one."""


class ServerError(RetryableError):
    """5xx, and 408 (request timeout) and 409 (conflict), which the openai SDK retries too: retried."""


class RequestRejected(GenerationError):
    """Another 4xx: the request itself is wrong; retrying cannot help."""


class BadResponse(GenerationError):
    """A 2xx whose body is not the chat-completions JSON we expect."""


class GenerationTimeout(RetryableError):
    """No response within the connect or read timeout: retried."""


class ConnectionFailed(RetryableError):
    """The connection could not be made or was dropped: retried."""


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

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(self.max_attempts, self.max_retry_time, self.max_backoff)


def _excerpt(raw: bytes) -> str:
    text = raw[:BODY_EXCERPT].decode("utf-8", "replace")
    return repr(text) + (" …" if len(raw) > BODY_EXCERPT else "")


def error_message(raw: bytes) -> str:
    """The server's error message from an error body: OpenAI's {"error": {"message"}} or a
    gateway's {"message"}; else an excerpt of the body. Shared by every client of this package."""
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if data.get("message"):
            return str(data["message"])
        if error:
            return str(error)
    return _excerpt(raw)


class ChatClient:
    def __init__(self, settings: ClientSettings, session: aiohttp.ClientSession) -> None:
        self.settings = settings
        self.session = session

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.settings.api_key:
            headers["Authorization"] = f"Bearer {self.settings.api_key.get_secret_value()}"
        return headers

    async def create(self, body: dict[str, Any]) -> Interaction:
        """POST the body to chat/completions, retrying what can be retried. The result is the
        exchange as sent and received: scrub it before it is written anywhere."""
        retrying = self.settings.retry.retrying(RetryableError)
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._once(body)
        except RetryableError as exc:
            why = self.settings.retry.why_stopped(exc, retrying.statistics)
            raise type(exc)(f"{exc} ({why})", exc.retry_after, base_message=str(exc)) from exc
        raise AssertionError("unreachable: tenacity reraises the last error")

    async def _once(self, body: dict[str, Any]) -> Interaction:
        import aiohttp

        url = self.settings.url
        headers = self.headers()
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.settings.connect_timeout, sock_read=self.settings.read_timeout
        )
        started = time.perf_counter()
        try:
            async with self.session.post(url, json=body, headers=headers, timeout=timeout) as response:
                raw = await response.read()
                latency = time.perf_counter() - started
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
                f"{url} answered {status} ({error_message(raw)}): set {self.settings.api_key_env} to a valid "
                "API key for this endpoint"
            )
        if status == 429:
            raise RateLimitError(
                f"{url} answered 429 (rate limited): {error_message(raw)}", retry_after(response_headers)
            )
        if retryable_status(status):
            raise ServerError(f"{url} answered {status}: {error_message(raw)}", retry_after(response_headers))
        if status >= 300:
            raise RequestRejected(f"{url} answered {status}: {error_message(raw)}")
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
        return Interaction("POST", url, headers, body, status, response_headers, parsed, round(latency, 3))
