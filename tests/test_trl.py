"""The TRL adapter, called the way GRPOTrainer calls reward functions: `fn(prompts=..., completions=...,
completion_ids=..., **columns, trainer_state=..., log_extra=..., log_metric=...)`, one value per completion."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import pickle
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from trl.trainer.utils import get_callable_name, is_async_callable

from pytest_rewardkit import EvaluateResult, Message, reward_function
from pytest_rewardkit.config import ConfigError
from pytest_rewardkit.dataset import DatasetError
from pytest_rewardkit.rewards import UnknownReward
from pytest_rewardkit.trl import AsyncTRLReward, TRLReward, suite_dataset, trl_reward

if TYPE_CHECKING:
    from conftest import ChatRow, MakeSuite

SEEN: list[dict[str, Any]] = []


@reward_function
def echo(messages: list[Message], ground_truth: Any = None, **kwargs: Any) -> EvaluateResult:
    """1.0 when the response is the ground truth; remembers what it was called with."""
    SEEN.append({"messages": [m.to_api() for m in messages], "ground_truth": ground_truth, "kwargs": kwargs})
    return EvaluateResult(score=float(messages[-1].text == str(ground_truth)), reason="echo")


@reward_function
def refuses_odd(messages: list[Message], ground_truth: Any = None, **kwargs: Any) -> EvaluateResult:
    if int(messages[-1].text) % 2:
        return EvaluateResult.invalid("odd numbers cannot be graded")
    return EvaluateResult(score=0.5)


@reward_function
async def waits_for_all(
    messages: list[Message], ground_truth: Any = None, barrier: asyncio.Barrier | None = None, **kwargs: Any
) -> EvaluateResult:
    """Finishes only once every completion of the batch is being scored at the same time."""
    assert barrier is not None
    await asyncio.wait_for(barrier.wait(), timeout=5)
    return EvaluateResult(score=float(messages[-1].text == ground_truth))


@pytest.fixture
def seen() -> list[dict[str, Any]]:
    SEEN.clear()
    return SEEN


def trl_extras(metrics: dict[str, float]) -> dict[str, Any]:
    """The keyword arguments TRL adds to every reward call, besides the dataset columns."""
    return {
        "trainer_state": object(),
        "log_extra": lambda column, values: None,
        "log_metric": metrics.__setitem__,
    }


def test_standard_format_scores_text_completions_as_the_assistant_turn(seen: list[dict[str, Any]]) -> None:
    reward = trl_reward("test_trl:echo")
    scores = reward(
        prompts=["2+2?", "3+3?"], completions=["4", "5"], completion_ids=[[1], [2]], ground_truth=["4", "6"]
    )
    assert scores == [1.0, 0.0]
    assert seen[0]["messages"] == [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
    assert [call["ground_truth"] for call in seen] == ["4", "6"]


def test_conversational_format_appends_the_completion_messages_to_the_prompt(seen: list[dict[str, Any]]) -> None:
    prompt = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    completion = [{"role": "assistant", "content": "4"}]
    assert trl_reward("test_trl:echo")(prompts=[prompt], completions=[completion], ground_truth=["4"]) == [1.0]
    assert seen[0]["messages"] == [*prompt, *completion]


def test_extra_columns_become_keyword_arguments_and_trls_own_arguments_do_not(seen: list[dict[str, Any]]) -> None:
    reward = trl_reward("test_trl:echo", params={"strict": True, "level": "default"})
    reward(
        prompts=["a", "b"],
        completions=["x", "y"],
        completion_ids=[[1], [2]],
        id=["row-1", "row-2"],
        ground_truth=["x", "z"],
        level=["easy", "hard"],
        **trl_extras({}),
    )
    # Row values override the reward's params, as in a pytest run; the row id is not an argument.
    assert [call["kwargs"] for call in seen] == [{"strict": True, "level": "easy"}, {"strict": True, "level": "hard"}]


def test_columns_can_be_renamed_and_dropped(seen: list[dict[str, Any]]) -> None:
    reward = trl_reward("test_trl:echo", columns={"answer": "ground_truth", "source": None, "id": "row_id"})
    scores = reward(prompts=["q"], completions=["42"], answer=["42"], source=["gsm8k"], id=["r1"])
    assert scores == [1.0]
    assert seen[0]["ground_truth"] == "42"
    assert seen[0]["kwargs"] == {"row_id": "r1"}


def test_a_column_without_one_value_per_completion_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match=r"dataset column 'level' must hold one value per completion \(2\)"):
        trl_reward("test_trl:echo")(prompts=["a", "b"], completions=["x", "y"], level=["only one"])


def test_mixing_text_and_message_formats_is_an_error() -> None:
    with pytest.raises(TypeError, match="both be text"):
        trl_reward("test_trl:echo")(prompts=["a"], completions=[[{"role": "assistant", "content": "x"}]])


def test_an_invalid_score_is_none_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    metrics: dict[str, float] = {}
    with caplog.at_level(logging.WARNING, logger="pytest_rewardkit.trl"):
        scores = trl_reward("test_trl:refuses_odd")(
            prompts=["a"] * 4, completions=["1", "2", "3", "4"], **trl_extras(metrics)
        )
    assert scores == [None, 0.5, None, 0.5]
    assert metrics == {"rewards/refuses_odd/invalid_fraction": 0.5}
    assert "refuses_odd could not score 2 of 4 completions: odd numbers cannot be graded" in caplog.text


@reward_function
def crashes_on_odd(messages: list[Message], ground_truth: Any = None, **kwargs: Any) -> EvaluateResult:
    if int(messages[-1].text) % 2:
        raise RecursionError("maximum recursion depth exceeded")
    return EvaluateResult(score=1.0)


@reward_function
async def crashes_on_odd_async(messages: list[Message], ground_truth: Any = None, **kwargs: Any) -> EvaluateResult:
    return crashes_on_odd(messages)


@pytest.mark.parametrize("name", ["crashes_on_odd", "crashes_on_odd_async"])
def test_a_reward_raising_on_one_completion_gives_none_and_a_warning(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The training step goes on: the other completions keep their scores."""
    reward = trl_reward(f"test_trl:{name}")
    with caplog.at_level(logging.WARNING, logger="pytest_rewardkit.trl"):
        scores = reward(prompts=["a"] * 3, completions=["1", "2", "4"])
        if inspect.isawaitable(scores):
            scores = asyncio.run(scores)
    assert scores == [None, 1.0, 1.0]
    assert f"reward {name} raised on one completion: RecursionError" in caplog.text


