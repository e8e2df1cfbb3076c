"""The `tool_call` reward: reading calls, BFCL's AST-checker rules, optimal pairing, schema, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pytest_rewardkit import resolve_reward
from pytest_rewardkit.models import EvaluateResult, Message
from pytest_rewardkit.rewards.calls import Call, parse_python_calls, read_calls
from pytest_rewardkit.rewards.tool_call import (
    check_call,
    openai_name,
    optimal_matching,
    parse_expected,
    parse_tools,
    tool_call_reward,
)


def tool(name: str, properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    parameters = {"type": "object", "properties": properties, "required": required or []}
    return {"type": "function", "function": {"name": name, "description": "", "parameters": parameters}}


def reply(*calls: tuple[str, Any]) -> Message:
    """An assistant message with OpenAI tool calls; a str argument is sent as is (raw JSON text)."""
    tool_calls = [
        {
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)},
        }
        for i, (name, args) in enumerate(calls)
    ]
    return Message(role="assistant", content=None, tool_calls=tool_calls)


def text(content: str) -> Message:
    return Message(role="assistant", content=content)


def score(response: Message, ground_truth: Any, tools: list[dict[str, Any]], **params: Any) -> EvaluateResult:
    return tool_call_reward(
        [Message(role="user", content="q"), response], ground_truth=ground_truth, tools=tools, **params
    )


NUM = {"type": "number"}
INT = {"type": "integer"}
STR = {"type": "string"}
BOOL = {"type": "boolean"}
WEATHER = [tool("get_weather", {"city": STR, "unit": STR, "days": INT}, ["city"])]
WEATHER_GT = [{"get_weather": {"city": ["Paris"], "unit": ["celsius", ""], "days": [3]}}]


def one(properties: dict[str, Any], accepted: dict[str, list[Any]], args: dict[str, Any], required: list[str] = []):  # noqa: B006
    """Check one call to `f` the way the reward does (BFCL's simple_function_checker)."""
    tools = parse_tools([tool("f", properties, required)])
    (expected,) = parse_expected([{"f": accepted}])
    return check_call(Call("f", args), expected, tools["f"])


# ---- reading calls ----------------------------------------------------------------------------------


def test_openai_tool_calls_are_read_with_json_arguments() -> None:
    reading = read_calls(reply(("get_weather", {"city": "Paris", "days": 3})))
    assert reading.format == "tool_calls"
    assert reading.calls == [Call("get_weather", {"city": "Paris", "days": 3})]


def test_arguments_given_as_an_object_or_blank_are_read() -> None:
    message = Message(
        role="assistant",
        tool_calls=[
            {"type": "function", "function": {"name": "a", "arguments": {"x": 1}}},
            {"type": "function", "function": {"name": "b", "arguments": ""}},
        ],
    )
    assert read_calls(message).calls == [Call("a", {"x": 1}), Call("b", {})]


def test_malformed_json_arguments_are_a_failed_call_with_a_reason() -> None:
    result = score(reply(("get_weather", '{"city": "Paris",')), WEATHER_GT, WEATHER)
    assert result.score == 0.0 and not result.is_error
    assert "arguments are not valid JSON" in result.reason
    assert "not valid JSON" in result.metrics["call_1"].reason


def test_arguments_that_are_not_an_object_are_a_failed_call() -> None:
    (call,) = read_calls(reply(("get_weather", "[1, 2]"))).calls
    assert call.error == "arguments must be a JSON object, got list"


def test_tool_call_tags_in_content_are_read() -> None:
    content = (
        'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}\n</tool_call>\n'
        '<tool_call>{"name": "get_weather", "parameters": {"city": "Rome", "days": 3}}</tool_call>'
    )
    reading = read_calls(text(content))
    assert reading.format == "tool_call_tags"
    assert [c.arguments["city"] for c in reading.calls] == ["Paris", "Rome"]


def test_a_malformed_tool_call_tag_is_a_failed_call() -> None:
    (call,) = read_calls(text("<tool_call>{name: get_weather}</tool_call>")).calls
    assert call.error is not None and call.error.startswith("<tool_call> block is not JSON")


def test_bfcl_python_syntax_is_parsed() -> None:
    calls = parse_python_calls("[math.factorial(number=5), get_weather(city='Paris', days=-3, opts={'a': [1, 2.5]})]")
    assert calls == [
        Call("math.factorial", {"number": 5}),
        Call("get_weather", {"city": "Paris", "days": -3, "opts": {"a": [1, 2.5]}}),
    ]


@pytest.mark.parametrize(
    ("source", "arguments"),
    [
        ("f(a=1)", {"a": 1}),  # brackets are optional
        ("```\n[f(a=1)]\n```", {"a": 1}),  # BFCL strips code-fence backticks
        ("[f(a=3*4, b=2**3, c=7/2)]", {"a": 12, "b": 8, "c": 3.5}),  # arithmetic, as BFCL's eval would
        (
            "[f(a=some_variable, b=data['k'], c=g(x=1), d=h())]",
            {"a": "some_variable", "b": "data['k']", "c": {"g": {"x": 1}}, "d": "h()"},
        ),
        ("[f(a=(1, 2))]", {"a": [1, 2]}),  # JSON has no tuples
        ("[f(a=...)]", {"a": "..."}),
    ],
)
def test_python_values_are_read_like_bfcls_decoder(source: str, arguments: dict[str, Any]) -> None:
    assert parse_python_calls(source) == [Call("f", arguments)]


@pytest.mark.parametrize(
    "source",
    ["[f(a=__import__('os').getcwd().x)]", "[f(a=10**10**10)]", "[f(a=1/0)]", "[f(a=lambda: 1)]", "[f(a=-'x')]"],
)
def test_python_syntax_is_never_evaluated(source: str) -> None:
    with pytest.raises(ValueError):
        parse_python_calls(source)


def test_positional_arguments_fail_the_call() -> None:
    (call,) = parse_python_calls("[f(5)]")
    assert call.error is not None and "name every argument" in call.error


def test_prose_is_no_call_and_says_why() -> None:
    reading = read_calls(text("I cannot help with that."))
    assert reading.calls == [] and reading.format == "none"
    result = score(text("I cannot help with that."), WEATHER_GT, WEATHER)
    assert result.score == 0.0
    assert "expected 1 call(s), got 0" in result.reason and "not a call list" in result.reason


def test_tool_calls_take_precedence_over_text() -> None:
    message = Message(
        role="assistant",
        content="[other(a=1)]",
        tool_calls=[{"type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}],
    )
    assert [c.name for c in read_calls(message).calls] == ["get_weather"]


def test_python_syntax_response_is_scored() -> None:
    assert score(text("[get_weather(city='Paris', days=3)]"), WEATHER_GT, WEATHER).score == 1.0


# ---- BFCL's checker: types ------------------------------------------------------------------------------


def test_an_int_is_accepted_for_a_float() -> None:
    assert one({"x": NUM}, {"x": [5.0]}, {"x": 5}) is None


@pytest.mark.parametrize(
    ("value", "schema"),
    [(5.0, INT), (1, BOOL), (True, INT), ("5", INT), (5, STR), ([1], INT)],
)
def test_types_are_exact(value: Any, schema: dict[str, Any]) -> None:
    accepted = {"integer": [5], "boolean": [True], "string": ["5"]}[schema["type"]]
    mismatch = one({"x": schema}, {"x": accepted}, {"x": value})
    assert mismatch is not None and mismatch.kind == "wrong_type"


def test_a_value_of_the_accepted_answers_type_is_a_variable() -> None:
    # BFCL: an integer parameter whose accepted answer is a string (a variable name) accepts that string
    assert one({"n": INT}, {"n": ["num_items"]}, {"n": "num_items"}) is None
    assert one({"n": INT}, {"n": ["num_items"]}, {"n": "NUM_ITEMS"}) is not None  # compared exactly


def test_array_items_are_type_checked_without_int_to_float() -> None:
    floats = {"xs": {"type": "array", "items": NUM}}
    mismatch = one(floats, {"xs": [[1.0, 2.0]]}, {"xs": [1, 2]})
    assert mismatch is not None and mismatch.kind == "wrong_type"
    assert one(floats, {"xs": [[1.0, 2.0]]}, {"xs": [1.0, 2.0]}) is None
    # "" first among the accepted values skips the items' check (and [1, 2] == [1.0, 2.0])
    assert one(floats, {"xs": ["", [1.0, 2.0]]}, {"xs": [1, 2]}) is None


# ---- strings -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["New York, NY", "new york ny", "NEW-YORK_NY.", "new/york*ny^"])
def test_strings_ignore_case_spaces_and_some_punctuation(value: str) -> None:
    assert one({"c": STR}, {"c": ["New York, NY"]}, {"c": value}) is None


@pytest.mark.parametrize("value", ["New York!", "New York: NY", "NY", "New Yorker, NY"])
def test_other_characters_matter_in_strings(value: str) -> None:
    mismatch = one({"c": STR}, {"c": ["New York, NY"]}, {"c": value})
    assert mismatch is not None and mismatch.kind == "wrong_value"


def test_single_and_double_quotes_are_the_same_in_strings() -> None:
    assert one({"q": STR}, {"q": ['say "hi"']}, {"q": "say 'hi'"}) is None


def test_a_blank_string_passes_as_omitted() -> None:
    # " " standardizes to "", which is the accepted "may be omitted" marker
    assert one({"u": STR}, {"u": ["celsius", ""]}, {"u": " "}) is None


# ---- optional, required, unexpected parameters -----------------------------------------------------------


def test_empty_string_among_accepted_values_means_may_be_omitted() -> None:
    assert one({"u": STR}, {"u": ["celsius", ""]}, {}) is None
    mismatch = one({"u": STR}, {"u": ["celsius"]}, {})
    assert mismatch is not None and mismatch.kind == "missing_param"


def test_a_required_parameter_may_not_be_omitted_even_if_accepted_as_empty() -> None:
    mismatch = one({"u": STR}, {"u": ["", "celsius"]}, {}, required=["u"])
    assert mismatch is not None and mismatch.kind == "missing_required"


def test_unexpected_parameters_fail() -> None:
    not_in_schema = one({"a": INT}, {"a": [1]}, {"a": 1, "b": 2})
    assert not_in_schema is not None and not_in_schema.kind == "unexpected_param"
    assert "no such parameter" in not_in_schema.message
    not_in_answer = one({"a": INT, "b": INT}, {"a": [1]}, {"a": 1, "b": 2})
    assert not_in_answer is not None and not_in_answer.kind == "unexpected_param"


# ---- lists and dicts ---------------------------------------------------------------------------------


def test_list_order_matters_and_list_strings_are_standardized() -> None:
    names = {"xs": {"type": "array", "items": STR}}
    assert one(names, {"xs": [["New York", "Paris"]]}, {"xs": ["new-york", "PARIS"]}) is None
    mismatch = one(names, {"xs": [["New York", "Paris"]]}, {"xs": ["Paris", "New York"]})
    assert mismatch is not None and mismatch.kind == "wrong_value"


def test_an_empty_list_passes_as_omitted() -> None:
    assert one({"xs": {"type": "array", "items": INT}}, {"xs": ["", [1]]}, {"xs": []}) is None


def test_dict_keys_must_be_accepted_and_missing_keys_optional() -> None:
    budget = {"b": {"type": "object"}}
    accepted = {"b": [{"min": [100], "max": [500, ""], "currency": ["US Dollar"]}]}
    assert one(budget, accepted, {"b": {"min": 100, "currency": "us-dollar"}}) is None
    extra = one(budget, accepted, {"b": {"min": 100, "currency": "USD", "cap": 1}})
    assert extra is not None and "currency" in extra.message  # first problem in key order
    unexpected = one(budget, accepted, {"b": {"min": 100, "currency": "us dollar", "cap": 1}})
    assert unexpected is not None and "unexpected key 'cap'" in unexpected.message
    missing = one(budget, accepted, {"b": {"min": 100}})
    assert missing is not None and "missing key 'currency'" in missing.message


def test_a_list_of_dicts_matches_in_order_and_count() -> None:
    deck = {"deck": {"type": "array", "items": {"type": "object"}}}
    accepted = {"deck": [[{"rank": ["A"], "suit": ["spades"]}, {"rank": ["K"], "suit": ["hearts"]}]]}
    good = [{"rank": "a", "suit": "Spades"}, {"rank": "K", "suit": "hearts"}]
    assert one(deck, accepted, {"deck": good}) is None
    assert one(deck, accepted, {"deck": good[::-1]}) is not None
    short = one(deck, accepted, {"deck": good[:1]})
    assert short is not None and "wrong number of objects" in short.message


# ---- names, counts, irrelevance ----------------------------------------------------------------------------


def test_dotted_bfcl_names_stand_for_their_openai_form() -> None:
    assert openai_name("math.factorial") == "math_factorial"
    tools = [tool("math_factorial", {"number": INT}, ["number"])]
    gt = [{"math.factorial": {"number": [5]}}]
    assert score(reply(("math_factorial", {"number": 5})), gt, tools).score == 1.0
    assert score(reply(("math.factorial", {"number": 5})), gt, tools).score == 0.0
    assert score(reply(("Math_Factorial", {"number": 5})), gt, tools).score == 0.0  # verbatim


def test_a_tool_offered_with_its_dotted_name_is_called_by_that_name() -> None:
    tools = [tool("math.factorial", {"number": INT}, ["number"])]
    gt = [{"math.factorial": {"number": [5]}}]
    assert score(text("[math.factorial(number=5)]"), gt, tools).score == 1.0
    assert score(text("[math_factorial(number=5)]"), gt, tools).score == 0.0


def test_the_call_count_must_be_exact() -> None:
    call = ("get_weather", {"city": "Paris", "days": 3})
    result = score(reply(call, call), WEATHER_GT, WEATHER)
    assert result.score == 0.0
    assert result.metrics["call_count"].score == 0.0
    assert result.metrics["call_1"].score == 1.0 and result.metrics["unexpected_call_2"].score == 0.0
    assert "expected 1 call(s), got 2" in result.reason


@pytest.mark.parametrize(
    "response",
    [reply(("get_weather", {"city": "Paris"})), reply(("no_such_tool", {})), reply(("get_weather", "{bad"))],
)
def test_no_call_expected_and_any_call_fails(response: Message) -> None:
    result = score(response, [], WEATHER)
    assert result.score == 0.0 and not result.is_error
    assert "no call was expected" in result.reason


@pytest.mark.parametrize("response", [text("No tool can do that."), Message(role="assistant", tool_calls=[])])
def test_no_call_expected_and_none_made_passes(response: Message) -> None:
    result = score(response, [], WEATHER)
    assert result.score == 1.0 and result.reason == "no call expected and none made"


def test_no_call_expected_needs_no_tools() -> None:
    assert score(text("Sorry."), [], None).score == 1.0  # type: ignore[arg-type]


# ---- parallel calls: optimal pairing -----------------------------------------------------------------------

PARALLEL_TOOLS = [tool("f", {"x": INT}, ["x"])]
# The first expected call accepts x=1 or x=2, the second only x=1.
PARALLEL_GT = [{"f": {"x": [1, 2]}}, {"f": {"x": [1]}}]


def greedy_pairs(calls: list[Call]) -> list[int | None]:
    """BFCL's parallel_function_checker_no_order: each expected call takes the first unused call that passes."""
    tools = parse_tools(PARALLEL_TOOLS)
    used: list[int] = []
    pairs: list[int | None] = []
    for expected in parse_expected(PARALLEL_GT):
        match = next(
            (j for j, c in enumerate(calls) if j not in used and check_call(c, expected, tools["f"]) is None), None
        )
        pairs.append(match)
        if match is not None:
            used.append(match)
    return pairs


def test_optimal_pairing_passes_where_bfcls_greedy_pairing_fails() -> None:
    calls = [Call("f", {"x": 1}), Call("f", {"x": 2})]
    assert None in greedy_pairs(calls)  # greedy: the first expected call takes x=1, the second finds none
    result = score(reply(("f", {"x": 1}), ("f", {"x": 2})), PARALLEL_GT, PARALLEL_TOOLS)
    assert result.score == 1.0
    assert "matched f(x=2)" in result.metrics["call_1"].reason
    assert "matched f(x=1)" in result.metrics["call_2"].reason


def test_parallel_calls_in_any_order_pass() -> None:
    assert score(reply(("f", {"x": 2}), ("f", {"x": 1})), PARALLEL_GT, PARALLEL_TOOLS).score == 1.0


def test_optimal_matching_finds_a_maximum_assignment() -> None:
    assert optimal_matching([[True, True], [True, False]]) == [1, 0]
    assert optimal_matching([[True, False, False], [True, False, False], [False, True, True]]) == [0, None, 1]
    assert optimal_matching([]) == []


def test_partial_scores_the_fraction_of_calls_paired() -> None:
    gt = [{"f": {"x": [1]}}, {"f": {"x": [2]}}, {"f": {"x": [3]}}, {"f": {"x": [4]}}]
    three_right = reply(("f", {"x": 1}), ("f", {"x": 2}), ("f", {"x": 3}), ("f", {"x": 9}))
    assert score(three_right, gt, PARALLEL_TOOLS, partial=True).score == 0.75
    assert score(three_right, gt, PARALLEL_TOOLS).score == 0.0
    # extra calls cost: 2 paired over 4 made
    spam = reply(("f", {"x": 1}), ("f", {"x": 2}), ("f", {"x": 7}), ("f", {"x": 8}))
    assert score(spam, gt[:2], PARALLEL_TOOLS, partial=True).score == 0.5


# ---- per-call metrics and reasons --------------------------------------------------------------------------


def test_metrics_say_per_call_what_is_wrong() -> None:
    tools = [*WEATHER, tool("get_time", {"zone": STR}, ["zone"])]
    gt = [*WEATHER_GT, {"get_time": {"zone": ["CET"]}}, {"get_weather": {"city": ["Rome"], "days": [2]}}]
    response = reply(
        ("get_weather", {"city": "Paris", "days": "3"}),  # wrong type
        ("get_time", {"zone": "PST"}),  # wrong value
        ("get_weather", {"days": 2}),  # missing required parameter
    )
    metrics = score(response, gt, tools).metrics
    assert "parameter 'days': expected integer, got str '3'" in metrics["call_1"].reason
    assert "parameter 'zone': 'PST' is not accepted; expected one of ['CET']" in metrics["call_2"].reason
    assert "missing required parameter 'city'" in metrics["call_3"].reason
    assert all(metrics[f"unexpected_call_{j}"].score == 0.0 for j in (1, 2, 3))


def test_a_missing_call_is_named() -> None:
    result = score(reply(("get_time", {"zone": "CET"})), WEATHER_GT, [*WEATHER, tool("get_time", {"zone": STR})])
    assert "no call to 'get_weather' (the response called get_time)" in result.reason


def test_success_reason() -> None:
    result = score(reply(("get_weather", {"city": "paris", "days": 3})), WEATHER_GT, WEATHER)
    assert result.score == 1.0 and result.reason == "all 1 expected call(s) made"
    assert result.metrics["call_1"].reason == "get_weather: matched get_weather(city='paris', days=3)"


# ---- schema conformance --------------------------------------------------------------------------------


UNIT_TOOLS = [tool("convert", {"unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, ["unit"])]
UNIT_GT = [{"convert": {"unit": ["celsius"]}}]


def test_schema_conformance_is_a_metric_by_default() -> None:
    result = score(reply(("convert", {"unit": "Celsius"})), UNIT_GT, UNIT_TOOLS)  # BFCL: case-insensitive
    assert result.score == 1.0
    assert result.metrics["schema"].score == 0.0
    assert "'Celsius' is not one of ['celsius', 'fahrenheit']" in result.metrics["schema"].reason


def test_strict_schema_makes_conformance_part_of_the_verdict() -> None:
    result = score(reply(("convert", {"unit": "Celsius"})), UNIT_GT, UNIT_TOOLS, strict_schema=True)
    assert result.score == 0.0
    assert "strict_schema" in result.reason
    assert score(reply(("convert", {"unit": "celsius"})), UNIT_GT, UNIT_TOOLS, strict_schema=True).score == 1.0


def test_a_broken_json_schema_is_reported_not_fatal_unless_strict() -> None:
    tools = [tool("f", {"x": {"type": "integer", "minimum": "zero"}}, ["x"])]
    result = score(reply(("f", {"x": 1})), [{"f": {"x": [1]}}], tools)
    assert result.score == 1.0 and not result.metrics["schema"].is_score_valid
    strict = score(reply(("f", {"x": 1})), [{"f": {"x": [1]}}], tools, strict_schema=True)
    assert strict.is_error and "not a valid JSON Schema" in strict.reason


# ---- grader problems are errors, not zeros ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("ground_truth", "tools", "message"),
    [
        (None, WEATHER, "no ground_truth"),
        ({"get_weather": {}}, WEATHER, "ground_truth must be a list"),
        ([{"a": {}, "b": {}}], WEATHER, "exactly one function name"),
        ([{"get_weather": {"city": "Paris"}}], WEATHER, "non-empty list of accepted values"),
        ("[{not json", WEATHER, "`ground_truth` is a string but not JSON"),
        (WEATHER_GT, None, "the row has no `tools`"),
        (WEATHER_GT, [{"type": "function", "function": {"description": "no name"}}], "tools[0] is not an OpenAI tool"),
        ([{"get_time": {"zone": ["CET"]}}], WEATHER, "tools offer only: get_weather"),
        (WEATHER_GT, [tool("get_weather", {"city": {"type": "date"}})], "has type 'date'"),
    ],
)
def test_grader_problems_are_invalid_results(ground_truth: Any, tools: Any, message: str) -> None:
    result = score(reply(("get_weather", {"city": "Paris"})), ground_truth, tools)
    assert result.is_error
    assert message in result.reason


def test_ground_truth_and_tools_may_be_json_text() -> None:
    response = reply(("get_weather", {"city": "Paris", "days": 3}))
    assert score(response, json.dumps(WEATHER_GT), json.dumps(WEATHER)).score == 1.0  # type: ignore[arg-type]


def test_registered_as_builtin() -> None:
    reward = resolve_reward("tool_call")
    assert reward.fn is tool_call_reward.fn
    messages = [{"role": "assistant", "content": "[get_weather(city='Paris', days=3)]"}]
    assert reward(messages, ground_truth=WEATHER_GT, tools=WEATHER).score == 1.0
