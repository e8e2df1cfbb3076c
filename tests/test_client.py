"""ChatClient against the local fake endpoint: typed errors, what is retried and how, timeouts, bad bodies."""

from __future__ import annotations

import asyncio
import email.utils
import random
import socket
import time
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from pytest_rewardkit.generation import (
    AuthenticationError,
    BadResponse,
    ChatClient,
    ClientSettings,
    ConnectionFailed,
    GenerationTimeout,
    RateLimitError,
    RequestRejected,
    ServerError,
)
from pytest_rewardkit.recording import Interaction
from pytest_rewardkit.retry import retry_after
from pytest_rewardkit.testing import FakeChatServer, Fault

BODY = {"model": "fake-model", "messages": [{"role": "user", "content": "2+2?"}], "temperature": 0.5}
FAST = ClientSettings(read_timeout=5.0, connect_timeout=2.0, max_attempts=4, max_retry_time=20.0)


@pytest.fixture
def no_jitter(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Backoff windows the client draws its waits from; the waits themselves become 0 so tests stay fast."""
    windows: list[float] = []

    def uniform(low: float, high: float) -> float:
        windows.append(high)
        return low

    monkeypatch.setattr(random, "uniform", uniform)
    return windows


async def create(server: FakeChatServer, **overrides: Any) -> Interaction:
    async with server as base_url, aiohttp.ClientSession() as session:
        return await ChatClient(replace(FAST, base_url=base_url, **overrides), session).create(BODY)


@pytest.mark.asyncio
async def test_success_returns_the_exchange_with_the_key_sent() -> None:
    server = FakeChatServer(table={"2+2?": ["4"]}, api_key="sk-right-key")
    exchange = await create(server, api_key=SecretStr("sk-right-key"))
    assert exchange.status == 200
    assert exchange.request_body == BODY
    assert exchange.uri.endswith("/v1/chat/completions")
    assert exchange.response_body["choices"][0]["message"] == {"role": "assistant", "content": "4"}
    assert exchange.request_headers["Authorization"] == "Bearer sk-right-key"
    [received] = server.requests
    assert received.json == BODY and received.headers["Authorization"] == "Bearer sk-right-key"


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [401, 403])
async def test_auth_failure_is_typed_names_the_variable_and_is_not_retried(status: int) -> None:
    server = FakeChatServer()
    server.script(Fault.status(status))
    with pytest.raises(AuthenticationError, match=rf"answered {status} .*set MY_PROVIDER_KEY to a valid API key"):
        await create(server, api_key_env="MY_PROVIDER_KEY")
    assert len(server.requests) == 1


@pytest.mark.asyncio
async def test_wrong_key_against_a_key_checking_server() -> None:
    server = FakeChatServer(api_key="sk-right-key")
    with pytest.raises(AuthenticationError, match=r"Incorrect API key.*set FIREWORKS_API_KEY"):
        await create(server, api_key=SecretStr("sk-wrong-key"))
    assert len(server.requests) == 1


@pytest.mark.asyncio
async def test_429_waits_as_long_as_retry_after_says() -> None:
    server = FakeChatServer(table={"2+2?": ["4"]})
    server.script(Fault.status(429, retry_after=0.6))
    started = time.perf_counter()
    exchange = await create(server)
    waited = time.perf_counter() - started
    assert exchange.response_body["choices"][0]["message"]["content"] == "4"
    assert len(server.requests) == 2
    # Backoff alone would wait at most 0.5 s here (first window); only Retry-After explains >= 0.6 s.
    assert 0.6 <= waited < 2.0


@pytest.mark.asyncio
async def test_retry_after_is_honoured_even_beyond_the_backoff_cap() -> None:
    server = FakeChatServer(table={"2+2?": ["4"]})
    server.script(Fault.status(429, retry_after=0.5))
    started = time.perf_counter()
    await create(server, max_backoff=0.05)
    assert time.perf_counter() - started >= 0.5
    assert len(server.requests) == 2


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [429, 503])
async def test_a_retry_after_longer_than_the_retry_budget_fails_fast_saying_how_long(status: int) -> None:
    server = FakeChatServer()
    server.script(Fault.status(status, retry_after=300))
    started = time.perf_counter()
    with pytest.raises(RateLimitError if status == 429 else ServerError) as info:
        await create(server, max_retry_time=20.0)
    assert time.perf_counter() - started < 2.0
    assert len(server.requests) == 1
    assert str(info.value).endswith(
        "(the server asked to wait 300 s (Retry-After), longer than the 20.0 s left of the 20 s retry budget: "
        "stopped after 1 attempt)"
    )
    assert info.value.retry_after == 300


@pytest.mark.asyncio
async def test_the_budget_left_counts_the_time_already_spent_retrying() -> None:
    server = FakeChatServer()
    server.script(*[Fault.status(429, retry_after=0.4)] * 3)
    # Waits 0.4 s twice; the third answer asks for 0.4 s more when about 0.2 s of the 1 s are left.
    with pytest.raises(
        RateLimitError, match=r"longer than the 0\.[12] s left of the 1 s retry budget: stopped after 3 "
    ):
        await create(server, max_retry_time=1.0, max_attempts=10)
    assert len(server.requests) == 3


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),
        ({"Retry-After": "-3"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_is_read_in_seconds_milliseconds(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after(headers) == seconds


def test_retry_after_as_an_http_date() -> None:
    later = email.utils.formatdate(time.time() + 60, usegmt=True)
    waited = retry_after({"Retry-After": later})
    assert waited is not None and 55 <= waited <= 61


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [408, 409])
async def test_408_and_409_are_retried(no_jitter: list[float], status: int) -> None:
    server = FakeChatServer(table={"2+2?": ["4"]})
    server.script(Fault.status(status), Fault.status(status))
    exchange = await create(server)
    assert exchange.response_body["choices"][0]["message"]["content"] == "4"
    assert len(server.requests) == 3


@pytest.mark.asyncio
async def test_exhausted_retries_say_how_many_attempts_were_made(no_jitter: list[float]) -> None:
    server = FakeChatServer()
    server.script(*[Fault.status(408)] * 5)
    with pytest.raises(ServerError, match=r"answered 408: Scripted fault: HTTP 408. \(gave up after 3 attempts in "):
        await create(server, max_attempts=3)


@pytest.mark.asyncio
async def test_concurrent_calls_keep_their_own_attempt_count(no_jitter: list[float]) -> None:
    server = FakeChatServer(table={"2+2?": ["4"]})
    # Three failures in all, spread over four concurrent calls of at most 2 attempts each: with a shared
    # attempt counter some call would be refused its second attempt.
    server.script(Fault.status(500), Fault.status(500), Fault.status(500))
    async with server as base_url, aiohttp.ClientSession() as session:
        client = ChatClient(replace(FAST, base_url=base_url, max_attempts=2), session)
        answers = await asyncio.gather(*(client.create(BODY) for _ in range(4)))
    assert len(answers) == 4 and len(server.requests) == 7


@pytest.mark.asyncio
async def test_5xx_and_disconnects_are_retried_with_exponential_jittered_backoff(no_jitter: list[float]) -> None:
    server = FakeChatServer(table={"2+2?": ["4"]})
    server.script(Fault.status(500), Fault.disconnect(), Fault.status(503))
    exchange = await create(server)
    assert exchange.response_body["choices"][0]["message"]["content"] == "4"
    assert len(server.requests) == 4
    # Full jitter: each wait is drawn from [0, window], and the window doubles per attempt.
    assert no_jitter == [0.5, 1.0, 2.0]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("fault", "error", "message"),
    [
        (Fault.status(502), ServerError, r"answered 502: Scripted fault: HTTP 502"),
        (Fault.status(429), RateLimitError, r"answered 429 \(rate limited\)"),
        (Fault.disconnect(), ConnectionFailed, r"ServerDisconnectedError"),
    ],
)
async def test_retries_are_bounded_then_the_typed_error(
    no_jitter: list[float], fault: Fault, error: type[Exception], message: str
) -> None:
    server = FakeChatServer()
    server.script(*[fault] * 10)
    with pytest.raises(error, match=message):
        await create(server, max_attempts=3)
    assert len(server.requests) == 3


@pytest.mark.asyncio
async def test_retry_time_is_bounded_too() -> None:
    server = FakeChatServer()
    server.script(*[Fault.status(429, retry_after=0.3)] * 20)
    started = time.perf_counter()
    with pytest.raises(RateLimitError):
        await create(server, max_attempts=20, max_retry_time=0.5)
    assert time.perf_counter() - started < 2.0
    assert 2 <= len(server.requests) <= 4


@pytest.mark.asyncio
@pytest.mark.usefixtures("no_jitter")
async def test_a_refused_connection_is_a_connection_failure() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = replace(FAST, base_url=f"http://127.0.0.1:{port}/v1", max_attempts=2)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ConnectionFailed, match=rf"127.0.0.1:{port}/v1/chat/completions: ClientConnector"):
            await ChatClient(settings, session).create(BODY)


@pytest.mark.asyncio
async def test_a_slow_answer_is_a_timeout_naming_the_limit() -> None:
    server = FakeChatServer()
    server.script(Fault.timeout(3.0), Fault.timeout(3.0))
    started = time.perf_counter()
    with pytest.raises(GenerationTimeout, match=r"no response within 0.2s"):
        await create(server, read_timeout=0.2, max_attempts=2, max_backoff=0.01)
    assert time.perf_counter() - started < 2.0
    assert len(server.requests) == 2


@pytest.mark.asyncio
async def test_a_timeout_is_retried_and_can_then_succeed() -> None:
    server = FakeChatServer(table={"2+2?": ["4"]})
    server.script(Fault.timeout(3.0))
    exchange = await create(server, read_timeout=0.2, max_backoff=0.01)
    assert exchange.response_body["choices"][0]["message"]["content"] == "4"


@pytest.mark.asyncio
async def test_a_body_that_is_not_json_shows_its_start_and_is_not_retried() -> None:
    server = FakeChatServer()
    page = b"<html><body>502 Bad Gateway from the proxy</body></html>" + b"x" * 500
    server.script(Fault.garbage(page))
    with pytest.raises(BadResponse, match=r"not JSON: '<html><body>502 Bad Gateway from the proxy") as info:
        await create(server)
    assert str(info.value).endswith("…") and "x" * 300 not in str(info.value)
    assert len(server.requests) == 1


@pytest.mark.asyncio
async def test_json_without_choices_is_a_bad_response() -> None:
    server = FakeChatServer()
    server.script(Fault.bad_json_shape())
    with pytest.raises(BadResponse, match=r"not a chat completion \(no choices\[\]\.message\).*chatcmpl-fake-bad"):
        await create(server)
    assert len(server.requests) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [400, 404, 422])
async def test_other_4xx_are_rejected_without_retry(status: int) -> None:
    server = FakeChatServer()
    server.script(Fault.status(status, body={"error": {"message": "max_tokens is too large"}}))
    with pytest.raises(RequestRejected, match=rf"answered {status}: max_tokens is too large"):
        await create(server)
    assert len(server.requests) == 1


@pytest.mark.asyncio
async def test_an_error_body_that_is_not_json_is_shown_as_text() -> None:
    server = FakeChatServer()
    server.script(Fault.status(400, body="plain text problem"))
    with pytest.raises(RequestRejected, match=r"answered 400: 'plain text problem'"):
        await create(server)
