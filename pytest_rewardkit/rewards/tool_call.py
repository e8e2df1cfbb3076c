"""`tool_call`: are the response's function calls the expected ones? The verdict is the Berkeley
Function Calling Leaderboard's AST checker (bfcl-eval's `ast_checker.py`), rule for rule, with one
deliberate change: parallel calls are paired by an optimal assignment, not greedily.

The ground truth is BFCL's possible-answer form, `[{function_name: {param: [accepted values]}}]`,
`""` among the accepted values meaning the parameter may be left out, and `[]` meaning no call
should be made. The row's `tools` (OpenAI format) give each parameter's type and the required ones.

Function names: OpenAI tool names cannot contain ".", so, like BFCL for OpenAI-style models, a
ground-truth name such as `math.factorial` stands for the offered tool `math_factorial`
(`openai_name`). A call must use the tool's name exactly as the row offers it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pytest_rewardkit.errors import dotted, validation_problems
from pytest_rewardkit.models import EvaluateResult, Message, MetricResult
from pytest_rewardkit.reward import reward_function
from pytest_rewardkit.rewards.calls import Call, CallReading, read_calls
from pytest_rewardkit.rewards.shaping import UnusableSchema, schema_violation

# BFCL's PYTHON_TYPE_MAPPING, keyed by both its own type names and the JSON Schema names its
# OpenAI conversion gives them (float -> number, dict -> object, tuple -> array, any -> string).
PYTHON_TYPES: dict[str, type] = {
    "string": str,
    "any": str,
    "integer": int,
    "number": float,
    "float": float,
    "boolean": bool,
    "array": list,
    "tuple": list,
    "object": dict,
    "dict": dict,
}
_FLOAT_TYPES = ("number", "float")
# BFCL's standardize_string drops these before comparing strings, lower-cases, and reads ' as ".
_IGNORED_IN_STRINGS = re.compile(r"[ ,./\-_*^]")


def openai_name(name: str) -> str:
    """The OpenAI-safe tool name for a BFCL function name (`math.factorial` -> `math_factorial`):
    OpenAI names must match ^[a-zA-Z0-9_-]{1,64}$, and BFCL replaces "." with "_" for them."""
    return name.replace(".", "_")


class Tool(BaseModel):
    """One offered function: `{"type": "function", "function": {...}}` or the bare function."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1)
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _unwrap(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("type") == "function" and isinstance(data.get("function"), dict):
            return data["function"]
        return data

    @property
    def properties(self) -> dict[str, Any]:
        properties = self.parameters.get("properties", {})
        return properties if isinstance(properties, dict) else {}

    @property
    def required(self) -> list[str]:
        required = self.parameters.get("required", [])
        return required if isinstance(required, list) else []


@dataclass(frozen=True)
class ExpectedCall:
    """One call of the possible answer: the function's BFCL name and each parameter's accepted values."""

    name: str
    accepted: dict[str, list[Any]]


@dataclass(frozen=True)
class Mismatch:
    """Why a call is not the expected one. `kind` is one of wrong_name, unreadable, missing_required,
    unexpected_param, wrong_type, wrong_value, missing_param."""

    kind: str
    message: str


def _json_field(value: Any, field: str) -> Any:
    # Training frameworks often store nested row fields as JSON text (uniform column types).
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"`{field}` is a string but not JSON: {exc.msg} at column {exc.colno}") from None


def parse_expected(ground_truth: Any) -> list[ExpectedCall]:
    """BFCL's possible answer as calls; ValueError names what is wrong with it."""
    form = "BFCL's possible answer [{function_name: {param: [accepted values]}}], or [] for no call"
    if ground_truth is None:
        raise ValueError(f"the row has no ground_truth: give {form}")
    ground_truth = _json_field(ground_truth, "ground_truth")
    if not isinstance(ground_truth, list):
        raise ValueError(f"ground_truth must be a list: {form}; got {type(ground_truth).__name__}")
    expected = []
    for index, item in enumerate(ground_truth):
        where = f"ground_truth[{index}]"
        if not isinstance(item, dict) or len(item) != 1:
            raise ValueError(f"{where} must be an object with exactly one function name: {form}")
        ((name, params),) = item.items()
        if not isinstance(params, dict):
            raise ValueError(f"{where}.{name} must map parameter names to lists of accepted values")
        for param, values in params.items():
            if not isinstance(values, list) or not values:
                raise ValueError(
                    f"{where}.{name}.{param} must be a non-empty list of accepted values "
                    f'(add "" to let the parameter be omitted), got {values!r}'
                )
        expected.append(ExpectedCall(name, params))
    return expected


