"""Shaping and format rewards: each rule, edge cases, bad settings, and use inside `composite`."""

from __future__ import annotations

import math
from typing import Any

import pytest

from pytest_rewardkit import resolve_reward
from pytest_rewardkit.models import EvaluateResult, Message
from pytest_rewardkit.rewards.shaping import (
    cosine_length_reward,
    extract_json,
    json_schema_reward,
    length_reward,
    list_match_reward,
    multiple_choice_reward,
    parse_list,
    reasoning_steps_reward,
    repetition_penalty_reward,
    tag_count_reward,
    think_format_reward,
)


def said(content: str) -> list[Message]:
    return [Message(role="user", content="q"), Message(role="assistant", content=content)]


def run(reward: Any, content: str, ground_truth: Any = None, **params: Any) -> EvaluateResult:
    result: EvaluateResult = reward(said(content), ground_truth=ground_truth, **params)
    return result


# ---- think/answer format ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    ["<think>\nadd them\n</think>\n<answer>\n4\n</answer>", "  <think>x</think><answer>4</answer>\n"],
)
def test_think_answer_format_passes(content: str) -> None:
    assert run(think_format_reward, content).score == 1.0


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("<answer>4</answer>", "<think> appears 0 times"),
        ("<think>a</think><think>b</think><answer>4</answer>", "<think> appears 2 times"),
        ("<answer>4</answer><think>a</think>", "not <think>...</think><answer>...</answer>"),
        ("Sure! <think>a</think><answer>4</answer>", "nothing around it"),
        ("<think>a</think><answer>4</answer> Hope this helps", "nothing around it"),
        ("<think> </think><answer>4</answer>", "the think part is empty"),
        ("<think>a</think><answer></answer>", "the answer part is empty"),
    ],
)
def test_think_answer_format_fails(content: str, reason: str) -> None:
    result = run(think_format_reward, content)
    assert result.score == 0.0 and reason in result.reason


def test_think_format_without_answer_tags_takes_the_rest_as_answer() -> None:
    assert run(think_format_reward, "<think>a</think> The answer is 4.", answer_tag=None).score == 1.0
    assert run(think_format_reward, "<think>a</think>  ", answer_tag=None).score == 0.0


def test_think_format_with_other_tag_names() -> None:
    content = "<reasoning>a</reasoning><final>4</final>"
    assert run(think_format_reward, content, think_tag="reasoning", answer_tag="final").score == 1.0


# ---- tag count --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "score"),
    [
        ("<think>a</think><answer>4</answer>", 1.0),
        ("<think>a</think> 4", 0.5),
        ("<think>a</think><answer>4</answer></answer>", 0.75),
        ("plain", 0.0),
    ],
)
def test_tag_count_gives_a_share_per_tag_used_once(content: str, score: float) -> None:
    assert run(tag_count_reward, content).score == score


def test_tag_count_with_custom_tags_and_bad_setting() -> None:
    assert run(tag_count_reward, "<plan>p</plan>", tags=["plan"]).score == 1.0
    assert run(tag_count_reward, "x", tags=[]).is_error


# ---- length -------------------------------------------------------------------------------------------------


def words(n: int) -> str:
    return " ".join(["w"] * n)


@pytest.mark.parametrize(("n", "score"), [(100, 1.0), (50, 0.5), (0, 0.0), (150, 0.5), (200, 0.0), (400, 0.0)])
def test_length_target_linear(n: int, score: float) -> None:
    assert run(length_reward, words(n), target=100).score == pytest.approx(score)


def test_length_range_is_flat_inside_and_decays_from_each_bound() -> None:
    params = {"min_length": 50, "max_length": 100}
    assert run(length_reward, words(50), **params).score == 1.0
    assert run(length_reward, words(100), **params).score == 1.0
    assert run(length_reward, words(25), **params).score == pytest.approx(0.5)  # 25 short of 50
    assert run(length_reward, words(150), **params).score == pytest.approx(0.5)  # 50 over 100


