"""The reward server: authentication, limits, a load test with concurrent clients, start-up refusals,
the Dockerfile. Servers bind 127.0.0.1 and are bounded in requests and time."""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pytest_rewardkit.__main__ import main
from pytest_rewardkit.server import RewardServer, ServerConfigError, ServerLimits, check_exposure

ROOT = Path(__file__).parent.parent
TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MATH_ROWS = [json.loads(line) for line in (ROOT / "examples" / "math" / "dataset.jsonl").read_text().splitlines()[:40]]

SLOW_REWARD = textwrap.dedent(
    """
    import time

    from pytest_rewardkit import EvaluateResult, reward_function


    @reward_function
    def nap(messages, ground_truth=None, **kwargs):
        time.sleep(float(ground_truth))
        return EvaluateResult(score=1.0, reason="woke up")
    """
)


def sample(row: dict[str, Any], answer: str | None = None) -> dict[str, Any]:
    messages = row["messages"] if answer is None else [row["messages"][0], {"role": "assistant", "content": answer}]
    return {"messages": messages, "ground_truth": row["ground_truth"]}


@pytest.fixture(scope="module")
def math_server() -> Iterator[str]:
    limits = ServerLimits(max_body_bytes=64 * 1024, max_samples=8, concurrency=2, sample_timeout=20, max_queued=64)
    with RewardServer(ROOT / "examples" / "math", TOKEN, limits).running() as url:
        yield url


async def post(session: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with session.post(
        f"{url}/v1/evaluate",
        data=data,
        headers={"Content-Type": "application/json", **(AUTH if headers is None else headers)},
    ) as response:
        return response.status, await response.json()


def test_one_sample_and_many_samples_are_scored_with_the_suites_reward(math_server: str) -> None:
    async def go() -> None:
        async with aiohttp.ClientSession() as session:
            status, one = await post(session, math_server, sample(MATH_ROWS[0]))
            assert status == 200 and one["success"] is True and one["score"] == 1.0
            status, many = await post(
                session, math_server, {"samples": [sample(MATH_ROWS[0]), sample(MATH_ROWS[1], "\\boxed{-1}")]}
            )
            assert status == 200 and [r["score"] for r in many["results"]] == [1.0, 0.0]
            async with session.get(f"{math_server}/health") as response:
                assert response.status == 200 and (await response.json())["reward"] == "math"

    asyncio.run(go())


def test_load_concurrent_clients_with_bad_requests_mixed_in(math_server: str) -> None:
    """16 clients x 10 requests, every fifth one bad in a different way: each gets its own answer."""
    bad: list[tuple[Any, dict[str, str] | None, int, str]] = [
        (b"{not json", None, 400, "not JSON"),
        (b"x" * (70 * 1024), None, 413, "over 65536 bytes"),
        (
            {"messages": [{"role": "user", "content": "q"}]},
            {"Authorization": "Bearer wrong-token-000000000"},
            401,
            "bearer",
        ),
        ({"messages": [{"role": "user", "content": "q"}]}, {}, 401, "bearer"),
        ({"samples": [sample(MATH_ROWS[0])] * 9}, None, 413, "limit is 8"),
        ({"messages": [{"role": "wizard", "content": "q"}]}, None, 400, "messages"),
        ({**sample(MATH_ROWS[0]), "strict": False}, None, 400, "parameters are fixed by the suite"),
        ({"samples": []}, None, 400, "non-empty list"),
    ]

    async def client(number: int, session: aiohttp.ClientSession) -> list[str]:
        problems = []
        for request in range(10):
            if request % 5 == 4:
                body, headers, want_status, want_text = bad[(number + request) % len(bad)]
                status, answer = await post(session, math_server, body, headers)
                if status != want_status or want_text not in json.dumps(answer):
                    problems.append(f"bad request {want_status}: got {status} {answer}")
            else:
                row = MATH_ROWS[(number * 10 + request) % len(MATH_ROWS)]
                status, answer = await post(session, math_server, sample(row))
                if status != 200 or answer.get("score") != 1.0:
                    problems.append(f"good request: got {status} {answer}")
        return problems

    async def go() -> list[str]:
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            results = await asyncio.gather(*(client(number, session) for number in range(16)))
        return [problem for problems in results for problem in problems]

    assert asyncio.run(go()) == []


def test_a_sample_over_the_time_limit_is_an_error_and_the_server_recovers(tmp_path: Path) -> None:
    (tmp_path / "napper.py").write_text(SLOW_REWARD, encoding="utf-8")
    (tmp_path / "rewardkit.yaml").write_text("reward: napper:nap\n", encoding="utf-8")
    (tmp_path / "dataset.jsonl").write_text(
        json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}) + "\n"
    )
    limits = ServerLimits(concurrency=1, sample_timeout=1.0, max_queued=4)

    async def go(url: str) -> None:
        messages = [{"role": "assistant", "content": "a"}]
        async with aiohttp.ClientSession() as session:
            status, answer = await post(session, url, {"messages": messages, "ground_truth": "30"})
            assert status == 200 and answer == {"success": False, "error": "no score within the 1s limit"}
            status, answer = await post(session, url, {"messages": messages, "ground_truth": "0"})
            assert status == 200 and answer["success"] is True, answer
            # One worker, four queued at most: the fifth concurrent sample is turned away.
            answers = await asyncio.gather(
                *(post(session, url, {"messages": messages, "ground_truth": "0.3"}) for _ in range(6))
            )
            assert sorted(status for status, _ in answers).count(503) >= 1

    with RewardServer(tmp_path, TOKEN, limits).running() as url:
        asyncio.run(go(url))


