"""Shaping and format rewards, the ones GRPO recipes add to a correctness reward: the think/answer
format, tag counts, length, cosine length scaled by correctness, n-gram repetition, reasoning
steps, a multiple-choice letter, a list answer and a JSON answer's schema conformance.

Each scores the last message in [0, 1] (1 is best: penalties are 1 minus the penalty) and treats a
bad setting as a grader error, so each works alone or inside a composite reward.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections import Counter
from typing import Any, Literal

from pytest_rewardkit.errors import RewardError
from pytest_rewardkit.models import EvaluateResult, Message, MetricResult
from pytest_rewardkit.resolver import BoundReward, Resolver, resolver_for
from pytest_rewardkit.reward import reward_function


def _response(messages: list[Message]) -> str:
    return messages[-1].text if messages else ""


def _tag_content(text: str, tag: str) -> str | None:
    match = re.search(rf"<{re.escape(tag)}>(.*?)</{re.escape(tag)}>", text, re.DOTALL)
    return match.group(1).strip() if match else None


# ---- think/answer format and tag counts ------------------------------------------------------------------


@reward_function
def think_format_reward(
    messages: list[Message],
    ground_truth: Any = None,
    think_tag: str = "think",
    answer_tag: str | None = "answer",
    **kwargs: Any,
) -> EvaluateResult:
    """1.0 for `<think>...</think>` followed by `<answer>...</answer>` and nothing else (DeepSeek-R1's
    format), each non-empty and each tag used once. `answer_tag=None`: the answer is the text after
    `</think>`."""
    text = _response(messages)
    tags = [think_tag] if answer_tag is None else [think_tag, answer_tag]
    for tag in tags:
        for marker in (f"<{tag}>", f"</{tag}>"):
            if text.count(marker) != 1:
                return EvaluateResult(score=0.0, reason=f"{marker} appears {text.count(marker)} times; use it once")
    think, answer = re.escape(think_tag), re.escape(answer_tag or "")
    tail = rf"\s*<{answer}>(?P<answer>.*)</{answer}>\s*" if answer_tag else r"(?P<answer>.*)"
    match = re.fullmatch(rf"\s*<{think}>(?P<think>.*)</{think}>{tail}", text, re.DOTALL)
    if match is None:
        order = f"<{think_tag}>...</{think_tag}>" + (f"<{answer_tag}>...</{answer_tag}>" if answer_tag else " answer")
        return EvaluateResult(score=0.0, reason=f"the response is not {order} with nothing around it")
    for part in ("think", "answer"):
        if not match[part].strip():
            return EvaluateResult(score=0.0, reason=f"the {part} part is empty")
    return EvaluateResult(score=1.0, reason="reasoning and answer in the expected format")


@reward_function
def tag_count_reward(
    messages: list[Message],
    ground_truth: Any = None,
    tags: list[str] | None = None,
    **kwargs: Any,
) -> EvaluateResult:
    """Partial credit for the format: each opening and closing tag (default think and answer) that
    appears exactly once earns an equal share."""
    names = tags if tags is not None else ["think", "answer"]
    if not names or not all(isinstance(n, str) and n for n in names):
        return EvaluateResult.invalid(f"tags must be a non-empty list of tag names, got {names!r}")
    text = _response(messages)
    markers = [m for name in names for m in (f"<{name}>", f"</{name}>")]
    wrong = [f"{m} x{text.count(m)}" for m in markers if text.count(m) != 1]
    score = 1.0 - len(wrong) / len(markers)
    reason = "each tag appears once" if not wrong else "not exactly once: " + ", ".join(wrong)
    return EvaluateResult(score=score, reason=reason)


# ---- length --------------------------------------------------------------------------------------------

Unit = Literal["words", "chars"]
Shape = Literal["linear", "cosine"]


UNITS = ("words", "chars")
SHAPES = ("linear", "cosine")


def _length(text: str, unit: str) -> int:
    return len(text.split()) if unit == "words" else len(text)


def _decay(x: float, shape: str) -> float:
    """1 at x=0 down to 0 at x>=1, linearly or along half a cosine (flat near both ends)."""
    x = min(max(x, 0.0), 1.0)
    return 1.0 - x if shape == "linear" else (1.0 + math.cos(math.pi * x)) / 2.0


@reward_function
def length_reward(
    messages: list[Message],
    ground_truth: Any = None,
    target: int | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    unit: Unit = "words",
    shape: Shape = "linear",
    falloff: float | None = None,
    **kwargs: Any,
) -> EvaluateResult:
    """1.0 when the response's length is `target` or within [min_length, max_length]; outside, the
    score decays (linear or cosine) to 0 at `falloff` units away. By default `falloff` is the bound
    itself: an empty response and one twice `max_length` long both score 0."""
    if target is not None and (min_length is not None or max_length is not None):
        return EvaluateResult.invalid("give either target or min_length/max_length, not both")
    if target is None and min_length is None and max_length is None:
        return EvaluateResult.invalid("give a target length or a min_length/max_length range")
    low = target if target is not None else (min_length or 0)
    high = target if target is not None else (max_length if max_length is not None else math.inf)
    if low < 0 or high < low or (falloff is not None and falloff <= 0):
        return EvaluateResult.invalid(f"bad length settings: range [{low}, {high}], falloff {falloff}")
    if unit not in UNITS or shape not in SHAPES:
        return EvaluateResult.invalid(f"unit must be one of {UNITS} and shape one of {SHAPES}; got {unit!r}, {shape!r}")
    length = _length(_response(messages), unit)
    if low <= length <= high:
        return EvaluateResult(score=1.0, reason=f"{length} {unit}, within [{low}, {high}]")
    bound = low if length < low else high
    scale = falloff or bound
    score = _decay(abs(length - bound) / scale if scale else 1.0, shape)
    side = "short" if length < low else "long"
    return EvaluateResult(score=score, reason=f"{length} {unit}: too {side} for [{low}, {high}]")


@reward_function
def cosine_length_reward(
    messages: list[Message],
    ground_truth: Any = None,
    correctness: str | BoundReward = "math",
    correctness_params: dict[str, Any] | None = None,
    correct_threshold: float = 1.0,
    max_length: int = 1000,
    unit: Unit = "chars",
    min_value_wrong: float = 0.0,
    max_value_wrong: float = 0.25,
    min_value_correct: float = 0.5,
    max_value_correct: float = 1.0,
    **kwargs: Any,
) -> EvaluateResult:
    """Length shaped by correctness (Yeo et al. 2025, "Demystifying Long Chain-of-Thought Reasoning";
    open-r1's cosine-scaled reward): along a cosine over [0, max_length], a correct response earns
    from max_value_correct (short) down to min_value_correct (long), a wrong one from min_value_wrong
    (short) up to max_value_wrong (long): be brief when right, keep thinking when wrong.

    Correctness is the `correctness` reward (a built-in name or 'module:function', default math) with
    `correctness_params`, counted correct at a score >= correct_threshold. Values are in [0, 1]."""
    values = (min_value_wrong, max_value_wrong, min_value_correct, max_value_correct)
    if not all(0.0 <= v <= 1.0 for v in values) or max_length <= 0 or unit not in UNITS:
        return EvaluateResult.invalid(
            f"values must be in [0, 1], max_length > 0 and unit one of {UNITS}; got {values}, {max_length}, {unit!r}"
        )
    if isinstance(correctness, BoundReward):
        judge = correctness
    else:
        try:
            params = {"correctness": correctness, "correctness_params": correctness_params}
            judge = _bind_correctness(params, resolver_for(None))["correctness"]
        except RewardError as exc:
            return EvaluateResult.invalid(str(exc))
    length = _length(_response(messages), unit)
    verdict = judge.reward(messages, ground_truth=ground_truth, **{**kwargs, **judge.params})
    if verdict.is_error:
        return EvaluateResult.invalid(f"correctness reward {judge.name!r}: {verdict.error or verdict.reason}")
    correct = verdict.score >= correct_threshold
    # Wrong answers swap the ends, so their reward grows with length.
    short, long = (max_value_correct, min_value_correct) if correct else (min_value_wrong, max_value_wrong)
    progress = min(length / max_length, 1.0)
    score = long + (short - long) * _decay(progress, "cosine")
    return EvaluateResult(
        score=score,
        reason=f"{'correct' if correct else 'wrong'} answer, {length} {unit} of {max_length}",
        metrics={
            "correctness": MetricResult(score=verdict.score, reason=verdict.reason),
            "length": MetricResult(score=1.0 - progress, reason=f"{length} {unit} of {max_length}"),
        },
    )


@cosine_length_reward.preparer
def _bind_correctness(params: dict[str, Any], resolver: Resolver) -> dict[str, Any]:
    """The `correctness` reward resolved (beside the suite) and bound to `correctness_params`."""
    name, extra = params.get("correctness", "math"), params.get("correctness_params")
    if isinstance(name, BoundReward):
        return params
    if not isinstance(name, str) or not (extra is None or isinstance(extra, dict)):
        raise RewardError("correctness must be a reward name and correctness_params a mapping of params")
    try:
        bound = resolver.bind(name, extra)
    except RewardError as exc:
        raise RewardError(f"correctness: {exc}") from exc
    return {**params, "correctness": bound, "correctness_params": None}


# ---- repetition and reasoning steps -----------------------------------------------------------------------


@reward_function
def repetition_penalty_reward(
    messages: list[Message],
    ground_truth: Any = None,
    ngram_size: int = 3,
    max_penalty: float = 1.0,
    **kwargs: Any,
) -> EvaluateResult:
    """1 minus `max_penalty` times the share of repeated word n-grams (1 - unique/total, open-r1's
    measure): 1.0 for a response that never repeats itself, lower the more it loops."""
    if ngram_size < 1 or not 0.0 <= max_penalty <= 1.0:
        return EvaluateResult.invalid(
            f"need ngram_size >= 1 and max_penalty in [0, 1], got {ngram_size}, {max_penalty}"
        )
    words = _response(messages).lower().split()
    ngrams = [tuple(words[i : i + ngram_size]) for i in range(len(words) - ngram_size + 1)]
    if not ngrams:
        return EvaluateResult(score=1.0, reason=f"fewer than {ngram_size} words: nothing repeats")
    repeated = 1.0 - len(set(ngrams)) / len(ngrams)
    return EvaluateResult(
        score=1.0 - max_penalty * repeated, reason=f"{repeated:.0%} of {len(ngrams)} {ngram_size}-grams are repeats"
    )


_STEP_MARKERS = re.compile(
    r"^\s*(?:step\s*\d+\s*[:.)]|\d+[.)]\s|[-*•]\s)|\b(?:first|second|third|next|then|finally)\b,",
    re.IGNORECASE | re.MULTILINE,
)


@reward_function
def reasoning_steps_reward(
    messages: list[Message],
    ground_truth: Any = None,
    min_steps: int = 3,
    **kwargs: Any,
) -> EvaluateResult:
    """The share of `min_steps` visible reasoning steps the response shows, up to 1.0: lines starting
    'Step 1:', '1.', '-' or '*', and sentences opening 'First,', 'Next,', 'Finally,'... (open-r1)."""
    if min_steps < 1:
        return EvaluateResult.invalid(f"min_steps must be at least 1, got {min_steps}")
    steps = len(_STEP_MARKERS.findall(_response(messages)))
    return EvaluateResult(score=min(steps / min_steps, 1.0), reason=f"{steps} step marker(s), {min_steps} wanted")


# ---- multiple choice ---------------------------------------------------------------------------------------


def _choice_anchors(letters: str) -> list[re.Pattern[str]]:
    """Where a response states its choice, strongest first."""
    choice = f"[{re.escape(letters)}]"
    return [
        re.compile(rf"\\boxed\{{\s*(?:\\text(?:bf)?\{{)?\s*\(?({choice})\)?\s*\}}"),
        re.compile(rf"<answer>\s*[(\[]?\**({choice})(?![A-Za-z0-9])"),
        re.compile(rf"(?i:\banswer\b)(?:\s+(?i:is))?\s*[:=]?\s*[(\[]?\**\s*({choice})(?![A-Za-z0-9])"),
        re.compile(rf"^\s*[(\[]?\**({choice})\**[)\].:]?\s*$", re.IGNORECASE),
    ]


@reward_function
def multiple_choice_reward(
    messages: list[Message],
    ground_truth: Any = None,
    choices: str = "ABCD",
    **kwargs: Any,
) -> EvaluateResult:
    """1.0 when the response's chosen letter is the ground truth (a letter, or a 0-based index).
    The choice is read from \\boxed{B}, <answer>B</answer>, 'Answer: B' / 'the answer is (B)', or a
    response that is only the letter; naming different letters there is hedging and scores 0."""
    letters = choices.upper()
    if not letters.isalpha() or len(set(letters)) != len(letters):
        return EvaluateResult.invalid(f"choices must be distinct letters, got {choices!r}")
    if isinstance(ground_truth, int) and not isinstance(ground_truth, bool) and 0 <= ground_truth < len(letters):
        expected = letters[ground_truth]
    else:
        expected = str(ground_truth or "").strip().strip("()[].").upper()
    if expected not in letters or len(expected) != 1:
        return EvaluateResult.invalid(f"ground_truth {ground_truth!r} is not one of the choices {letters}")
    text = _response(messages)
    for anchor in _choice_anchors(letters):
        stated = [letter.upper() for letter in anchor.findall(text)]
        if not stated:
            continue
        if len(set(stated)) > 1:
            return EvaluateResult(score=0.0, reason=f"several choices stated ({', '.join(dict.fromkeys(stated))})")
        if stated[0] == expected:
            return EvaluateResult(score=1.0, reason=f"chose {expected}")
        return EvaluateResult(score=0.0, reason=f"chose {stated[0]}, expected {expected}")
    return EvaluateResult(score=0.0, reason="no choice found: end with 'Answer: X' or \\boxed{X}")


# ---- list answers ------------------------------------------------------------------------------------------

_ANSWER_MARKER = re.compile(r"(?:^|\n)\s*(?:\*\*)?(?:final answer|answer)(?:\*\*)?\s*:", re.IGNORECASE)
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")


def _answer_region(text: str) -> str:
    """The part of a response that states the answer: an <answer> tag, else after the last
    'Answer:', else all of it."""
    tagged = _tag_content(text, "answer")
    if tagged is not None:
        return tagged
    markers = list(_ANSWER_MARKER.finditer(text))
    return text[markers[-1].end() :] if markers else text


def parse_list(text: str) -> list[str]:
    """A list from text: a JSON array, else items separated by commas, semicolons or lines (bullets
    and numbering dropped)."""
    stripped = text.strip()
    try:
        data = json.loads(stripped)
    except ValueError:
        data = None
    if isinstance(data, list):
        return [item if isinstance(item, str) else json.dumps(item) for item in data]
    items = re.split(r"[,;\n]", stripped.strip("[]"))
    return [cleaned for item in items if (cleaned := _BULLET.sub("", item).strip().strip("\"'`").strip())]


def _lcs(a: list[str], b: list[str]) -> int:
    row = [0] * (len(b) + 1)
    for x in a:
        previous = 0
        for j, y in enumerate(b, start=1):
            previous, row[j] = row[j], previous + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


@reward_function
def list_match_reward(
    messages: list[Message],
    ground_truth: Any = None,
    ordered: bool = False,
    partial: bool = False,
    case_sensitive: bool = False,
    **kwargs: Any,
) -> EvaluateResult:
    """1.0 when the response's list equals the ground truth (a list, or text parsed like the
    response), in order if `ordered`, as a multiset otherwise. `partial=True` scores the F1 of the
    overlap (the longest common subsequence when ordered). Items compare trimmed, ignoring case
    unless `case_sensitive`."""
    if ground_truth is None:
        return EvaluateResult.invalid("the row has no ground_truth list to compare with")
    gold = (
        [item if isinstance(item, str) else json.dumps(item) for item in ground_truth]
        if isinstance(ground_truth, list)
        else parse_list(str(ground_truth))
    )
    given = parse_list(_answer_region(_response(messages)))

    def norm(items: list[str]) -> list[str]:
        return [" ".join(i.split()) if case_sensitive else " ".join(i.split()).casefold() for i in items]

    want, got = norm(gold), norm(given)
    if ordered:
        common = _lcs(want, got)
        exact = want == got
    else:
        common = sum((Counter(want) & Counter(got)).values())
        exact = Counter(want) == Counter(got)
    f1 = 2 * common / (len(want) + len(got)) if want or got else 1.0
    score = f1 if partial else float(exact)
    kind = "in order" if ordered else "in any order"
    reason = (
        f"the {len(want)} expected items, {kind}"
        if exact
        else f"{common} of {len(want)} expected items matched {kind}; got {given[:8]!r}"
    )
    return EvaluateResult(score=score, reason=reason)


# ---- JSON answers and their schema ----------------------------------------------------------------------


class UnusableSchema(ValueError):
    """A JSON Schema that cannot be used: a grader problem, not the response's."""