def test_the_name_trl_logs_is_the_rewards_name() -> None:
    reward = trl_reward("math")
    assert reward.__name__ == "math_reward"
    assert get_callable_name(reward) == "math_reward"


@pytest.mark.parametrize("source", ["math", "test_trl:echo", "suite"])
def test_the_adapter_survives_pickling(source: str, make_suite: MakeSuite, chat_row: ChatRow) -> None:
    if source == "suite":
        source = str(make_suite([chat_row("q1", None, "4")], reward={"name": "math", "params": {"strict": False}}))
    reward = trl_reward(source)
    copy = pickle.loads(pickle.dumps(reward))
    assert type(copy) is type(reward)
    assert (copy.__name__, copy.params, copy.columns) == (reward.__name__, reward.params, reward.columns)
    args: dict[str, Any] = {"prompts": ["2+2?"], "completions": ["so it is 4"], "ground_truth": ["4"]}
    assert copy(**args) == reward(**args)


def test_a_suite_supplies_its_reward_and_params(make_suite: MakeSuite, chat_row: ChatRow) -> None:
    folder = make_suite([chat_row("q1", None, "4")], reward={"name": "math", "params": {"strict": False}})
    assert trl_reward(folder).params == {"strict": False}
    assert trl_reward(folder / "rewardkit.yaml", params={"strict": True}).params == {"strict": True}
    # Not anchored as a final answer: counts only because the suite says strict: false.
    assert trl_reward(folder)(prompts=["2+2?"], completions=["it is 4"], ground_truth=["4"]) == [1.0]


def test_a_reward_function_object_is_taken_as_is() -> None:
    assert trl_reward(echo).reward is echo


