"""`math`: is the response's final answer equal to the ground truth? Equivalence is math-verify's
(sympy-backed: fractions, radicals, intervals, sets, percentages); this module only decides which
part of the response *is* the final answer, and refuses responses that hedge between several.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

from pytest_rewardkit.models import EvaluateResult, Message, MetricResult
from pytest_rewardkit.reward import reward_function
from pytest_rewardkit.rewards.deadline import DeadlineExceeded, call_with_deadline

# math-verify warns once that its own (signal-based) timeout is off; ours replaces it.
logging.getLogger("math_verify").setLevel(logging.ERROR)

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_HASHES = re.compile(r"^\s*####\s*(.+?)\s*$", re.MULTILINE)
_ANSWER_LINE = re.compile(
    r"(?:^|\n)\s*(?:\*\*)?(?:final answer|answer|a)(?:\*\*)?\s*(?::|is\b)\s*(?:\*\*)?(.+?)\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_ANSWER_PHRASE = re.compile(r"\bthe (?:final )?answer is[:\s]+(.+?)(?:\.\s|\.?$)", re.IGNORECASE | re.MULTILINE)
_PLAIN_NUMBER = re.compile(
    r"^[^\d\-−\\{}]*?(?P<num>[-−]?\d[\d,]*(?:\.\d+)?|[-−]?\.\d+)\s*(?P<pct>%|\\%|percent)?[^\d\\{}=]*$"
)
_LAST_NUMBER = re.compile(r"[-−]?\d[\d,]*(?:\.\d+)?")


def _boxed_contents(text: str) -> list[str]:
    found = []
    for match in _BOXED.finditer(text):
        depth, start = 1, match.end()
        for i in range(start, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    found.append(text[start:i])
                    break
    return found


def anchored_answers(text: str) -> list[str]:
    """The final answers a response states, by the strongest anchor it uses:
    `\\boxed{}`, then GSM8K's `#### N`, then an 'Answer: N' / 'the answer is N' line."""
    for finder in (_boxed_contents, _HASHES.findall, _ANSWER_LINE.findall, _ANSWER_PHRASE.findall):
        answers = [a.strip() for a in finder(text) if a.strip()]
        if answers:
            return answers
    return []


def clean_answer(answer: str) -> str:
    """LaTeX for one stated answer: strip math delimiters and the prose around a lone number
    ('$18 per day.' -> '18'), keep anything else for math-verify to read."""
    answer = answer.strip().rstrip(".").strip()
    if len(answer) >= 2 and answer.startswith("$") and answer.endswith("$") and answer.count("$") == 2:
        answer = answer[1:-1].strip()
    plain = _PLAIN_NUMBER.match(answer)
    if plain:
        number = plain["num"].replace("−", "-")
        if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", number):
            number = number.replace(",", "")
        return number + ("\\%" if plain["pct"] else "")
    return answer


@functools.lru_cache(maxsize=4096)
def _parse(latex: str) -> tuple[Any, ...]:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    parsed = parse(
        f"\\boxed{{{latex}}}",
        extraction_config=[LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()],
        parsing_timeout=None,
    )
    return tuple(parsed)


def _equal(gold: tuple[Any, ...], pred: tuple[Any, ...]) -> bool:
    from math_verify import verify

    return bool(verify(list(gold), list(pred), timeout_seconds=None))


def gold_answer(ground_truth: str) -> str:
    anchored = anchored_answers(ground_truth)
    return clean_answer(anchored[-1] if anchored else ground_truth)


def grade(response: str, ground_truth: str, strict: bool) -> tuple[float, str, dict[str, Any]]:
    """(score, reason, facts) for one response. Raises ValueError for an unusable gold answer."""
    gold_text = gold_answer(ground_truth)
    gold = _parse(gold_text)  # cached: n variants of a row parse their gold once
    if not any(not isinstance(value, str) for value in gold):
        raise ValueError(f"ground truth {ground_truth!r} is not a parsable math answer")
    stated = [clean_answer(a) for a in anchored_answers(response)]
    anchored = bool(stated)
    if not stated and not strict:
        numbers = _LAST_NUMBER.findall(response)
        stated = [clean_answer(numbers[-1])] if numbers else []
    if not stated:
        return 0.0, "no final answer: state it as \\boxed{...}, '#### N' or 'Answer: N'", {"anchored": False}
    parsed = [_parse(s) for s in stated]
    distinct = [stated[0]]
    for text, value in zip(stated[1:], parsed[1:], strict=True):
        if not _equal(parsed[0], value) and text not in distinct:
            distinct.append(text)
    facts = {"anchored": anchored, "answer": stated[-1]}
    if len(distinct) > 1:
        shown = ", ".join(distinct[:4])
        return 0.0, f"several different final answers ({shown}); expected {gold_text}", facts
    if not any(not isinstance(value, str) for value in parsed[-1]):
        return 0.0, f"final answer {stated[-1]!r} is not a parsable math expression", facts
    if _equal(gold, parsed[-1]):
        return 1.0, f"answer {stated[-1]} equals {gold_text}", facts
    return 0.0, f"answer {stated[-1]} != expected {gold_text}", facts


@reward_function
def math_reward(
    messages: list[Message],
    ground_truth: Any = None,
    strict: bool = True,
    timeout: float = 5.0,
    **kwargs: Any,
) -> EvaluateResult:
    """1.0 when the last message's final answer equals `ground_truth`, else 0.0.

    `strict=False` accepts the last number of a response that anchors no final answer.
    An unparsable or missing ground truth is an error, not a 0.
    """
    if ground_truth is None:
        return EvaluateResult.invalid("the row has no ground_truth to compare with")
    response = messages[-1].text if messages else ""
    try:
        score, reason, facts = call_with_deadline(grade, (response, str(ground_truth), strict), timeout)
    except DeadlineExceeded:
        return EvaluateResult(
            score=0.0,
            reason=f"grading took longer than {timeout:g}s; the answer is treated as wrong",
            metrics={"timeout": MetricResult(score=0.0, reason="math-verify overran its deadline")},
        )
    except ValueError as exc:
        return EvaluateResult.invalid(str(exc))
    anchored = facts["anchored"]
    return EvaluateResult(
        score=score,
        reason=reason,
        metrics={
            "anchored_answer": MetricResult(
                score=1.0 if anchored else 0.0,
                reason="final answer anchored" if anchored else "no anchored final answer",
            )
        },
    )