@functools.lru_cache(maxsize=8192)  # a dataset cycling through more schemas than this recompiles them all
def _validator(schema_json: str) -> Any:
    from jsonschema import SchemaError
    from jsonschema.validators import validator_for

    schema = json.loads(schema_json)
    cls = validator_for(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        raise UnusableSchema(f"not a valid JSON Schema: {exc.message}") from None
    return cls(schema)


def schema_violation(instance: Any, schema: Any) -> str | None:
    """The first way `instance` breaks `schema` ('path: message'), or None. Raises UnusableSchema."""
    from jsonschema.exceptions import UnknownType

    try:
        validator = _validator(json.dumps(schema, sort_keys=True))
        error = next(iter(validator.iter_errors(instance)), None)
    except UnknownType as exc:
        raise UnusableSchema(f"unknown JSON Schema type {exc.type!r}") from None
    except (TypeError, ValueError) as exc:  # not JSON-serializable
        raise UnusableSchema(f"not a JSON Schema: {exc}") from None
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path) or "(top level)"
    return f"{where}: {error.message}"


_FENCE = re.compile(r"```(?:json)?\s*\n(.*?)```", re.DOTALL)


def extract_json(text: str) -> Any:
    """The JSON value a response gives: all of it, else its last ```json block, else its <answer>
    tag, else the first JSON object or array in it. ValueError if there is none."""
    fenced = _FENCE.findall(text)
    tagged = _tag_content(text, "answer")
    for candidate in (text, fenced[-1] if fenced else None, tagged):
        if candidate is not None:
            try:
                return json.loads(candidate)
            except ValueError:
                pass
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", text):
        try:
            return decoder.raw_decode(text, match.start())[0]
        except ValueError:
            continue
    raise ValueError("no JSON value found (give it alone, in a ```json block, or in <answer> tags)")


@reward_function
def json_schema_reward(
    messages: list[Message],
    ground_truth: Any = None,
    schema: Any = None,
    **kwargs: Any,
) -> EvaluateResult:
    """1.0 when the response gives a JSON value that conforms to `schema` (a JSON Schema, from the
    reward's params or the row's `schema` field; JSON text is read too)."""
    if schema is None:
        return EvaluateResult.invalid("no JSON Schema: set the reward's `schema` param or give rows a `schema` field")
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError as exc:
            return EvaluateResult.invalid(f"`schema` is a string but not JSON: {exc}")
    try:
        value = extract_json(_response(messages))
    except ValueError as exc:
        return EvaluateResult(score=0.0, reason=str(exc), metrics={"json": MetricResult(score=0.0, reason=str(exc))})
    parsed = {"json": MetricResult(score=1.0, reason="the response gives a JSON value")}
    try:
        violation = schema_violation(value, schema)
    except UnusableSchema as exc:
        return EvaluateResult.invalid(f"`schema`: {exc}")
    if violation is not None:
        return EvaluateResult(score=0.0, reason=f"breaks the schema at {violation}", metrics=parsed)
    return EvaluateResult(score=1.0, reason="the JSON answer conforms to the schema", metrics=parsed)
