"""examples/function_calling: the BFCL references pass 100%, deliberately wrong responses score near 0,
and prepare_data converts BFCL's functions and answers the documented way."""

from __future__ import annotations

import copy
import importlib.util
import json
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pytest_rewardkit.dataset import write_dataset
from pytest_rewardkit.evaluation import RowOutcome
from pytest_rewardkit.suite import run_suite

EXAMPLE = Path(__file__).parent.parent / "examples" / "function_calling"


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    lines = (EXAMPLE / "dataset.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def prepare_data() -> ModuleType:
    spec = importlib.util.spec_from_file_location("function_calling_prepare_data", EXAMPLE / "prepare_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mean_score(outcomes: list[RowOutcome]) -> float:
    assert all(o.error is None for o in outcomes), [o.error for o in outcomes if o.error][:3]
    return sum(o.reward or 0.0 for o in outcomes) / len(outcomes)


def with_response(row: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    return {**row, "messages": [*row["messages"][:-1], response]}


def test_dataset_covers_the_five_bfcl_categories(rows: list[dict[str, Any]]) -> None:
    assert Counter(r["category"] for r in rows) == {
        "simple_python": 400,
        "multiple": 200,
        "parallel": 200,
        "parallel_multiple": 200,
        "irrelevance": 240,
    }
    names = {t["function"]["name"] for r in rows for t in r["tools"]}
    assert "math_factorial" in names and not any("." in n for n in names)  # OpenAI-safe tool names


def test_references_pass_100_percent() -> None:
    outcomes = run_suite(EXAMPLE)
    failed = [o.verdict_message() for o in outcomes if not o.passed]
    assert len(outcomes) == 1240
    assert failed == []


def test_calls_shuffled_between_rows_score_near_zero(rows: list[dict[str, Any]], tmp_path: Path) -> None:
    # Each row is answered with the calls of another row: other functions and arguments, and calls
    # where none should be made (irrelevance rows).
    calls = [r["messages"][-1] for r in rows if r["ground_truth"]]
    wrong = [with_response(row, calls[(i + 1) % len(calls)]) for i, row in enumerate(rows)]
    write_dataset(tmp_path / "wrong.jsonl", wrong)
    assert mean_score(run_suite(EXAMPLE, dataset=tmp_path / "wrong.jsonl")) < 0.02


def perturbed(value: Any) -> Any:
    """A value of the same type that no accepted answer has."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1000
    if isinstance(value, str):
        return value + " perturbed"
    if isinstance(value, list):
        return [*value, value[0] if value else "perturbed"]
    return {**value, "perturbed": 1}


def perturb_one_parameter(row: dict[str, Any]) -> dict[str, Any]:
    response = copy.deepcopy(row["messages"][-1])
    if not response.get("tool_calls"):  # irrelevance: the wrong answer is a call
        name = row["tools"][0]["function"]["name"]
        response = {
            "role": "assistant",
            "tool_calls": [{"type": "function", "function": {"name": name, "arguments": "{}"}}],
        }
        return with_response(row, response)
    function = response["tool_calls"][0]["function"]
    arguments = json.loads(function["arguments"])
    if arguments:
        first = next(iter(arguments))
        arguments[first] = perturbed(arguments[first])
    else:
        arguments["perturbed"] = 1
    function["arguments"] = json.dumps(arguments)
    return with_response(row, response)


def test_one_perturbed_parameter_scores_near_zero(rows: list[dict[str, Any]], tmp_path: Path) -> None:
    write_dataset(tmp_path / "perturbed.jsonl", [perturb_one_parameter(row) for row in rows])
    assert mean_score(run_suite(EXAMPLE, dataset=tmp_path / "perturbed.jsonl")) < 0.02


def test_the_suite_runs_under_pytest(pytester: pytest.Pytester) -> None:
    pytester.copy_example(str(EXAMPLE / "rewardkit.yaml"))
    lines = (EXAMPLE / "dataset.jsonl").read_text(encoding="utf-8").splitlines()
    sample = [line for i, line in enumerate(lines) if i % 62 == 0]  # 20 rows across the categories
    pytester.path.joinpath("dataset.jsonl").write_text("\n".join(sample) + "\n", encoding="utf-8")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=len(sample))


# ---- prepare_data's conversion ------------------------------------------------------------------------

BFCL_FUNCTION = {
    "name": "finance.loan",
    "description": "Plan a loan.",
    "parameters": {
        "type": "dict",
        "properties": {
            "amount": {"type": "float", "description": "Principal."},
            "years": {"type": "integer", "description": "Term."},
            "bank": {"type": "dict", "properties": {"rate": {"type": "float", "description": "Rate."}}},
            "dates": {"type": "tuple", "items": {"type": "string"}},
            "note": {"type": "any", "description": "Free text."},
        },
        "required": ["amount", "years"],
    },
}


def test_functions_become_openai_tools_as_bfcl_converts_them(prepare_data: ModuleType) -> None:
    tool = prepare_data.openai_tool(BFCL_FUNCTION)
    function = tool["function"]
    assert tool["type"] == "function" and function["name"] == "finance_loan"
    assert function["description"] == "Plan a loan. Note that the provided function is in Python 3 syntax."
    assert function["parameters"]["type"] == "object"
    props = function["parameters"]["properties"]
    assert props["amount"] == {
        "type": "number",
        "format": "float",
        "description": "Principal. This is a float type value.",
    }
    assert props["bank"]["type"] == "object" and props["bank"]["properties"]["rate"]["type"] == "number"
    assert props["dates"] == {"type": "array", "items": {"type": "string"}}
    assert props["note"]["type"] == "string"
    assert BFCL_FUNCTION["parameters"]["type"] == "dict"  # the source is not modified


def test_reference_uses_first_accepted_values_and_omits_optional_ones(prepare_data: ModuleType) -> None:
    accepted = {
        "amount": ["", 1000.0],  # required: the first value that is not ""
        "years": [5, 10],
        "bank": [{"rate": [0.05], "fee": ["", 10]}, ""],  # a dict's keys get their first accepted values
        "dates": ["", ["2024-01-01"]],  # optional, first accepted value "": left out
        "undeclared": ["x", ""],  # not in the tool's schema: left out
    }
    message = prepare_data.reference_message([{"finance.loan": accepted}], [BFCL_FUNCTION])
    (call,) = message["tool_calls"]
    assert call["function"]["name"] == "finance_loan"
    assert json.loads(call["function"]["arguments"]) == {"amount": 1000.0, "years": 5, "bank": {"rate": 0.05}}


def test_irrelevance_reference_is_a_text_answer(prepare_data: ModuleType) -> None:
    message = prepare_data.reference_message([], [BFCL_FUNCTION])
    assert message == {"role": "assistant", "content": prepare_data.NO_CALL_ANSWER}