def test_an_unknown_source_names_every_accepted_form(tmp_path: Path) -> None:
    with pytest.raises(UnknownReward, match=r"'nope' is not a built-in reward \(.*math.*\), an import path"):
        trl_reward("nope")
    (tmp_path / "rewardkit.yaml").write_text("reward: nowhere:fn\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"rewardkit.yaml: reward: cannot import reward 'nowhere:fn'"):
        trl_reward(tmp_path)


def test_a_sync_reward_gives_a_sync_callable_and_an_async_one_an_awaitable() -> None:
    assert isinstance(trl_reward("test_trl:echo"), TRLReward)
    assert not is_async_callable(trl_reward("test_trl:echo"))
    assert isinstance(trl_reward("test_trl:waits_for_all"), AsyncTRLReward)
    assert is_async_callable(trl_reward("test_trl:waits_for_all"))


def test_an_async_reward_scores_the_completions_of_a_batch_concurrently() -> None:
    async def batch() -> list[float | None]:
        reward = trl_reward("test_trl:waits_for_all", params={"barrier": asyncio.Barrier(3)})
        assert isinstance(reward, AsyncTRLReward)
        return await reward(prompts=["q"] * 3, completions=["1", "2", "3"], ground_truth=["1", "1", "3"])

    assert asyncio.run(batch()) == [1.0, 0.0, 1.0]


def test_suite_dataset_is_trls_conversational_prompt_format(make_suite: MakeSuite, chat_row: ChatRow) -> None:
    rows = [chat_row("q1", "the reference answer", "4", level="easy"), chat_row("q2", None, "6", level="hard")]
    folder = make_suite(rows, system_prompt="Answer with a number.")
    dataset = suite_dataset(folder)
    assert dataset.column_names == ["id", "prompt", "ground_truth", "level"]
    assert dataset[0] == {
        "id": "q1",
        "prompt": [
            {"role": "system", "content": "Answer with a number."},
            {"role": "user", "content": "question q1"},
        ],
        "ground_truth": "4",
        "level": "easy",
    }
    assert dataset["ground_truth"] == ["4", "6"]
    assert len(suite_dataset(folder, limit=1)) == 1


def test_structured_values_read_back_exactly_as_written(make_suite: MakeSuite, chat_row: ChatRow) -> None:
    calls = [{"name": "add", "arguments": {"a": 1}}, {"name": "ping", "arguments": {}}]
    rows = [chat_row("q1", None, calls[0], tags=["x"]), chat_row("q2", None, [calls[1]], score=3)]
    dataset = suite_dataset(make_suite(rows))
    # Arrow alone would merge the dicts into one struct and add "a": None to the second call.
    assert dataset["ground_truth"] == [calls[0], [calls[1]]]
    assert dataset["tags"] == [["x"], None]
    assert dataset["score"] == [None, 3]


def test_a_rows_tools_are_described_in_its_system_message(make_suite: MakeSuite, chat_row: ChatRow) -> None:
    tool = {"type": "function", "function": {"name": "add", "parameters": {"type": "object", "properties": {}}}}
    rows = [chat_row("q1", None, [{"add": {}}], tools=[tool]), chat_row("q2", None, "4")]
    dataset = suite_dataset(make_suite(rows, system_prompt="Be brief."))
    first, second = dataset["prompt"]
    assert first[0]["role"] == "system" and first[0]["content"].startswith("Be brief.\n\n# Tools")
    assert f"<tools>\n{json.dumps(tool)}\n</tools>" in first[0]["content"]
    assert "<tool_call></tool_call> XML tags" in first[0]["content"]
    assert second[0] == {"role": "system", "content": "Be brief."}
    # The reward still gets the schemas, e.g. to check the arguments against them.
    assert dataset["tools"] == [[tool], None]


def test_invalid_rows_stop_the_dataset_with_their_lines(make_suite: MakeSuite, chat_row: ChatRow) -> None:
    folder = make_suite([chat_row("q1", None, "4")], bad_lines={1: "{not json"})
    with pytest.raises(DatasetError, match=r"1 invalid row\(s\); fix or remove them:\n.*dataset.jsonl:2: invalid JSON"):
        suite_dataset(folder)


def test_a_field_trl_reserves_is_refused(make_suite: MakeSuite, chat_row: ChatRow) -> None:
    folder = make_suite([chat_row("q1", None, "4", completion="x")])
    with pytest.raises(DatasetError, match=r"dataset.jsonl:1: field\(s\) \['completion'\] are reserved by TRL"):
        suite_dataset(folder)


def test_a_composite_suite_resolves_its_components_beside_the_suite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))  # the suite's folder joins sys.path to import its module
    monkeypatch.delitem(sys.modules, "trl_local_rewards", raising=False)
    (tmp_path / "trl_local_rewards.py").write_text(
        "from pytest_rewardkit import EvaluateResult, reward_function\n\n\n"
        "@reward_function\ndef exact(messages, ground_truth=None, **kwargs):\n"
        "    return EvaluateResult(score=float(messages[-1].content == ground_truth))\n",
        encoding="utf-8",
    )
    components = [{"name": "trl_local_rewards:exact", "weight": 3}, {"name": "math", "params": {"strict": False}}]
    config = {"reward": {"name": "composite", "params": {"components": components}}}
    (tmp_path / "rewardkit.yaml").write_text(json.dumps(config), encoding="utf-8")
    reward = trl_reward(tmp_path)
    assert reward(prompts=["2+2?", "2+2?"], completions=["4", "5"], ground_truth=["4", "4"]) == [1.0, 0.0]


def test_the_adapter_and_the_pytest_plugin_leave_the_training_stack_unimported() -> None:
    """torch, transformers, TRL and datasets cost seconds to import: only the training command and
    `suite_dataset` (datasets, on call) pay for them, never a pytest run or a reward adapter."""
    probe = (
        "import sys, pytest_rewardkit.plugin, pytest_rewardkit.trl\n"
        "pytest_rewardkit.trl.trl_reward('math'), pytest_rewardkit.trl.environment_factory('examples/multi_turn')\n"
        "print(sorted(m for m in ('torch', 'transformers', 'trl', 'datasets') if m in sys.modules))\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=root)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]"]
