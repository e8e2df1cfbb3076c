"""@reward_function: one calling convention for sync and async rewards, checked early."""

from __future__ import annotations

import asyncio
import pickle
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from pytest_rewardkit import EvaluateResult, Message, RewardFunction, reward_function
from pytest_rewardkit.reward import import_object

CONVERSATION = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]


@reward_function
def exact_answer(messages: list[Message], ground_truth: Any = None, **kwargs: Any) -> EvaluateResult:
    ok = messages[-1].text.strip() == str(ground_truth)
    return EvaluateResult(score=float(ok), reason="exact" if ok else "different")


@reward_function
async def async_exact_answer(messages: list[Message], ground_truth: Any = None, **kwargs: Any) -> EvaluateResult:
    await asyncio.sleep(0)
    return exact_answer(messages, ground_truth)


def test_sync_reward_scores_and_returns_an_evaluate_result() -> None:
    assert exact_answer(CONVERSATION, ground_truth="4").score == 1.0
    assert exact_answer(CONVERSATION, ground_truth="5").score == 0.0


def test_async_reward_can_be_called_synchronously_and_awaited() -> None:
    assert async_exact_answer.is_async
    assert async_exact_answer(CONVERSATION, ground_truth="4").score == 1.0
    assert asyncio.run(async_exact_answer.acall(CONVERSATION, ground_truth="5")).score == 0.0


@pytest.mark.filterwarnings("ignore:coroutine 'RewardFunction.acall' was never awaited:RuntimeWarning")
def test_an_async_reward_can_be_called_synchronously_from_async_code() -> None:
    async def caller() -> EvaluateResult:
        return async_exact_answer(CONVERSATION, ground_truth="4")

    try:
        outcome: object = asyncio.run(caller()).score
    except RuntimeError as exc:
        # Kept as text: the exception would hold on to the coroutine the failed call leaves behind.
        outcome = str(exc)
    assert outcome == 1.0


def test_a_sync_reward_can_be_awaited() -> None:
    assert not exact_answer.is_async
    assert asyncio.run(exact_answer.acall(CONVERSATION, "4")).reason == "exact"


def test_dict_messages_reach_the_function_as_message_objects() -> None:
    seen: list[Any] = []

    @reward_function
    def spy(messages: list[Message], ground_truth: Any = None, **kwargs: Any) -> EvaluateResult:
        seen.extend(messages)
        return EvaluateResult(score=1.0)

    spy([CONVERSATION[0], Message(role="assistant", content="4")])
    assert all(isinstance(m, Message) for m in seen)
    assert [m.role for m in seen] == ["user", "assistant"]


def test_a_malformed_dict_message_is_refused() -> None:
    with pytest.raises(ValidationError, match="role"):
        exact_answer([{"role": "robot", "content": "x"}])


@pytest.mark.parametrize("messages", ["just text", {"role": "user", "content": "x"}])
def test_messages_must_be_a_list(messages: Any) -> None:
    with pytest.raises(TypeError, match="messages must be a list"):
        exact_answer(messages)


def test_extra_keyword_arguments_and_ground_truth_reach_the_function() -> None:
    received: dict[str, Any] = {}

    @reward_function
    def spy(messages: list[Message], ground_truth: Any = None, **kwargs: Any) -> EvaluateResult:
        received.update(kwargs, ground_truth=ground_truth)
        return EvaluateResult(score=1.0)

    spy(CONVERSATION, "4", level=3, strict=False)
    assert received == {"ground_truth": "4", "level": 3, "strict": False}


def test_a_returned_dict_becomes_an_evaluate_result() -> None:
    @reward_function
    def as_dict(messages: list[Message], ground_truth: Any = None, **kwargs: Any) -> dict[str, Any]:
        return {"score": 0.25, "reason": "partial", "metrics": {"format": {"score": 1.0}}}

    result = as_dict(CONVERSATION)
    assert isinstance(result, EvaluateResult)
    assert (result.score, result.reason, result.metrics["format"].score) == (0.25, "partial", 1.0)


def test_an_async_reward_returning_a_dict_is_coerced_too() -> None:
    @reward_function
    async def as_dict(messages: list[Message], ground_truth: Any = None, **kwargs: Any) -> dict[str, Any]:
        return {"score": 1}

    assert asyncio.run(as_dict.acall(CONVERSATION)) == EvaluateResult(score=1.0)


