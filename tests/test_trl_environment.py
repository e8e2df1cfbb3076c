"""The suite's environment as TRL's `environment_factory`: methods TRL can describe and call,
reset from a row, the multi-turn checker as the environment's reward."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_rewardkit.config import ConfigError
from pytest_rewardkit.trl import environment_factory, suite_dataset

EXAMPLE = Path(__file__).parent.parent / "examples" / "multi_turn"


@pytest.fixture(scope="module")
def rows() -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in suite_dataset(EXAMPLE)}


def test_every_tool_is_a_method_trl_can_describe() -> None:
    from transformers.utils import get_json_schema

    cls = environment_factory(EXAMPLE)
    described = get_json_schema(cls.tail)["function"]
    assert described["name"] == "tail"
    assert described["parameters"]["required"] == ["file_name"]
    assert described["parameters"]["properties"]["lines"]["type"] == "integer"
    tools = [name for name in vars(cls) if not name.startswith("_") and callable(getattr(cls, name))]
    assert len(tools) == 35 and all(get_json_schema(getattr(cls, name)) for name in tools)


def test_the_prompt_is_the_first_user_turn(rows: dict[str, dict[str, Any]]) -> None:
    prompt = rows["multi_turn_base_1"]["prompt"]
    assert [m["role"] for m in prompt] == ["system", "user"]
    assert prompt[-1]["content"].startswith("I am alex.")


def test_reset_then_the_ground_truth_calls_score_1_and_wrong_calls_0(rows: dict[str, dict[str, Any]]) -> None:
    env = environment_factory(EXAMPLE)()
    row = rows["multi_turn_base_6"]  # turn 0: cd(folder='communal'), touch(file_name='Annual_Report_2023.docx')
    env.reset(**row)
    assert env.cd(folder="communal") == '{"current_working_directory": "communal"}'
    env.touch(file_name="Annual_Report_2023.docx")
    assert env.get_reward() == 1.0
    env.reset(**row)  # a fresh environment: the file is gone again
    env.cd(folder="communal")
    env.touch(file_name="Annual_Report.docx")
    assert env.get_reward() == 0.0


def test_calls_are_checked_and_excluded_functions_refused(rows: dict[str, dict[str, Any]]) -> None:
    env = environment_factory(EXAMPLE)()
    env.reset(**rows["multi_turn_base_1"])  # excludes cp and the Math API
    assert env.cp(source="a", destination="b").startswith("Error: unknown tool 'cp'")
    assert env.mean(numbers=[1.0]).startswith("Error: unknown tool 'mean'")
    assert env.tail(file_name=3) == "Error: invalid arguments for tail: 3 is not of type 'string' (at file_name)"


def test_a_suite_without_environment_is_refused() -> None:
    with pytest.raises(ConfigError, match="names no environment"):
        environment_factory(EXAMPLE.parent / "math")
