"""Message, MetricResult, EvaluateResult and Row: what is accepted, what is refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pytest_rewardkit import EvaluateResult, Message, MetricResult, Row


def test_message_carries_the_openai_fields() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    message = Message(role="assistant", content=None, name="bot", tool_calls=[call])
    assert message.tool_calls == [call]
    assert Message(role="tool", content="42", tool_call_id="c1").tool_call_id == "c1"
    assert message.text == ""


@pytest.mark.parametrize("role", ["system", "user", "assistant", "tool", "developer"])
def test_message_accepts_every_chat_role(role: str) -> None:
    assert Message(role=role, content="hi").role == role


def test_message_refuses_an_unknown_role() -> None:
    with pytest.raises(ValidationError, match="role"):
        Message.model_validate({"role": "robot", "content": "beep"})


def test_message_text_joins_the_text_parts_of_structured_content() -> None:
    parts = [
        {"type": "text", "text": "x = "},
        {"type": "image_url", "image_url": {"url": "u"}},
        {"type": "text", "text": "3"},
    ]
    assert Message(role="user", content=parts).text == "x = 3"


def test_message_to_api_leaves_unset_fields_out() -> None:
    assert Message(role="user", content="hi").to_api() == {"role": "user", "content": "hi"}


@pytest.mark.parametrize("model", [MetricResult, EvaluateResult])
@pytest.mark.parametrize("score", [0.0, 0.5, 1.0])
def test_scores_in_the_unit_interval_are_accepted(model: type[MetricResult | EvaluateResult], score: float) -> None:
    assert model(score=score).score == score


@pytest.mark.parametrize("model", [MetricResult, EvaluateResult])
@pytest.mark.parametrize("score", [-0.01, 1.01, 2, float("nan"), float("inf")])
def test_scores_outside_the_unit_interval_are_refused(model: type[MetricResult | EvaluateResult], score: float) -> None:
    with pytest.raises(ValidationError, match="score"):
        model(score=score)


def test_evaluate_result_needs_a_score() -> None:
    with pytest.raises(ValidationError, match="score"):
        EvaluateResult.model_validate({"reason": "no score"})


def test_evaluate_result_validates_its_metrics() -> None:
    result = EvaluateResult.model_validate({"score": 1, "metrics": {"format": {"score": 0.5, "reason": "ok"}}})
    assert result.metrics["format"] == MetricResult(score=0.5, reason="ok")
    with pytest.raises(ValidationError, match=r"metrics\.format\.score"):
        EvaluateResult.model_validate({"score": 1, "metrics": {"format": {"score": 3}}})


def test_a_valid_result_is_not_an_error() -> None:
    assert not EvaluateResult(score=0.0, reason="wrong answer").is_error


def test_invalid_score_or_error_text_makes_an_error() -> None:
    assert EvaluateResult(score=0.0, is_score_valid=False).is_error
    assert EvaluateResult(score=1.0, error="grader crashed").is_error


def test_invalid_builds_an_error_result_with_the_reason() -> None:
    result = EvaluateResult.invalid("ground truth is not a number")
    assert result.is_error
    assert (result.score, result.is_score_valid) == (0.0, False)
    assert result.error == result.reason == "ground truth is not a number"
    assert EvaluateResult.invalid("bad gold", error="ValueError: x").error == "ValueError: x"


def test_row_keeps_extra_fields_for_the_reward() -> None:
    row = Row.model_validate({"id": "r1", "messages": [{"role": "user", "content": "q"}], "level": 3, "tags": ["a"]})
    assert row.extra == {"level": 3, "tags": ["a"]}
    assert row.ground_truth is None


def test_row_turns_an_integer_id_into_text_but_refuses_a_boolean() -> None:
    messages = [{"role": "user", "content": "q"}]
    assert Row.model_validate({"id": 7, "messages": messages}).id == "7"
    with pytest.raises(ValidationError, match="id"):
        Row.model_validate({"id": True, "messages": messages})


@pytest.mark.parametrize("messages", [[], "hello", [{"content": "no role"}], None])
def test_row_needs_a_non_empty_list_of_messages(messages: object) -> None:
    with pytest.raises(ValidationError, match="messages"):
        Row.model_validate({"messages": messages})