def parse_tools(tools: Any) -> dict[str, Tool]:
    """The row's offered tools by name; ValueError names the bad entry."""
    tools = _json_field(tools, "tools")
    if not isinstance(tools, list):
        raise ValueError(f"`tools` must be a list of OpenAI tools, got {type(tools).__name__}")
    offered: dict[str, Tool] = {}
    for index, item in enumerate(tools):
        try:
            tool = Tool.model_validate(item)
        except ValidationError as exc:
            problems = "; ".join(validation_problems(exc, lambda loc: dotted(loc) if loc else "tool"))
            raise ValueError(
                f'tools[{index}] is not an OpenAI tool {{"type": "function", "function": {{"name", '
                f'"parameters"}}}}: {problems}'
            ) from None
        offered[tool.name] = tool
    return offered


def offered_tool(name: str, offered: dict[str, Tool]) -> Tool:
    """The offered tool a ground-truth function name stands for: itself, or its OpenAI-safe form."""
    tool = offered.get(name) or offered.get(openai_name(name))
    if tool is None:
        names = ", ".join(sorted(offered)) or "none"
        raise ValueError(f"ground_truth expects a call to {name!r}, but the row's tools offer only: {names}")
    return tool


# ---- BFCL's checker, one call against one expected call -------------------------------------------------


def standardize(text: str) -> str:
    return _IGNORED_IN_STRINGS.sub("", text).lower().replace("'", '"')


def _standardized(value: Any) -> Any:
    return standardize(value) if type(value) is str else value


def _answer_type(accepted: list[Any]) -> type | None:
    # BFCL reads the expected value's type off the first accepted value that is not "".
    for answer in accepted:
        if answer != "":
            return type(answer)
    return None


def _type_name(schema: Any, where: str) -> tuple[str, type]:
    type_name = schema.get("type") if isinstance(schema, dict) else None
    if not isinstance(type_name, str) or type_name not in PYTHON_TYPES:
        raise UnusableSchema(
            f"{where} has type {type_name!r}; the checker knows {', '.join(PYTHON_TYPES)}: fix the tool's schema"
        )
    return type_name, PYTHON_TYPES[type_name]


def _type_mismatch(
    param: str, value: Any, accepted: list[Any], type_name: str, expected: type, nested: type | None
) -> tuple[Mismatch | None, bool]:
    """BFCL's type_checker: (mismatch, is_variable). Types are exact (`type(v) is t`: True is not an
    int, 5.0 is not an int); a value of the accepted answers' own type counts as a "variable"."""
    answer_type = _answer_type(accepted)
    is_variable = answer_type is not None and answer_type is not expected
    if type(value) is expected:
        if nested is None or not isinstance(value, list):
            return None, is_variable
        for item_answers in accepted:
            # An accepted value that is not a list (such as "") skips the check of the items.
            if type(item_answers) is list and any(
                _type_mismatch(param, item, item_answers, "item", nested, None)[0] for item in value
            ):
                continue
            return None, is_variable
        return Mismatch(
            "wrong_type", f"parameter {param!r}: items of {value!r} are not all {nested.__name__}"
        ), is_variable
    if answer_type is not None and type(value) is answer_type:
        return None, True
    return Mismatch(
        "wrong_type", f"parameter {param!r}: expected {type_name}, got {type(value).__name__} {value!r}"
    ), is_variable


def _shown(accepted: list[Any]) -> str:
    values = [a for a in accepted if a != ""]
    optional = " (or omit it)" if len(values) < len(accepted) else ""
    return f"{values!r}{optional}"


def _wrong_value(param: str, value: Any, accepted: list[Any], note: str = "") -> Mismatch:
    expected = f"expected one of {_shown(accepted)}{note}"
    return Mismatch("wrong_value", f"parameter {param!r}: {value!r} is not accepted; {expected}")