def test_length_cosine_shape_and_falloff() -> None:
    # a quarter of the way to the falloff: linear 0.75, cosine (1 + cos(pi/4)) / 2
    assert run(length_reward, words(110), target=100, falloff=40).score == pytest.approx(0.75)
    cosine = run(length_reward, words(110), target=100, falloff=40, shape="cosine").score
    assert cosine == pytest.approx((1 + math.cos(math.pi / 4)) / 2)


def test_length_in_chars_and_one_sided_bounds() -> None:
    assert run(length_reward, "abcd", max_length=4, unit="chars").score == 1.0
    assert run(length_reward, "abcdef", max_length=4, unit="chars").score == pytest.approx(0.5)
    assert run(length_reward, words(10_000), min_length=10).score == 1.0


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"target": 10, "max_length": 20},
        {"min_length": 30, "max_length": 20},
        {"target": 10, "unit": "tokens"},
        {"target": 10, "shape": "step"},
        {"target": 10, "falloff": 0},
    ],
)
def test_length_bad_settings_are_errors(params: dict[str, Any]) -> None:
    assert run(length_reward, "x", **params).is_error


def test_length_target_zero_scores_only_empty() -> None:
    assert run(length_reward, "", target=0).score == 1.0
    assert run(length_reward, "a", target=0).score == 0.0


# ---- cosine length scaled by correctness ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("filler", "right", "score"),
    [(0, True, 1.0), (1000, True, 0.5), (0, False, 0.0), (1000, False, 0.25), (500, True, 0.75), (500, False, 0.125)],
)
def test_cosine_length_rewards_brief_right_answers_and_long_wrong_ones(filler: int, right: bool, score: float) -> None:
    answer = "\\boxed{4}" if right else "\\boxed{5}"
    content = answer + "x" * max(filler - len(answer), 0)
    result = run(cosine_length_reward, content, ground_truth="4")
    assert result.score == pytest.approx(score, abs=0.01)
    assert result.metrics["correctness"].score == (1.0 if right else 0.0)


def test_cosine_length_with_another_correctness_reward_and_its_params() -> None:
    result = run(
        cosine_length_reward,
        "Answer: B",
        ground_truth="B",
        correctness="multiple_choice",
        correctness_params={"choices": "ABC"},
        max_length=100,
    )
    assert result.score == pytest.approx(1.0 - 0.5 * (1 - math.cos(math.pi * 9 / 100)) / 2)


@pytest.mark.parametrize(
    "params",
    [{"correctness": "no_such_reward"}, {"max_value_correct": 2.0}, {"max_length": 0}, {"unit": "tokens"}],
)
def test_cosine_length_bad_settings_are_errors(params: dict[str, Any]) -> None:
    assert run(cosine_length_reward, "\\boxed{4}", ground_truth="4", **params).is_error


def test_cosine_length_passes_on_a_correctness_error() -> None:
    result = run(cosine_length_reward, "\\boxed{4}", ground_truth=None)
    assert result.is_error and "correctness reward 'math'" in result.reason


# ---- repetition -----------------------------------------------------------------------------------------


def test_no_repetition_scores_one() -> None:
    assert run(repetition_penalty_reward, "the quick brown fox jumps over the lazy dog").score == 1.0


def test_looping_text_is_penalised_by_its_share_of_repeated_ngrams() -> None:
    result = run(repetition_penalty_reward, "a b c " * 10)  # 28 trigrams, 3 distinct
    assert result.score == pytest.approx(3 / 28)
    assert run(repetition_penalty_reward, "a b c " * 10, max_penalty=0.5).score == pytest.approx(1 - 0.5 * 25 / 28)


def test_repetition_is_case_insensitive_and_needs_enough_words() -> None:
    assert run(repetition_penalty_reward, "Go go GO go", ngram_size=1).score == pytest.approx(0.25)
    assert run(repetition_penalty_reward, "too short", ngram_size=3).score == 1.0


@pytest.mark.parametrize("params", [{"ngram_size": 0}, {"max_penalty": 1.5}])
def test_repetition_bad_settings_are_errors(params: dict[str, Any]) -> None:
    assert run(repetition_penalty_reward, "x", **params).is_error


