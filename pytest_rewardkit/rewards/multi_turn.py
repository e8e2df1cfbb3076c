"""`multi_turn`: did a rollout leave the environment where the ground truth leaves it, turn by
turn? The verdict follows BFCL's multi-turn checker (`multi_turn_checker.py`):

- the model's tool calls of each turn are executed again on a fresh environment built from the
  row's `initial_config`; the ground truth's calls of the turn on a second one;
- a turn whose ground truth makes calls fails when the model made none;
- after each such turn the two environments' public attributes must be equal;
- the ground truth's call results of the turn must all be among the model's results so far
  (every earlier turn counts: a model may have fetched something once, earlier);
- a turn whose ground truth is empty is not checked (its calls still run, so later states match).

The first failing turn and why is the reason; `metrics` has one entry per turn. The judgement
re-executes calls from the conversation itself, so nothing a model writes into its messages
(claimed results, a forged state) is taken at its word.

The ground truth is a list of turns, each a list of calls: BFCL's Python call strings
(`cd(folder='docs')`, positional arguments in the tool's parameter order) or objects
`{"name": ..., "arguments": {...}}`. Call strings are read with `ast` and literal values only.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pytest_rewardkit.environment import Environment, EnvironmentSession
from pytest_rewardkit.models import EvaluateResult, Message, MetricResult, Trajectory
from pytest_rewardkit.reward import reward_function

SHOWN = 200  # characters of a value shown in a reason


@dataclass(frozen=True)
class Call:
    name: str
    arguments: dict[str, Any]


def call_name(call: Any) -> str:
    """The function name of a ground-truth call, before it is parsed (to look up its tool)."""
    if isinstance(call, dict):
        return str(call.get("name"))
    return str(call).partition("(")[0].strip()


def parse_call(call: Any, parameter_names: Sequence[str] | None = None) -> Call:
    """A ground-truth call: a Python call string with literal arguments, or a {name, arguments}
    object. Positional arguments take `parameter_names` in order. ValueError says what is wrong."""
    if isinstance(call, dict):
        name, arguments = call.get("name"), call.get("arguments", {})
        if isinstance(arguments, str):
            arguments = json.loads(arguments)
        if not isinstance(name, str) or not isinstance(arguments, dict):
            raise ValueError(f"{call!r} is not {{'name': str, 'arguments': object}}")
        return Call(name, arguments)
    if not isinstance(call, str):
        raise ValueError(f"{call!r} is neither a call string nor a {{name, arguments}} object")
    try:
        node = ast.parse(call.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ValueError(f"{call!r} is not a Python call: {exc.msg}") from None
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise ValueError(f"{call!r} is not a call of a function by name")
    names = list(parameter_names or [])
    if len(node.args) > len(names):
        raise ValueError(f"{call!r}: {len(node.args)} positional arguments, but the tool takes {names}")
    try:
        arguments = {names[i]: ast.literal_eval(arg) for i, arg in enumerate(node.args)}
        for keyword in node.keywords:
            if keyword.arg is None:
                raise ValueError(f"{call!r}: **arguments are not supported")
            arguments[keyword.arg] = ast.literal_eval(keyword.value)
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f"{call!r}: arguments must be literals ({exc})") from None
    return Call(node.func.id, arguments)


def parse_ground_truth(ground_truth: Any) -> list[list[Any]]:
    if isinstance(ground_truth, str):
        ground_truth = json.loads(ground_truth)
    if not isinstance(ground_truth, list) or not all(isinstance(turn, list) for turn in ground_truth):
        raise ValueError("ground_truth must be a list of turns, each a list of calls")
    return ground_truth


def model_turns(messages: Sequence[Message]) -> list[list[tuple[Any, Any]]]:
    """The model's tool calls (name, arguments) per user turn, those that were run (answered by
    tool messages): a turn starts at a user message that follows anything but another user message."""
    turns: list[list[tuple[Any, Any]]] = []
    previous = None
    for position, message in enumerate(messages):
        if message.role == "user" and previous != "user":
            turns.append([])
        previous = message.role
        answered = position + 1 < len(messages) and messages[position + 1].role == "tool"
        # Calls the rollout did not run (it stopped at a limit first) changed nothing: not replayed.
        if message.role == "assistant" and turns and answered:
            for call in message.tool_calls or []:
                function = call.get("function") if isinstance(call, dict) else None
                function = function if isinstance(function, dict) else {}
                turns[-1].append((function.get("name"), function.get("arguments", "{}")))
    return turns


def first_difference(model: Any, expected: Any, path: str = "") -> str | None:
    """Where two states differ first, as `path: model ... != expected ...`; None when equal."""
    if model == expected:
        return None
    if isinstance(model, dict) and isinstance(expected, dict):
        for key in list(expected) + [k for k in model if k not in expected]:
            if key not in model:
                return f"{path}/{key}: missing (expected {_shown(expected[key])})"
            if key not in expected:
                return f"{path}/{key}: unexpected {_shown(model[key])}"
            found = first_difference(model[key], expected[key], f"{path}/{key}")
            if found:
                return found
    if isinstance(model, list) and isinstance(expected, list) and len(model) == len(expected):
        for index, (a, b) in enumerate(zip(model, expected, strict=True)):
            found = first_difference(a, b, f"{path}[{index}]")
            if found:
                return found
    return f"{path or '/'}: {_shown(model)} != expected {_shown(expected)}"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"


def _missing_results(expected: list[str], found: list[str]) -> list[str]:
    """Ground-truth results not among the model's (as a multiset, order free)."""
    remaining = list(found)
    missing = []
    for item in expected:
        if item in remaining:
            remaining.remove(item)
        else:
            missing.append(item)
    return missing


