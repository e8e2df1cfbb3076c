"""One retry policy for every HTTP client of the package (chat completions, the Fireworks evaluator
API): which answers are worth another attempt, how long to wait before it, and when to stop.

Retried are the statuses the openai SDK retries (408, 409, 429, every 5xx), timeouts and dropped
connections. The server's Retry-After is waited exactly, even beyond the backoff cap, since retrying
sooner only earns another 429; when it asks for longer than what is left of the retry deadline the call
fails at once, saying so, instead of after a wait that ends in failure anyway. Otherwise: exponential
backoff with full jitter, never waiting past the deadline.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

RETRY_STATUSES = frozenset({408, 409, 429})  # and every 5xx


def retryable_status(status: int, definite: Collection[int] = ()) -> bool:
    """Whether an answer with `status` may pass if tried again. `definite` are statuses an API uses
    for a final verdict instead (the evaluator API's 409 says "already exists", not "conflict, retry")."""
    return status not in definite and (status >= 500 or status in RETRY_STATUSES)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked to wait: `retry-after-ms` (OpenAI's), `Retry-After` in seconds or
    as an HTTP date; None when it did not say (or said something unreadable)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        if "retry-after-ms" in lowered:
            return max(0.0, float(lowered["retry-after-ms"]) / 1000)
        value = lowered.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


def _asked_wait(state: RetryCallState) -> float | None:
    """The Retry-After carried by the attempt's error (a `retry_after` attribute), if any."""
    error = state.outcome.exception() if state.outcome else None
    asked = getattr(error, "retry_after", None)
    return float(asked) if isinstance(asked, (int, float)) else None


@dataclass(frozen=True)
class RetryPolicy:
    """At most `max_attempts` attempts, none started after `max_retry_time` seconds (the deadline);
    backoff windows of 0.5 s doubling up to `max_backoff`."""

    max_attempts: int = 5
    max_retry_time: float = 120.0
    max_backoff: float = 30.0

    def retrying(self, retryable: type[BaseException] | tuple[type[BaseException], ...]) -> AsyncRetrying:
        """A fresh tenacity controller for one call (it keeps that call's attempt count and start
        time), retrying errors of type `retryable`; the last error is re-raised."""
        backoff = wait_random_exponential(multiplier=0.5, max=self.max_backoff)
        budget = stop_after_attempt(self.max_attempts) | stop_after_delay(self.max_retry_time)

        def left(state: RetryCallState) -> float:
            return self.max_retry_time - (state.seconds_since_start or 0.0)

        def stop(state: RetryCallState) -> bool:
            asked = _asked_wait(state)
            return bool(budget(state)) or (asked is not None and asked > left(state))

        def wait(state: RetryCallState) -> float:
            asked = _asked_wait(state)
            if asked is not None:
                return asked  # `stop` made sure it fits what is left
            return max(0.0, min(float(backoff(state)), left(state)))

        return AsyncRetrying(retry=retry_if_exception_type(retryable), stop=stop, wait=wait, reraise=True)

    def why_stopped(self, error: BaseException, statistics: dict[str, Any]) -> str:
        """Why retrying `error` stopped, for its message: how long the server asked to wait when that
        is more than the deadline had left, else how many attempts were made in how long."""
        attempts = int(statistics.get("attempt_number", 1))
        elapsed = float(statistics.get("delay_since_first_attempt", 0.0))
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        asked = getattr(error, "retry_after", None)
        if isinstance(asked, (int, float)) and elapsed + asked > self.max_retry_time:
            return (
                f"the server asked to wait {asked:g} s (Retry-After), longer than the "
                f"{max(self.max_retry_time - elapsed, 0.0):.1f} s left of the {self.max_retry_time:g} s retry "
                f"budget: stopped after {tries}"
            )
        return f"gave up after {tries} in {elapsed:.1f} s"