# ---- reasoning steps --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "score"),
    [
        ("Step 1: read.\nStep 2: add.\nStep 3: check.", 1.0),
        ("1. read\n2. add", 2 / 3),
        ("- read\n* add\n- check\n- answer", 1.0),
        ("First, read. Next, add. Finally, check.", 1.0),
        ("The answer is 4.", 0.0),
        ("In 2023. Firstly nothing", 0.0),
    ],
)
def test_reasoning_steps(content: str, score: float) -> None:
    assert run(reasoning_steps_reward, content).score == pytest.approx(score)


def test_reasoning_steps_min_steps() -> None:
    assert run(reasoning_steps_reward, "1. a\n2. b", min_steps=2).score == 1.0
    assert run(reasoning_steps_reward, "x", min_steps=0).is_error


# ---- multiple choice --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        "B",
        "(b)",
        "**B**",
        "It must be the second. Answer: B",
        "So the answer is (B).",
        "The final answer is \\boxed{B}",
        "\\boxed{\\text{B}}",
        "<think>A or B?</think><answer>B</answer>",
        "Answer: B) Paris",
    ],
)
def test_multiple_choice_reads_the_stated_letter(content: str) -> None:
    assert run(multiple_choice_reward, content, ground_truth="B").score == 1.0


def test_multiple_choice_wrong_letter() -> None:
    result = run(multiple_choice_reward, "Answer: C", ground_truth="B")
    assert result.score == 0.0 and result.reason == "chose C, expected B"


def test_multiple_choice_hedging_scores_zero() -> None:
    result = run(multiple_choice_reward, "Answer: B. Or maybe answer: C", ground_truth="B")
    assert result.score == 0.0 and "several choices" in result.reason


def test_multiple_choice_stronger_anchor_wins() -> None:
    assert run(multiple_choice_reward, "Answer: A is tempting, but \\boxed{B}", ground_truth="B").score == 1.0


def test_multiple_choice_ignores_letters_in_words_and_prose() -> None:
    assert run(multiple_choice_reward, "A bird in the hand.", ground_truth="A").score == 0.0
    assert run(multiple_choice_reward, "The answer is Boston.", ground_truth="B").score == 0.0
    assert "no choice found" in run(multiple_choice_reward, "no idea", ground_truth="A").reason


def test_multiple_choice_ground_truth_forms_and_custom_choices() -> None:
    assert run(multiple_choice_reward, "Answer: B", ground_truth=1).score == 1.0  # 0-based index
    assert run(multiple_choice_reward, "Answer: B", ground_truth="(b)").score == 1.0
    assert run(multiple_choice_reward, "Answer: E", ground_truth="E", choices="ABCDE").score == 1.0
    assert run(multiple_choice_reward, "Answer: E", ground_truth="A").score == 0.0  # E is not a choice


@pytest.mark.parametrize(("ground_truth", "choices"), [("F", "ABCD"), (None, "ABCD"), ("A", "AAB"), ("A", "A1")])
def test_multiple_choice_bad_ground_truth_or_choices_are_errors(ground_truth: Any, choices: str) -> None:
    assert run(multiple_choice_reward, "Answer: A", ground_truth=ground_truth, choices=choices).is_error


# ---- list comparison --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "items"),
    [
        ('["a", "b", 3]', ["a", "b", "3"]),
        ("a, b; c", ["a", "b", "c"]),
        ("- a\n- b\n1. c", ["a", "b", "c"]),
        ("[a, 'b']", ["a", "b"]),
        ("", []),
    ],
)
def test_parse_list(text: str, items: list[str]) -> None:
    assert parse_list(text) == items


def test_unordered_list_match_ignores_order_and_case() -> None:
    assert run(list_match_reward, "Answer: paris, Rome,  Oslo", ["Oslo", "Paris", "Rome"]).score == 1.0
    assert run(list_match_reward, "<answer>Rome, Paris</answer>", ["Paris", "Rome"]).score == 1.0


def test_unordered_list_match_counts_duplicates() -> None:
    assert run(list_match_reward, "a, a, b", ["a", "b"]).score == 0.0
    assert run(list_match_reward, "a, a, b", ["a", "b"], partial=True).score == pytest.approx(0.8)