def _string_mismatch(param: str, value: str, accepted: list[Any]) -> Mismatch | None:
    if standardize(value) in [standardize(a) for a in accepted if type(a) is str]:
        return None
    return _wrong_value(param, value, accepted, " (ignoring case, spaces and ,./-_*^)")


def _list_mismatch(param: str, value: list[Any], accepted: list[Any]) -> Mismatch | None:
    # Only top-level strings are standardized; "" among the accepted values becomes [] (BFCL iterates it).
    options = [[_standardized(x) for x in a] for a in accepted if isinstance(a, (list, str))]
    if [_standardized(x) for x in value] in options:
        return None
    return _wrong_value(param, value, accepted, " (order matters)")


def _dict_mismatch(param: str, value: Any, accepted: list[Any]) -> Mismatch | None:
    """BFCL's dict_checker: a dict matches an accepted dict when every key it has is accepted with an
    accepted value, and every key it lacks may be omitted ("" among its values)."""
    mismatch: Mismatch | None = Mismatch(
        "wrong_value", f"parameter {param!r}: no accepted dict; expected one of {_shown(accepted)}"
    )
    for answer in accepted:
        if not isinstance(answer, dict):
            continue
        mismatch = _one_dict_mismatch(param, value, answer)
        if mismatch is None:
            return None
    return mismatch


def _one_dict_mismatch(param: str, value: Any, answer: dict[str, Any]) -> Mismatch | None:
    if not isinstance(value, dict):
        return Mismatch("wrong_type", f"parameter {param!r}: expected an object, got {value!r}")
    for key, item in value.items():
        if key not in answer:
            return Mismatch("wrong_value", f"parameter {param!r}: unexpected key {key!r}")
        options = answer[key] if isinstance(answer[key], list) else [answer[key]]
        if _standardized(item) not in [_standardized(a) for a in options]:
            return _wrong_value(f"{param}.{key}", item, options)
    for key, options in answer.items():
        if key not in value and "" not in options:
            return Mismatch("wrong_value", f"parameter {param!r}: missing key {key!r}")
    return None


def _dict_list_mismatch(param: str, value: list[Any], accepted: list[Any]) -> Mismatch | None:
    """BFCL's list_dict_checker: same length as an accepted list, each dict matching in order."""
    mismatch: Mismatch | None = Mismatch(
        "wrong_value", f"parameter {param!r}: no accepted list; expected one of {_shown(accepted)}"
    )
    for answer in accepted:
        if not isinstance(answer, (list, str)) or len(value) != len(answer):
            mismatch = Mismatch("wrong_value", f"parameter {param!r}: wrong number of objects in {value!r}")
            continue
        for item, item_answer in zip(value, answer, strict=True):
            mismatch = _dict_mismatch(param, item, [item_answer])
            if mismatch is not None:
                break
        else:
            return None
    return mismatch


def check_call(call: Call, expected: ExpectedCall, tool: Tool) -> Mismatch | None:
    """BFCL's simple_function_checker: None when `call` is an accepted form of `expected`, else the
    first problem in BFCL's order. Raises UnusableSchema for a parameter type it cannot check."""
    if call.name != tool.name:
        return Mismatch("wrong_name", f"called {call.name!r}, expected {tool.name!r}")
    if call.error is not None:
        return Mismatch("unreadable", call.error)
    arguments, accepted, properties = call.arguments, expected.accepted, tool.properties
    for param in tool.required:
        if param not in arguments:
            return Mismatch("missing_required", f"missing required parameter {param!r}")
    for param, raw in arguments.items():
        if param not in properties or param not in accepted:
            why = "the tool has no such parameter" if param not in properties else "not among the expected arguments"
            return Mismatch("unexpected_param", f"unexpected parameter {param!r} ({why})")
        value = raw
        type_name, expected_type = _type_name(properties[param], f"tool {tool.name!r} parameter {param!r}")
        nested = None
        if expected_type is list and isinstance(properties[param].get("items"), dict):
            nested = _type_name(properties[param]["items"], f"tool {tool.name!r} parameter {param!r} items")[1]
        if type_name in _FLOAT_TYPES and type(value) is int:
            value = float(value)  # an int is accepted for a float, as Python would
        mismatch, is_variable = _type_mismatch(param, value, accepted[param], type_name, expected_type, nested)
        if mismatch is None and not is_variable:
            if expected_type is dict:
                mismatch = _dict_mismatch(param, value, accepted[param])
                if mismatch is None:
                    continue
            elif expected_type is list and nested is dict:
                mismatch = _dict_list_mismatch(param, value, accepted[param])
                if mismatch is None:
                    continue
            elif expected_type is str:
                mismatch = _string_mismatch(param, value, accepted[param])
                if mismatch is None:
                    continue
            elif expected_type is list:
                mismatch = _list_mismatch(param, value, accepted[param])
                if mismatch is None:
                    continue
        if mismatch is not None:
            return mismatch
        if value not in accepted[param]:
            return _wrong_value(param, raw, accepted[param])
    for param, values in accepted.items():
        if param not in arguments and "" not in values:
            return Mismatch("missing_param", f"missing parameter {param!r}; expected one of {_shown(values)}")
    return None


