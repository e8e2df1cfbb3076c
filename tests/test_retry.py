"""One retry policy (pytest_rewardkit.retry) for the chat client and the Fireworks evaluator API client,
each tried against the local fake server (127.0.0.1): what is retried, Retry-After, the deadline, the bound."""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from pytest_rewardkit.auth import Credentials
from pytest_rewardkit.evaluators.api import (
    EvaluatorAPIError,
    EvaluatorClient,
    EvaluatorExists,
    EvaluatorServerError,
)
from pytest_rewardkit.generation.client import ChatClient, ClientSettings, GenerationError, RequestRejected
from pytest_rewardkit.retry import RETRY_STATUSES, RetryPolicy, retryable_status
from pytest_rewardkit.testing import FakeChatServer, Fault

KEY = "fw-retry-test-key-0123456789"
ACCOUNT = "acct"
EVALUATOR = "ev-1"
# Short enough to keep every test bounded in time: 4 attempts, and no retry starts after 5 s.
POLICY = RetryPolicy(max_attempts=4, max_retry_time=5.0, max_backoff=0.05)

Call = Callable[[FakeChatServer, RetryPolicy], Awaitable[Any]]


async def evaluator_get(server: FakeChatServer, policy: RetryPolicy) -> Any:
    """GET an evaluator the fake server holds, through the evaluator API client."""
    server.evaluators.evaluators[(ACCOUNT, EVALUATOR)] = {"name": f"accounts/{ACCOUNT}/evaluators/{EVALUATOR}"}
    async with server as base_url, aiohttp.ClientSession() as session:
        assert base_url.startswith("http://127.0.0.1:")
        credentials = Credentials(SecretStr(KEY), "the test")
        client = EvaluatorClient(session, credentials, ACCOUNT, api_base=base_url.removesuffix("/v1"), retry=policy)
        return await client.get(EVALUATOR, None)


async def chat(server: FakeChatServer, policy: RetryPolicy) -> Any:
    """POST a chat completion through the chat client, with the same policy."""
    async with server as base_url, aiohttp.ClientSession() as session:
        settings = ClientSettings(
            base_url=base_url,
            api_key=SecretStr(KEY),
            read_timeout=5.0,
            max_attempts=policy.max_attempts,
            max_retry_time=policy.max_retry_time,
            max_backoff=policy.max_backoff,
        )
        assert settings.retry == policy
        return await ChatClient(settings, session).create(
            {"model": "m", "messages": [{"role": "user", "content": "x"}]}
        )


CLIENTS = pytest.mark.parametrize("call", [evaluator_get, chat], ids=["evaluator-api", "chat"])


def fake() -> FakeChatServer:
    return FakeChatServer(table={"x": ["y"]}, api_key=KEY)


def test_which_statuses_are_retried() -> None:
    assert {408, 409, 429} == RETRY_STATUSES
    assert [s for s in (400, 401, 403, 404, 408, 409, 422, 429, 500, 502, 503, 504) if retryable_status(s)] == [
        408,
        409,
        429,
        500,
        502,
        503,
        504,
    ]
    assert not retryable_status(409, definite={409}) and retryable_status(503, definite={409})


@pytest.mark.asyncio
@CLIENTS
async def test_429_waits_exactly_the_retry_after_then_succeeds(call: Call) -> None:
    server = fake()
    server.script(Fault.status(429, retry_after=0.6))
    started = time.perf_counter()
    await call(server, POLICY)
    # Backoff alone would wait at most 0.05 s here: only Retry-After explains >= 0.6 s.
    assert 0.6 <= time.perf_counter() - started < 3.0
    assert len(server.requests) == 2


@pytest.mark.asyncio
@CLIENTS
async def test_408_and_503_are_retried_then_succeed(call: Call) -> None:
    server = fake()
    server.script(Fault.status(408), Fault.status(503), Fault.status(502))
    await call(server, POLICY)
    assert len(server.requests) == 4


@pytest.mark.asyncio
@CLIENTS
async def test_a_400_is_not_retried(call: Call) -> None:
    server = fake()
    server.script(Fault.status(400, body={"code": 3, "message": "bad request"}), Fault.status(400))
    with pytest.raises((EvaluatorAPIError, RequestRejected), match="answered 400: bad request") as caught:
        await call(server, POLICY)
    assert not isinstance(caught.value, EvaluatorServerError)
    assert len(server.requests) == 1


@pytest.mark.asyncio
@CLIENTS
async def test_retries_are_bounded_in_requests_and_say_so(call: Call) -> None:
    server = fake()
    server.script(*[Fault.status(503)] * 10)
    started = time.perf_counter()
    with pytest.raises((EvaluatorServerError, GenerationError), match=r"answered 503.*\(gave up after 4 attempts in "):
        await call(server, POLICY)
    assert len(server.requests) == 4
    assert time.perf_counter() - started < 3.0


@pytest.mark.asyncio
@CLIENTS
async def test_a_retry_after_beyond_the_deadline_fails_at_once_saying_how_long(call: Call) -> None:
    server = fake()
    server.script(Fault.status(429, retry_after=300))
    started = time.perf_counter()
    with pytest.raises(
        (EvaluatorServerError, GenerationError),
        match=r"the server asked to wait 300 s \(Retry-After\), longer than the \d\.\d s left of the 5 s retry budget: "
        r"stopped after 1 attempt\)",
    ) as caught:
        await call(server, POLICY)
    assert caught.value.retry_after == 300  # type: ignore[union-attr]
    assert len(server.requests) == 1 and time.perf_counter() - started < 2.0


@pytest.mark.asyncio
@CLIENTS
async def test_no_retry_starts_after_the_deadline(call: Call) -> None:
    server = fake()
    server.script(*[Fault.status(429, retry_after=0.3)] * 20)
    started = time.perf_counter()
    with pytest.raises((EvaluatorServerError, GenerationError)):
        await call(server, RetryPolicy(max_attempts=20, max_retry_time=0.5, max_backoff=0.05))
    assert time.perf_counter() - started < 2.0
    assert 2 <= len(server.requests) <= 4


@pytest.mark.asyncio
async def test_backoff_never_waits_past_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every wait is its window's full width: 0.5 s, then 1 s, which would end 1.5 s in; the deadline
    # (0.7 s) cuts the second wait to the 0.2 s left, and the attempt made then is the last.
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    server = fake()
    server.script(*[Fault.status(503)] * 10)
    started = time.perf_counter()
    with pytest.raises(EvaluatorServerError, match=r"answered 503.*gave up after 3 attempts"):
        await evaluator_get(server, RetryPolicy(max_attempts=10, max_retry_time=0.7, max_backoff=30.0))
    assert 0.7 <= time.perf_counter() - started < 1.2
    assert len(server.requests) == 3


@pytest.mark.asyncio
async def test_the_evaluator_apis_409_is_its_already_exists_verdict_not_retried() -> None:
    server = fake()
    server.evaluators.evaluators[(ACCOUNT, EVALUATOR)] = {"name": "taken"}
    async with server as base_url, aiohttp.ClientSession() as session:
        credentials = Credentials(SecretStr(KEY), "the test")
        client = EvaluatorClient(session, credentials, ACCOUNT, api_base=base_url.removesuffix("/v1"), retry=POLICY)
        with pytest.raises(EvaluatorExists, match="already exists"):
            await client.create(EVALUATOR, {"displayName": "x"}, None)
    assert len(server.requests) == 1