@pytest.mark.parametrize("returned", [0.5, None, "1.0", [1.0]])
def test_a_wrong_return_type_is_a_type_error_naming_the_function(returned: Any) -> None:
    @reward_function
    def sloppy_reward(messages: list[Message], ground_truth: Any = None, **kwargs: Any) -> Any:
        return returned

    where = r"\(.*test_reward_decorator\.py:\d+\)"  # the user's function, not the wrapper
    with pytest.raises(TypeError, match=rf"'sloppy_reward' {where} returned {type(returned).__name__}"):
        sloppy_reward(CONVERSATION)


def test_a_dict_that_is_not_a_result_is_a_type_error_naming_the_function() -> None:
    @reward_function
    def overflowing(messages: list[Message], ground_truth: Any = None, **kwargs: Any) -> dict[str, Any]:
        return {"score": 7}

    with pytest.raises(TypeError, match=r"'overflowing' \(.*\) returned a dict that is not an EvaluateResult"):
        overflowing(CONVERSATION)


def test_a_function_without_kwargs_is_refused_at_decoration_time() -> None:
    def no_kwargs(messages: list[Message], ground_truth: Any = None) -> EvaluateResult:
        raise AssertionError("must never be called")

    with pytest.raises(TypeError, match=r"no_kwargs' must accept \*\*kwargs"):
        reward_function(no_kwargs)


def test_a_function_without_a_messages_argument_is_refused() -> None:
    def only_kwargs(**kwargs: Any) -> EvaluateResult:
        raise AssertionError("must never be called")

    with pytest.raises(TypeError, match="only_kwargs' must take the messages"):
        reward_function(only_kwargs)


def test_decorating_twice_keeps_one_wrapper() -> None:
    assert reward_function(exact_answer) is exact_answer


def test_the_wrapper_keeps_the_function_identity() -> None:
    assert isinstance(exact_answer, RewardFunction)
    assert exact_answer.name == exact_answer.fn.__name__ == "exact_answer"
    assert getattr(exact_answer, "__wrapped__", None) is exact_answer.fn
    assert "test_reward_decorator.exact_answer" in repr(exact_answer)


def test_pickling_a_module_level_reward_round_trips() -> None:
    for reward in (exact_answer, async_exact_answer):
        restored = pickle.loads(pickle.dumps(reward))
        assert restored is reward


def test_a_pickled_reward_loads_and_scores_in_a_fresh_interpreter(tmp_path: Path) -> None:
    (tmp_path / "my_rewards.py").write_text(
        textwrap.dedent(
            """
            from pytest_rewardkit import EvaluateResult, reward_function

            @reward_function
            def length_reward(messages, ground_truth=None, **kwargs):
                return EvaluateResult(score=min(1.0, len(messages[-1].text) / 10))
            """
        )
    )
    sys.path.insert(0, str(tmp_path))
    try:
        payload = pickle.dumps(import_object("my_rewards:length_reward"))
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("my_rewards", None)
    script = (
        "import pickle, sys; r = pickle.loads(sys.stdin.buffer.read()); "
        "print(type(r).__name__, r([{'role': 'assistant', 'content': 'hello'}]).score)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], input=payload, capture_output=True, cwd=tmp_path, check=True, timeout=60
    )
    assert done.stdout.decode().split() == ["RewardFunction", "0.5"]


@pytest.mark.parametrize("path", ["no_colon", ":attr", "module:"])
def test_import_object_refuses_a_malformed_path(path: str) -> None:
    with pytest.raises(ValueError, match="module:function"):
        import_object(path)


def test_acall_runs_a_sync_reward_off_the_event_loop() -> None:
    loop_threads: list[int] = []

    @reward_function
    def slow(messages: list[Message], ground_truth: Any = None, **kwargs: Any) -> EvaluateResult:
        loop_threads.append(threading.get_ident())
        time.sleep(0.3)
        return EvaluateResult(score=1.0)

    async def main() -> tuple[float, int]:
        started = time.perf_counter()
        results = await asyncio.gather(*(slow.acall([{"role": "assistant", "content": "x"}]) for _ in range(3)))
        assert [r.score for r in results] == [1.0, 1.0, 1.0]
        return time.perf_counter() - started, threading.get_ident()

    elapsed, loop_thread = asyncio.run(main())
    assert loop_thread not in loop_threads  # never on the loop's own thread
    assert elapsed < 0.8  # three 0.3 s calls overlapped instead of blocking the loop in turn
