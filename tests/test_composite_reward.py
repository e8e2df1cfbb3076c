"""The `composite` reward, and examples/composite (GSM8K answer + solve() function)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_examples_coding import rows_of, score_in_parallel, shuffled

from pytest_rewardkit import resolve_reward
from pytest_rewardkit.models import EvaluateResult

composite = resolve_reward("composite")
SUITE = Path(__file__).parent.parent / "examples" / "composite"

MATH_AND_CODE = [
    {"name": "math", "weight": 0.75, "params": {"strict": True}},
    {"name": "code", "weight": 0.25, "params": {"mode": "all"}},
]
TESTS = [{"call": "solve", "args": [], "expected": 18}]


def score(response: str, components: Any = MATH_AND_CODE, **kwargs: Any) -> EvaluateResult:
    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": response}]
    return composite(messages, ground_truth="18", components=components, tests=TESTS, **kwargs)


def answer(boxed: str, returned: str) -> str:
    return f"```python\ndef solve():\n    return {returned}\n```\nSo \\boxed{{{boxed}}}."


@pytest.mark.parametrize(
    ("boxed", "returned", "expected"),
    [("18", "9 * 2", 1.0), ("18", "17", 0.75), ("17", "18", 0.25), ("17", "17", 0.0)],
)
def test_score_is_the_weighted_mean_and_every_component_is_kept(boxed: str, returned: str, expected: float) -> None:
    result = score(answer(boxed, returned))
    assert result.score == pytest.approx(expected)
    assert result.metrics["math"].score == (1.0 if boxed == "18" else 0.0)
    assert result.metrics["code"].score == (1.0 if returned in ("9 * 2", "18") else 0.0)
    assert "code.tests_passed" in result.metrics and "math.anchored_answer" in result.metrics
    assert result.reason.startswith("math ")


def test_component_params_override_and_keys_name_repeated_rewards() -> None:
    components = [
        {"name": "code", "key": "strict", "params": {"tolerance": 0.0}},
        {"name": "code", "key": "lenient", "params": {"tolerance": 0.1}},
    ]
    result = score(answer("18", "18.05"), components)
    assert (result.metrics["strict"].score, result.metrics["lenient"].score, result.score) == (0.0, 1.0, 0.5)


def test_a_component_error_makes_the_composite_invalid_not_zero() -> None:
    messages = [{"role": "assistant", "content": answer("18", "18")}]
    result = composite(messages, ground_truth=None, components=MATH_AND_CODE, tests=TESTS)
    assert result.is_error and "'math'" in result.reason and "ground_truth" in result.reason
    broken_code = [{"name": "code", "params": {"bwrap_path": "/nonexistent/bwrap"}}]
    assert score(answer("18", "18"), broken_code).is_error


@pytest.mark.parametrize(
    ("components", "message"),
    [
        (None, "components"),
        ([], "components"),
        ([{"name": "math", "weight": -1}], "weight"),
        ([{"name": "math", "weight": 0}], "weight above 0"),
        ([{"name": "math"}, {"name": "math"}], "distinct `key`"),
        ([{"name": "math", "parameters": {}}], "parameters"),
        ([{"name": "no_such_reward"}], "unknown reward 'no_such_reward'"),
    ],
)
def test_bad_configuration_is_an_error_naming_the_problem(components: Any, message: str) -> None:
    result = score(answer("18", "18"), components)
    assert result.is_error
    assert message in result.reason


def test_every_composite_reference_passes(tmp_path: Path) -> None:
    rows = rows_of(SUITE)
    assert len(rows) >= 100
    outcomes = score_in_parallel(SUITE, rows, tmp_path)
    assert [o.verdict_message() for o in outcomes if not o.passed] == []


def test_shuffled_composite_responses_score_near_zero(tmp_path: Path) -> None:
    outcomes = score_in_parallel(SUITE, shuffled(rows_of(SUITE)[::3]), tmp_path)
    assert all(o.error is None for o in outcomes), [o.error for o in outcomes if o.error]
    assert sum(o.reward or 0.0 for o in outcomes) / len(outcomes) <= 0.05


LOCAL_REWARD = """
from pytest_rewardkit import EvaluateResult, reward_function


@reward_function
def exact(messages, ground_truth=None, **kwargs):
    return EvaluateResult(score=float(messages[-1].content.strip() == str(ground_truth)), reason="exact")
"""


@pytest.mark.parametrize(
    "reward",
    [
        "suite_local_rewards:exact",
        {"name": "composite", "params": {"components": [{"name": "suite_local_rewards:exact"}]}},
        {
            "name": "composite",
            "params": {
                "components": [{"name": "math", "params": {"strict": False}}, {"name": "suite_local_rewards:exact"}]
            },
        },
        {"name": "cosine_length", "params": {"correctness": "suite_local_rewards:exact", "max_length": 10}},
    ],
    ids=["alone", "composite", "composite-with-a-built-in", "cosine-length-correctness"],
)
def test_a_reward_beside_the_suite_resolves_the_same_alone_and_as_a_sub_reward(
    quiet_pytester: pytest.Pytester, reward: Any
) -> None:
    """Regression: a module beside the suite's YAML (not on sys.path) was 'No module named ...'
    as a composite component or a shaping sub-reward, though it scored 1.0 as the suite's reward."""
    suite = quiet_pytester.path / "suite"
    suite.mkdir()
    (suite / "suite_local_rewards.py").write_text(LOCAL_REWARD, encoding="utf-8")
    (suite / "rewardkit.yaml").write_text(yaml.safe_dump({"reward": reward, "threshold": 0.9}), encoding="utf-8")
    row = {"id": "r1", "messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}
    (suite / "dataset.jsonl").write_text(json.dumps({**row, "ground_truth": "4"}) + "\n", encoding="utf-8")
    result = quiet_pytester.runpytest("suite", "--rk-output", "")
    result.assert_outcomes(passed=1)
    assert "No module named" not in result.stdout.str()