def test_ordered_list_match() -> None:
    assert run(list_match_reward, "1, 2, 3", [1, 2, 3], ordered=True).score == 1.0
    assert run(list_match_reward, "1, 3, 2", [1, 2, 3], ordered=True).score == 0.0
    assert run(list_match_reward, "1, 3, 2", [1, 2, 3], ordered=True, partial=True).score == pytest.approx(2 / 3)


def test_list_match_case_sensitive_and_text_ground_truth() -> None:
    assert run(list_match_reward, "a, B", "A, b", case_sensitive=True).score == 0.0
    assert run(list_match_reward, "a, B", "A, b").score == 1.0
    assert run(list_match_reward, "x", None).is_error


def test_partial_list_match_scores_f1() -> None:
    result = run(list_match_reward, "a, b, x, y", ["a", "b", "c"], partial=True)
    assert result.score == pytest.approx(2 * 2 / 7)
    assert "2 of 3 expected items" in result.reason


# ---- JSON schema conformance ----------------------------------------------------------------------------

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
}


@pytest.mark.parametrize(
    "content",
    [
        '{"name": "Ada", "age": 36}',
        'Here it is:\n```json\n{"name": "Ada", "age": 36}\n```',
        '<answer>{"name": "Ada", "age": 36}</answer>',
        'Sure: {"name": "Ada", "age": 36} as asked.',
    ],
)
def test_json_answers_conforming_to_the_schema_pass(content: str) -> None:
    assert run(json_schema_reward, content, schema=PERSON).score == 1.0


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('{"name": "Ada"}', "(top level): 'age' is a required property"),
        ('{"name": "Ada", "age": -1}', "age: -1 is less than the minimum of 0"),
        ('{"name": "Ada", "age": "36"}', "age: '36' is not of type 'integer'"),
        ("no json here", "no JSON value found"),
    ],
)
def test_json_answers_breaking_the_schema_fail(content: str, reason: str) -> None:
    result = run(json_schema_reward, content, schema=PERSON)
    assert result.score == 0.0 and reason in result.reason


def test_json_schema_from_a_row_field_as_text() -> None:
    assert run(json_schema_reward, "[1, 2]", schema='{"type": "array", "items": {"type": "integer"}}').score == 1.0


@pytest.mark.parametrize("schema", [None, "{not json", {"type": "whatever"}, {"minimum": "zero"}])
def test_json_schema_bad_schemas_are_errors(schema: Any) -> None:
    assert run(json_schema_reward, "{}", schema=schema).is_error


def test_extract_json_prefers_the_whole_text_then_the_last_fence() -> None:
    assert extract_json("[1]") == [1]
    assert extract_json('```json\n{}\n```\nthen\n```json\n{"a": 1}\n```') == {"a": 1}
    with pytest.raises(ValueError):
        extract_json("{broken")


# ---- registry and composite --------------------------------------------------------------------------------

SHAPING = [
    "think_format",
    "tag_count",
    "length",
    "cosine_length",
    "repetition_penalty",
    "reasoning_steps",
    "multiple_choice",
    "list_match",
    "json_schema",
]


@pytest.mark.parametrize("name", SHAPING)
def test_each_is_a_registered_builtin(name: str) -> None:
    assert resolve_reward(name).name == f"{name}_reward"


def test_shaping_rewards_inside_the_composite_reward() -> None:
    composite = resolve_reward("composite")
    components = [
        {"name": "math", "weight": 2},
        {"name": "think_format"},
        {"name": "length", "params": {"max_length": 50}},
        {"name": "repetition_penalty"},
    ]
    content = "<think>Step 1: 2+2 is 4.</think><answer>\\boxed{4}</answer>"
    result = composite(said(content), ground_truth="4", components=components)
    assert result.score == pytest.approx(1.0)
    looping = "<think>" + "again and " * 40 + "</think><answer>\\boxed{5}</answer>"
    low = composite(said(looping), ground_truth="4", components=components)
    assert low.score < 0.5
    assert low.metrics["think_format"].score == 1.0 and low.metrics["math"].score == 0.0