# ---- pairing parallel calls -----------------------------------------------------------------------------


def optimal_matching(compatible: list[list[bool]]) -> list[int | None]:
    """For each expected call (row), the response call (column) it is paired with, pairing as many as
    possible (augmenting paths, Kuhn's algorithm). BFCL pairs greedily, in order: each expected call
    takes the first unused call that passes, which can fail a set of calls that does pair up."""
    owner: dict[int, int] = {}

    def augment(row: int, seen: set[int]) -> bool:
        for column, ok in enumerate(compatible[row]):
            if ok and column not in seen:
                seen.add(column)
                if column not in owner or augment(owner[column], seen):
                    owner[column] = row
                    return True
        return False

    for row in range(len(compatible)):
        augment(row, set())
    pairs: list[int | None] = [None] * len(compatible)
    for column, row in owner.items():
        pairs[row] = column
    return pairs


# ---- schema conformance ---------------------------------------------------------------------------------


def schema_problem(call: Call, offered: dict[str, Tool]) -> str | None:
    """Why `call`'s arguments break its tool's JSON schema, or None. Raises UnusableSchema for a
    schema jsonschema cannot use."""
    if call.error is not None:
        return f"{call.name or 'call'}: {call.error}"
    tool = offered.get(call.name)
    if tool is None:
        return f"no tool is named {call.name!r}"
    try:
        violation = schema_violation(call.arguments, tool.parameters)
    except UnusableSchema as exc:
        raise UnusableSchema(f"tool {tool.name!r}: {exc}") from None
    return None if violation is None else f"{call.name}: {violation}"


# ---- the reward ---------------------------------------------------------------------------------------


@dataclass
class _Verdict:
    pairs: list[int | None]
    mismatches: list[list[Mismatch | None]]
    schema: list[str | None]
    schema_error: str | None


def _judge(calls: list[Call], expected: list[ExpectedCall], offered: dict[str, Tool], strict_schema: bool) -> _Verdict:
    schema: list[str | None] = [None] * len(calls)
    schema_error = None
    try:
        if offered:
            schema = [schema_problem(call, offered) for call in calls]
    except UnusableSchema as exc:
        if strict_schema:
            raise
        schema_error = str(exc)  # BFCL's verdict needs no JSON Schema: report it, keep judging
    tools = [offered_tool(e.name, offered) for e in expected]
    mismatches = [[check_call(call, e, tool) for call in calls] for e, tool in zip(expected, tools, strict=True)]
    compatible = [[m is None and not (strict_schema and schema[j]) for j, m in enumerate(row)] for row in mismatches]
    return _Verdict(optimal_matching(compatible), mismatches, schema, schema_error)


def _explain_missing(index: int, verdict: _Verdict, calls: list[Call], name: str, explained: set[int]) -> str:
    """Why expected call `index` has no partner, told against the call most likely meant for it: an
    unpaired call to the same function not yet used to explain another, the one in the same position first."""
    same_name = [j for j, call in enumerate(calls) if call.name == name]
    if same_name:
        unused = [j for j in same_name if j not in verdict.pairs and j not in explained] or same_name
        j = index if index in unused else unused[0]
        explained.add(j)
        mismatch = verdict.mismatches[index][j]
        if mismatch is None:  # passes the checker but breaks the schema (strict_schema)
            return f"{name}: {verdict.schema[j]} (strict_schema)"
        return f"{name}: {mismatch.message}"
    called = ", ".join(sorted({c.name for c in calls if c.name})) or "nothing"
    return f"no call to {name!r} (the response called {called})"


