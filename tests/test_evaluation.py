"""Scoring one row: what the reward receives, aggregation, threshold, errors apart from low scores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_rewardkit import EvaluateResult, Message, Row, reward_function
from pytest_rewardkit.config import Options, RewardSpec, Settings, SuiteConfig, combine
from pytest_rewardkit.evaluation import Case, ErrorInfo, RewardFailure, RowError, RowOutcome, evaluate_case
from pytest_rewardkit.suite import run_suite

EXAMPLES_MATH = Path(__file__).resolve().parent.parent / "examples" / "math"


@reward_function
def numeric(messages: list[Message], ground_truth: Any = None, **kwargs: Any) -> EvaluateResult:
    """The response is the score itself ("0.25" scores 0.25)."""
    return EvaluateResult(score=float(messages[-1].text), reason=f"read {messages[-1].text}")


def make_settings(**config: Any) -> Settings:
    config.setdefault("reward", RewardSpec(name="unused:reward"))
    return combine(Path("suite") / "rewardkit.yaml", SuiteConfig(**config), Options())


def make_row(*messages: tuple[str, str], row_id: str = "r1", **fields: Any) -> Row:
    return Row.model_validate({"id": row_id, "messages": [{"role": r, "content": c} for r, c in messages], **fields})


def answered(response: str, **fields: Any) -> Row:
    return make_row(("user", "question"), ("assistant", response), **fields)


def with_responses(settings: Settings, *responses: str) -> Case:
    """A case whose variants are `responses` (as a model would have produced them)."""
    replies = [Message(role="assistant", content=r) for r in responses]
    return Case(settings=settings, row=make_row(("user", "question")), row_id="r1", source=lambda case: replies)


@pytest.mark.parametrize(
    ("aggregate", "expected", "passed"),
    [("mean", 0.6, True), ("min", 0.2, False), ("max", 1.0, True)],
)
def test_variants_aggregate_and_the_row_passes_at_the_threshold(aggregate: str, expected: float, passed: bool) -> None:
    settings = make_settings(aggregate=aggregate, threshold=0.5)
    outcome = evaluate_case(with_responses(settings, "0.2", "0.6", "1.0"), numeric)
    assert outcome.reward == pytest.approx(expected)
    assert outcome.passed is passed
    assert outcome.error is None
    assert [v.passed for v in outcome.variants] == [False, True, True]
    assert [v.index for v in outcome.variants] == [0, 1, 2]


def test_a_reward_equal_to_the_threshold_passes_and_just_below_fails() -> None:
    settings = make_settings(threshold=0.5)
    assert evaluate_case(Case(settings, answered("0.5"), "r1"), numeric).passed
    low = evaluate_case(Case(settings, answered("0.49"), "r1"), numeric)
    assert not low.passed and low.error is None
    with pytest.raises(RewardFailure):
        low.check()


def test_what_the_summary_keeps_of_a_row_is_its_verdicts_without_texts_or_ground_truth() -> None:
    settings = combine(
        Path("suite") / "rewardkit.yaml",
        SuiteConfig(reward=RewardSpec(name="unused:reward"), threshold=0.5),
        Options(group_by=["topic"]),
    )
    row = make_row(("user", "question"), ground_truth="def check(candidate): ...", topic="algebra")
    case = Case(settings, row, "r1", source=lambda case: [Message(role="assistant", content=r) for r in ("0.2", "1")])
    outcome = evaluate_case(case, numeric)
    kept = outcome.without_texts()
    assert (kept.prompt, kept.ground_truth) == ([], None)
    assert [(v.response, v.result) for v in kept.variants] == [(None, None), (None, None)]
    # What the summary and the gate read is all there.
    assert (kept.reward, kept.passed, kept.status, kept.group) == (outcome.reward, True, "pass", {"topic": "algebra"})
    assert [(v.index, v.passed, v.error, v.stats) for v in kept.variants] == [
        (v.index, v.passed, v.error, v.stats) for v in outcome.variants
    ]
    assert outcome.ground_truth == "def check(candidate): ..."  # the written record is untouched


def test_without_a_model_the_last_assistant_message_is_the_response() -> None:
    outcome = evaluate_case(Case(make_settings(), answered("1.0"), "r1"), numeric)
    assert [v.response for v in outcome.variants] == [Message(role="assistant", content="1.0")]
    assert outcome.model == "dataset"
    assert outcome.prompt == [Message(role="user", content="question")]


def test_the_reward_receives_system_prompt_prompt_response_ground_truth_params_and_extra_fields() -> None:
    calls: list[dict[str, Any]] = []

    @reward_function
    def spy(messages: list[Message], ground_truth: Any = None, **kwargs: Any) -> EvaluateResult:
        calls.append({"messages": [(m.role, m.text) for m in messages], "ground_truth": ground_truth, **kwargs})
        return EvaluateResult(score=1.0)

    settings = make_settings(
        system_prompt="Be exact.", reward=RewardSpec(name="unused:reward", params={"strict": True, "level": "config"})
    )
    row = answered("the answer", ground_truth={"value": 3}, level="row", source="gsm8k")
    evaluate_case(Case(settings, row, "r1"), spy)
    assert calls == [
        {
            "messages": [("system", "Be exact."), ("user", "question"), ("assistant", "the answer")],
            "ground_truth": {"value": 3},
            "strict": True,
            "level": "row",  # the row's own field is more specific than the suite's params
            "source": "gsm8k",
        }
    ]


def test_a_row_with_its_own_system_message_does_not_get_a_second_one() -> None:
    row = make_row(("system", "Row system."), ("user", "q"), ("assistant", "1"))
    case = Case(make_settings(system_prompt="Suite system."), row, "r1")
    assert [m.text for m in case.prompt()] == ["Row system.", "q"]


def test_the_reward_named_in_the_settings_is_resolved() -> None:
    settings = make_settings(reward=RewardSpec(name="test_evaluation:numeric"))
    assert evaluate_case(Case(settings, answered("1"), "r1")).passed


def test_a_row_without_an_assistant_turn_and_no_model_is_a_clear_error() -> None:
    outcome = evaluate_case(Case(make_settings(), make_row(("user", "question")), "q7"), numeric)
    assert outcome.error is not None and outcome.error.type == "RowError"
    assert "row q7 has no assistant turn to score and no model to generate one" in outcome.error.message
    assert "--rk-model" in outcome.error.message
    assert (outcome.reward, outcome.passed, outcome.variants) == (None, False, [])
    with pytest.raises(RowError, match="no assistant turn"):
        outcome.check()


def test_a_reward_that_raises_is_an_error_not_a_zero() -> None:
    @reward_function
    def explodes(messages: list[Message], ground_truth: Any = None, **kwargs: Any) -> EvaluateResult:
        raise KeyError("answer_key")

    outcome = evaluate_case(Case(make_settings(), answered("1"), "r1"), explodes)
    assert outcome.reward is None and not outcome.passed
    # The row is typed by its variant's error: what the reward raised.
    assert outcome.error == ErrorInfo(type="KeyError", message="1 of 1 variant(s) could not be scored")
    (variant,) = outcome.variants
    assert variant.result is None and not variant.passed
    assert variant.error is not None and variant.error.type == "KeyError"
    assert variant.error.message.startswith("reward 'explodes' raised KeyError: 'answer_key' (")
    assert "test_evaluation.py:" in variant.error.message
    with pytest.raises(RowError) as caught:
        outcome.check()
    assert not isinstance(caught.value, RewardFailure)


@pytest.mark.parametrize(
    "result",
    [EvaluateResult.invalid("ground truth is not a number"), EvaluateResult(score=0.0, is_score_valid=False)],
)
def test_a_result_marked_invalid_is_an_error_not_a_zero(result: EvaluateResult) -> None:
    @reward_function
    def refuses(messages: list[Message], ground_truth: Any = None, **kwargs: Any) -> EvaluateResult:
        return result

    outcome = evaluate_case(Case(make_settings(threshold=0.0), answered("1"), "r1"), refuses)
    assert outcome.error is not None and outcome.reward is None and not outcome.passed
    (variant,) = outcome.variants
    assert variant.error is not None and variant.error.type == "InvalidScore"
    assert "reward 'refuses' returned an invalid score" in variant.error.message
    assert variant.result == result


def test_one_broken_variant_makes_the_row_an_error() -> None:
    outcome = evaluate_case(with_responses(make_settings(threshold=0.0), "1.0", "not a number", "0.5"), numeric)
    assert outcome.error == ErrorInfo(type="ValueError", message="1 of 3 variant(s) could not be scored")
    assert [v.error is None for v in outcome.variants] == [True, False, True]
    assert outcome.reward is None and not outcome.passed


def test_a_wrong_return_type_is_an_error_naming_the_reward() -> None:
    @reward_function
    def returns_float(messages: list[Message], ground_truth: Any = None, **kwargs: Any) -> Any:
        return 1.0

    outcome = evaluate_case(Case(make_settings(), answered("1"), "r1"), returns_float)
    assert outcome.variants[0].error is not None
    error = outcome.variants[0].error.message
    assert "raised TypeError: reward function 'returns_float' (" in error and "returned float" in error
    assert "test_evaluation.py:" in error and "reward.py" not in error  # the user's function, not the wrapper


def test_an_unknown_reward_is_an_error_for_the_row() -> None:
    settings = make_settings(reward=RewardSpec(name="no_such_module_xyz:reward"))
    outcome = evaluate_case(Case(settings, answered("1"), "r1"))
    assert outcome.error is not None and "cannot import reward 'no_such_module_xyz:reward'" in outcome.error.message
    unknown = evaluate_case(Case(make_settings(reward=RewardSpec(name="no-such-builtin")), answered("1"), "r1"))
    assert unknown.error is not None and unknown.error.type == "UnknownReward"
    assert "unknown reward 'no-such-builtin'" in unknown.error.message


def lacks_kwargs(messages: list[Message], ground_truth: Any = None) -> EvaluateResult:
    return EvaluateResult(score=1.0)


def test_a_suite_reward_with_a_wrong_signature_is_an_error_for_the_row() -> None:
    settings = make_settings(reward=RewardSpec(name="test_evaluation:lacks_kwargs"))
    outcome = evaluate_case(Case(settings, answered("1"), "r1"))
    assert outcome.error is not None and "lacks_kwargs' must accept **kwargs" in outcome.error.message


def test_the_failure_message_shows_each_variant_score_reason_and_excerpt() -> None:
    outcome = evaluate_case(with_responses(make_settings(threshold=0.9), "0.25", "0.75"), numeric)
    message = outcome.verdict_message()
    assert message.splitlines() == [
        "row r1: reward 0.500 < threshold 0.9 (mean of 2 variant(s))",
        "  [0] score 0.250: read 0.25",
        "      response: 0.25",
        "  [1] score 0.750: read 0.75",
        "      response: 0.75",
    ]
    with pytest.raises(RewardFailure, match=r"reward 0\.500 < threshold 0\.9"):
        outcome.check()


def test_a_long_response_is_shown_as_an_excerpt_of_its_start_and_end() -> None:
    @reward_function
    def zero(messages: list[Message], ground_truth: Any = None, **kwargs: Any) -> EvaluateResult:
        return EvaluateResult(score=0.0, reason="wrong")

    response = "START " + "middle\n" * 200 + "FINISH"
    outcome = evaluate_case(Case(make_settings(), answered(response), "r1"), zero)
    excerpt_line = outcome.verdict_message().splitlines()[-1]
    assert excerpt_line.startswith("      response: START middle")
    assert excerpt_line.endswith("middle FINISH")
    assert " … " in excerpt_line
    assert len(excerpt_line) < 200


def test_an_error_message_shows_each_variant_error() -> None:
    outcome = evaluate_case(with_responses(make_settings(), "oops"), numeric)
    lines = outcome.verdict_message().splitlines()
    assert lines[0] == "row r1: 1 of 1 variant(s) could not be scored"
    assert lines[1].startswith("  [0] error: reward 'numeric' raised ValueError: could not convert string to float")
    assert lines[2] == "      response: oops"


def test_an_outcome_survives_the_trip_to_the_controller() -> None:
    settings = make_settings(threshold=0.5, system_prompt="sys")
    outcome = evaluate_case(with_responses(settings, "0.2", "0.9"), numeric)
    assert RowOutcome.model_validate(json.loads(json.dumps(outcome.model_dump(mode="json")))) == outcome


def test_run_suite_scores_a_deliberately_wrong_response_set(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in (EXAMPLES_MATH / "dataset.jsonl").read_text(encoding="utf-8").splitlines()[:4]]
    rows[1]["messages"][-1]["content"] = "I think the answer is \\boxed{3} or \\boxed{4}."
    rows[2]["messages"][-1]["content"] += "\nActually, \\boxed{123456789}"
    del rows[3]["messages"][-1]
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    outcomes = run_suite(EXAMPLES_MATH, dataset=wrong)
    assert [(o.row_id, o.passed, o.error is not None) for o in outcomes] == [
        ("gsm8k-test-0000", True, False),
        ("gsm8k-test-0001", False, False),
        ("gsm8k-test-0002", False, False),
        ("gsm8k-test-0003", False, True),
    ]
    assert {o.dataset for o in outcomes} == {str(wrong)}