@pytest.mark.parametrize(
    ("host", "token", "insecure", "message"),
    [
        ("127.0.0.1", None, False, "no bearer token: set REWARDKIT_SERVER_TOKEN"),
        ("0.0.0.0", None, True, "only on a loopback address, not 0.0.0.0"),
        ("10.1.2.3", None, True, "only on a loopback address"),
        ("0.0.0.0", "short", False, "shorter than 16 characters"),
    ],
)
def test_the_server_refuses_to_start_exposed(host: str, token: str | None, insecure: bool, message: str) -> None:
    with pytest.raises(ServerConfigError, match=message):
        check_exposure(host, token, insecure, "REWARDKIT_SERVER_TOKEN")


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_insecure_local_is_allowed_on_loopback(host: str) -> None:
    check_exposure(host, None, True, "REWARDKIT_SERVER_TOKEN")


def test_serve_without_a_token_or_with_a_broken_reward_exits_2_before_binding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("REWARDKIT_SERVER_TOKEN", raising=False)
    assert main(["serve", str(ROOT / "examples" / "math"), "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "no bearer token" in capsys.readouterr().err
    assert main(["serve", str(ROOT / "examples" / "math"), "--concurrency", "0"]) == 2
    (tmp_path / "rewardkit.yaml").write_text("reward: no_such_module:fn\n", encoding="utf-8")
    (tmp_path / "dataset.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "q"}]}) + "\n")
    monkeypatch.setenv("REWARDKIT_SERVER_TOKEN", TOKEN)
    assert main(["serve", str(tmp_path), "--port", "0"]) == 2
    assert "cannot import reward 'no_such_module:fn'" in capsys.readouterr().err


def test_dockerfile_pins_the_package_and_takes_the_token_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("REWARDKIT_SERVER_TOKEN", TOKEN)
    target = tmp_path / "Dockerfile"
    assert main(["serve", "examples/math", "--dockerfile", str(target), "--port", "9000"]) == 0
    text = target.read_text()
    assert 'pip install --no-cache-dir "pytest-rewardkit==0.1.0"' in text and "COPY examples/math /app/suite" in text
    assert '"--host", "0.0.0.0", "--port", "9000"' in text and "REWARDKIT_SERVER_TOKEN" in text
    assert "bubblewrap" in text and "USER rewardkit" in text and TOKEN not in text