@reward_function
def tool_call_reward(
    messages: list[Message],
    ground_truth: Any = None,
    tools: Any = None,
    partial: bool = False,
    strict_schema: bool = False,
    **kwargs: Any,
) -> EvaluateResult:
    """1.0 when the last message makes exactly the expected calls under BFCL's AST checker, else 0.0.

    `ground_truth`: BFCL's possible answer (`[]`: no call should be made). `tools`: the row's OpenAI
    tools. `partial=True` scores the fraction of calls paired (over the larger of the expected and
    the made count, so extra calls cost). `strict_schema=True` also requires every call's
    arguments to conform to its tool's JSON schema (otherwise only reported in `metrics`).
    """
    try:
        expected = parse_expected(ground_truth)
        offered = parse_tools(tools) if tools is not None else {}
    except ValueError as exc:
        return EvaluateResult.invalid(str(exc))
    if expected and not offered:
        return EvaluateResult.invalid(
            "the row has no `tools`: the checker needs the offered tools' parameter types and required parameters"
        )
    reading = read_calls(messages[-1]) if messages else CallReading([], "none")
    calls = reading.calls
    try:
        verdict = _judge(calls, expected, offered, strict_schema)
    except ValueError as exc:  # a ground-truth function the tools lack, or an unusable tool schema
        return EvaluateResult.invalid(str(exc))
    return _result(calls, expected, offered, verdict, reading, partial)


def _result(
    calls: list[Call],
    expected: list[ExpectedCall],
    offered: dict[str, Tool],
    verdict: _Verdict,
    reading: CallReading,
    partial: bool,
) -> EvaluateResult:
    metrics: dict[str, MetricResult] = {}
    problems: list[str] = []
    explained: set[int] = set()
    source = f" (read from {reading.format})" if calls else (f" ({reading.note})" if reading.note else "")
    count_ok = len(calls) == len(expected)
    metrics["call_count"] = MetricResult(
        score=1.0 if count_ok else 0.0, reason=f"expected {len(expected)} call(s), got {len(calls)}{source}"
    )
    if not count_ok and expected:
        problems.append(f"expected {len(expected)} call(s), got {len(calls)}{source}")
    for i, (e, pair) in enumerate(zip(expected, verdict.pairs, strict=True)):
        name = offered_tool(e.name, offered).name
        if pair is not None:
            metrics[f"call_{i + 1}"] = MetricResult(score=1.0, reason=f"{name}: matched {calls[pair].describe()}")
            continue
        reason = _explain_missing(i, verdict, calls, name, explained)
        metrics[f"call_{i + 1}"] = MetricResult(score=0.0, reason=reason)
        problems.append(reason)
    paired = {j for j in verdict.pairs if j is not None}
    for j, call in enumerate(calls):
        if j not in paired:
            why = (
                "no call was expected" if not expected else ("unreadable" if call.error else "matches no expected call")
            )
            metrics[f"unexpected_call_{j + 1}"] = MetricResult(score=0.0, reason=f"{call.describe()}: {why}")
            if not expected or call.error or len(calls) > len(expected):
                problems.append(f"unexpected call {call.describe()}: {why}")
    if verdict.schema_error is not None:
        metrics["schema"] = MetricResult(score=0.0, reason=verdict.schema_error, is_score_valid=False)
    elif calls and offered:
        broken = [p for p in verdict.schema if p is not None]
        metrics["schema"] = MetricResult(
            score=1.0 - len(broken) / len(calls),
            reason="; ".join(broken) if broken else "every call's arguments conform to its tool's schema",
        )
    matched = len(paired)
    passed = count_ok and matched == len(expected)
    if partial:
        score = matched / max(len(expected), len(calls)) if calls or expected else 1.0
    else:
        score = 1.0 if passed else 0.0
    if passed:
        reason = f"all {len(expected)} expected call(s) made" if expected else "no call expected and none made"
    else:
        reason = "; ".join(dict.fromkeys(problems))
    return EvaluateResult(score=score, reason=reason, metrics=metrics)