def _run_ground_truth(session: EnvironmentSession, turn: list[Any], index: int) -> list[str]:
    results = []
    for number, raw in enumerate(turn):
        tool = session.tools.get(call_name(raw))
        try:
            call = parse_call(raw, tool.parameter_names if tool else None)
        except ValueError as exc:
            raise ValueError(f"ground_truth turn {index}, call {number}: {exc}") from None
        outcome = session.call(call.name, call.arguments)
        results.append(outcome.content)
    return results


@reward_function
def multi_turn_reward(
    messages: list[Message],
    ground_truth: Any = None,
    environment: Environment | None = None,
    initial_config: Any = None,
    excluded_function: Any = None,
    trajectory: Trajectory | None = None,
    **kwargs: Any,
) -> EvaluateResult:
    """1 when every turn passes BFCL's state and result checks, else 0 with the first failing
    turn. Needs the suite's `environment` (passed for multi-turn rows) and the row's `initial_config`."""
    if environment is None:
        return EvaluateResult.invalid("multi_turn needs the environment: use it in a suite with `environment:`")
    try:
        expected_turns = parse_ground_truth(ground_truth)
        model = environment.start(initial_config, excluded_function)
        reference = environment.start(initial_config)
    except ValueError as exc:
        return EvaluateResult.invalid(f"cannot check this row: {exc}")
    played = model_turns(messages)
    hit = trajectory.limits_hit if trajectory is not None else []
    limits = f" (the rollout reached: {', '.join(hit)})" if hit else ""
    all_results: list[str] = []
    metrics: dict[str, MetricResult] = {}
    failure: str | None = None
    for index, expected in enumerate(expected_turns):
        calls = played[index] if index < len(played) else []
        all_results.extend(model.call(name, arguments).content for name, arguments in calls)
        try:
            expected_results = _run_ground_truth(reference, expected, index)
        except ValueError as exc:
            return EvaluateResult.invalid(f"cannot check this row: {exc}")
        if failure is not None:
            metrics[f"turn_{index}"] = MetricResult(score=0.0, reason="not checked: an earlier turn failed")
            continue
        if not expected:
            metrics[f"turn_{index}"] = MetricResult(score=1.0, reason="no call expected: not checked")
            continue
        why = None
        if not calls:
            reached = "the rollout ended before it" if index >= len(played) else "the model made no tool call"
            why = f"{len(expected)} call(s) expected, but {reached}"
        elif (difference := first_difference(model.state(), reference.state())) is not None:
            why = f"the environment's state differs from the ground truth's: {difference}"
        elif missing := _missing_results(expected_results, all_results):
            why = f"results of the ground truth's calls are not among the model's results so far: {_shown(missing)}"
        if why is not None:
            failure = f"turn {index}: {why}"
        metrics[f"turn_{index}"] = MetricResult(score=0.0 if why else 1.0, reason=why or "state and results match")
    passed = sum(1 for m in metrics.values() if m.score == 1.0)
    metrics["turns_passed"] = MetricResult(
        score=passed / max(len(expected_turns), 1), reason=f"{passed} of {len(expected_turns)} turns"
    )
    if failure is not None:
        return EvaluateResult(score=0.0, reason=failure + limits, metrics=metrics)
    return EvaluateResult(score=1.0, reason=f"all {len(expected_turns)} turns match the ground truth", metrics=metrics)
