"""The `math` reward: where the final answer is, when two answers are equal, anti-gaming, grader
errors, and the deadline. The competition forms are built from MATH-500's own answers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from pytest_rewardkit import EvaluateResult, math_reward
from pytest_rewardkit.rewards.math import read_answer

COMPETITION = Path(__file__).parent.parent / "examples" / "competition_math" / "dataset.jsonl"
GOLD = {row["id"]: row["ground_truth"] for row in map(json.loads, COMPETITION.read_text().splitlines())}
HOSTILE = r"\boxed{9^{9^{9^{9}}}}"  # sympy would evaluate this tower for hours


def score(response: str, ground_truth: Any, **params: Any) -> EvaluateResult:
    return math_reward([{"role": "assistant", "content": response}], ground_truth=ground_truth, **params)


@pytest.mark.parametrize(
    ("response", "gold"),
    [
        ("She makes 9 * 2 = $<<9*2=18>>18 every day.\n#### 18", "18"),
        ("#### 1,000", "1000"),
        ("So she pays $\\boxed{\\$18}$.", "18"),
        ("Answer: 18", "18"),
        ("A: 18", "18"),
        ("**Final answer:** 18", "18"),
        ("The answer is 18.", "18"),
        ("Answer: $18 per day.", "18"),
        ("Answer: 18 dollars", "18"),
        ("Answer: Janet makes $18 every day.", "18"),
        ("\\boxed{18 dollars}", "18"),
        ("Answer: 1,234,567", "1234567"),
        ("The answer is $\\frac{3}{4}$.", "0.75"),
        ("\\boxed{\\sqrt{8}}", "2\\sqrt{2}"),
        ("\\boxed{\\dfrac{\\sqrt{3}}{2}}", "\\frac{\\sqrt 3}{2}"),
        ("Answer: 25%", "25"),
        ("\\boxed{25\\%}", "25\\%"),
        ("\\boxed{0.\\overline{3}}", "\\frac{1}{3}"),
        ("\\boxed{1.\\overline{36}}", "\\frac{15}{11}"),
        ("Answer: −7", "-7"),
    ],
)
def test_gsm8k_and_latex_answer_forms_are_read(response: str, gold: str) -> None:
    result = score(response, gold)
    assert result.score == 1.0, result.reason
    assert result.metrics["anchored_answer"].score == 1.0


@pytest.mark.parametrize(
    ("gold", "answer", "expected"),
    [
        ("0.5", "\\frac{1}{2}", 1.0),
        ("\\frac{1}{2}", "0.5", 1.0),
        ("1000", "1,000", 1.0),
        ("1,000", "1000", 1.0),
        ("1000", "1,001", 0.0),
        ("18", "\\$18", 1.0),
        ("\\$18", "18", 1.0),
        ("[1, 3)", "[1,3)", 1.0),
        ("[1, 3)", "[1,3]", 0.0),
        ("(1, 3)", "(1, 3]", 0.0),
        ("\\{1, 2, 3\\}", "\\{3, 2, 1\\}", 1.0),
        ("\\{1, 2, 3\\}", "\\{1, 2\\}", 0.0),
        ("2", "3", 0.0),
        ("\\frac{1}{3}", "0.333333", 0.0),  # a rounded decimal is not the exact fraction (decimal_for_exact)
        ("\\frac{1}{3}", "0.33", 0.0),
    ],
)
def test_equivalences(gold: str, answer: str, expected: float) -> None:
    result = score(f"so the result is $\\boxed{{{answer}}}$", gold)
    assert result.score == expected, result.reason


# (row id in examples/competition_math, what a response boxes, expected score).
COMPETITION_FORMS = {
    "tuples and coordinates": [
        ("test/precalculus/807.json", "(3, \\frac{\\pi}{2})", 1.0),
        ("test/precalculus/807.json", "\\left(3, \\pi/2\\right)", 1.0),
        ("test/precalculus/807.json", "(\\frac{\\pi}{2}, 3)", 0.0),
        ("test/intermediate_algebra/956.json", "(6, 31, -1)", 1.0),
        ("test/intermediate_algebra/956.json", "(31, 6, -1)", 0.0),
        ("test/intermediate_algebra/47.json", "(-2, 1)", 1.0),
        ("test/intermediate_algebra/47.json", "(1, -2)", 0.0),
        ("test/precalculus/43.json", "(15, -29)", 1.0),
        ("test/intermediate_algebra/690.json", "(1, -16, -4, 43)", 1.0),
        ("test/intermediate_algebra/690.json", "(1, -16, 43, -4)", 0.0),
    ],
    "intervals": [
        ("test/intermediate_algebra/558.json", "(3, 4]", 1.0),
        ("test/intermediate_algebra/558.json", "(3, 4)", 0.0),
        ("test/intermediate_algebra/558.json", "[3, 4]", 0.0),
        ("test/intermediate_algebra/183.json", "(2, \\infty)", 1.0),
        ("test/intermediate_algebra/183.json", "x > 2", 1.0),
        ("test/intermediate_algebra/183.json", "x \\geq 2", 0.0),
        ("test/intermediate_algebra/1992.json", "(9,36) \\cup (0,9)", 1.0),
        ("test/intermediate_algebra/1992.json", "(0, 36)", 0.0),
        ("test/algebra/101.json", "[-2, 7]", 1.0),
        ("test/algebra/101.json", "-2 \\le x \\le 7", 1.0),
        ("test/algebra/101.json", "[-2, 8]", 0.0),
        ("test/precalculus/695.json", "(-\\infty, 0]", 1.0),
        ("test/algebra/2486.json", "(3/5, 8/3]", 1.0),
        ("test/algebra/2043.json", "(-\\infty,2) \\cup (3,\\infty)", 1.0),
        ("test/algebra/2043.json", "(-\\infty,2] \\cup (3,\\infty)", 0.0),
        ("test/algebra/2043.json", "x < 2 \\text{ or } x > 3", 1.0),
        ("test/algebra/2043.json", "x < 2 \\text{ or } x \\geq 3", 0.0),
        ("test/precalculus/499.json", "[\\pi^2/8, 5\\pi^2/4]", 1.0),
    ],
    "text answers": [
        ("test/algebra/1349.json", "\\text{Evelyn}", 1.0),
        ("test/algebra/1349.json", "Evelyn", 1.0),
        ("test/algebra/1349.json", "\\text{Navin}", 0.0),
        ("test/prealgebra/105.json", "\\text{East}", 1.0),
        ("test/prealgebra/105.json", "\\text{west}", 0.0),
        ("test/intermediate_algebra/128.json", "\\text{even}", 1.0),
        ("test/intermediate_algebra/128.json", "\\text{odd}", 0.0),
        ("test/intermediate_algebra/860.json", "\\text{ellipse}", 1.0),
        ("test/intermediate_algebra/860.json", "\\text{parabola}", 0.0),
        ("test/intermediate_algebra/860.json", "\\text{an ellipse}", 1.0),
        ("test/precalculus/819.json", "\\text{(C)}", 1.0),
        ("test/precalculus/819.json", "C", 1.0),
        ("test/precalculus/819.json", "\\textbf{(C)}", 1.0),
        ("test/precalculus/819.json", "(D)", 0.0),
    ],
    "degrees": [
        ("test/precalculus/927.json", "90", 1.0),
        ("test/precalculus/927.json", "90^{\\circ}", 1.0),
        ("test/precalculus/927.json", "90°", 1.0),
        ("test/precalculus/927.json", "90 \\text{ degrees}", 1.0),
        ("test/precalculus/927.json", "91^\\circ", 0.0),
        ("test/prealgebra/1003.json", "\\frac{270}{7}", 1.0),
        ("test/prealgebra/1003.json", "\\frac{270}{7}^\\circ", 1.0),
        ("test/prealgebra/1003.json", "\\frac{270}{7} degrees", 1.0),
        ("test/prealgebra/1003.json", "38", 0.0),
    ],
    "pi and radicals": [
        ("test/algebra/2036.json", "\\sqrt{117}", 1.0),
        ("test/algebra/2036.json", "3√13", 1.0),
        ("test/algebra/2036.json", "3\\sqrt{14}", 0.0),
        ("test/algebra/2036.json", "10.8167", 0.0),
        ("test/precalculus/1199.json", "\\pi", 1.0),
        ("test/precalculus/1199.json", "3.14", 0.0),
        ("test/geometry/686.json", "2\\pi + 18", 1.0),
        ("test/intermediate_algebra/1111.json", "20000/\\pi", 1.0),
        ("test/intermediate_algebra/1111.json", "6366.2", 0.0),
        ("test/algebra/1519.json", "\\frac{1}{\\sqrt{3}}", 1.0),
    ],
    "complex numbers": [
        ("test/precalculus/990.json", "6-5i", 1.0),
        ("test/precalculus/990.json", "-5i + 6", 1.0),
        ("test/precalculus/990.json", "6+5i", 0.0),
        ("test/precalculus/990.json", "6 - 5\\mathrm{i}", 1.0),
        ("test/intermediate_algebra/1063.json", "1 + 274i", 1.0),
        ("test/intermediate_algebra/1063.json", "1 + 273i", 0.0),
    ],
    "matrices and vectors": [
        ("test/precalculus/263.json", "\\begin{bmatrix} -2 \\\\ -14 \\\\ -7 \\end{bmatrix}", 1.0),
        ("test/precalculus/263.json", "(-2, -14, -7)", 1.0),
        ("test/precalculus/263.json", "(-2, -7, -14)", 0.0),
        ("test/precalculus/263.json", "\\langle -2, -14, -7 \\rangle", 1.0),
        ("test/precalculus/398.json", "\\begin{pmatrix} \\frac{1}{5} \\\\ -\\frac{18}{5} \\end{pmatrix}", 1.0),
        ("test/precalculus/398.json", "(0.2, -3.6)", 1.0),
        ("test/precalculus/398.json", "(-18/5, 1/5)", 0.0),
        ("test/precalculus/920.json", "\\begin{pmatrix}-1&0\\\\0&-1\\end{pmatrix}", 1.0),
        ("test/precalculus/920.json", "\\begin{pmatrix}1&0\\\\0&1\\end{pmatrix}", 0.0),
    ],
    "fractions in any notation": [
        ("test/intermediate_algebra/515.json", "\\frac{4}{3}", 1.0),
        ("test/intermediate_algebra/515.json", "4/3", 1.0),
        ("test/intermediate_algebra/515.json", "1\\frac{1}{3}", 1.0),
        ("test/intermediate_algebra/515.json", "1.\\overline{3}", 1.0),
        ("test/intermediate_algebra/515.json", "1.33", 0.0),
        ("test/prealgebra/153.json", "\\tfrac{5}{9}", 1.0),
        ("test/algebra/2257.json", "\\frac{9}{19}", 1.0),
        ("test/prealgebra/1655.json", "0.34", 1.0),
        ("test/geometry/826.json", "\\frac{9}{5}", 1.0),
        ("test/geometry/826.json", "1.8", 1.0),
        ("test/geometry/826.json", "\\frac{4}{5}", 0.0),
        ("test/algebra/2470.json", "137.5", 1.0),
        ("test/algebra/2470.json", "\\frac{275}{2}", 1.0),
        ("test/number_theory/598.json", "6.72 \\times 10^{-5}", 1.0),
        ("test/counting_and_probability/282.json", "0.5", 1.0),
    ],
    "equations as the answer": [
        ("test/algebra/2193.json", "5", 1.0),
        ("test/algebra/2193.json", "x = 5", 1.0),
        ("test/algebra/2193.json", "x = 6", 0.0),
        ("test/precalculus/323.json", "y = 3 + 2x", 1.0),
        ("test/precalculus/323.json", "y = 2x - 3", 0.0),
        ("test/precalculus/659.json", "5x - 7y + 11z + 4 = 0", 1.0),
        ("test/precalculus/659.json", "5x - 7y + 11z - 4 = 0", 0.0),
    ],
    "units in text": [
        ("test/geometry/473.json", "864", 1.0),
        ("test/geometry/473.json", "864 \\text{ square inches}", 1.0),
        ("test/geometry/473.json", "865 \\text{ square inches}", 0.0),
        ("test/prealgebra/1114.json", "15 \\text{ cm}^2", 1.0),
        ("test/prealgebra/1044.json", "5.4", 1.0),
        ("test/prealgebra/1044.json", "5.4 cents", 1.0),
        ("test/algebra/2626.json", "32,348", 1.0),
        ("test/algebra/2626.json", "\\$32348", 1.0),
        ("test/algebra/2780.json", "18.9", 1.0),
        ("test/algebra/2780.json", "18.91", 0.0),
        ("test/counting_and_probability/508.json", "10080", 1.0),
        ("test/counting_and_probability/508.json", "10{,}080", 1.0),
        ("test/counting_and_probability/508.json", "10\\,080", 1.0),
        ("test/counting_and_probability/508.json", "10 080", 1.0),
        ("test/counting_and_probability/508.json", "10\\,081", 0.0),
        ("test/number_theory/417.json", "11,111,111,100", 1.0),
        ("test/counting_and_probability/737.json", "58500", 1.0),
    ],
    "lists and sets of solutions": [
        ("test/intermediate_algebra/1388.json", "-2, 1", 1.0),
        ("test/intermediate_algebra/1388.json", "x = -2, x = 1", 1.0),
        ("test/intermediate_algebra/1388.json", "1", 0.0),
        ("test/intermediate_algebra/1388.json", "1, -2, 3", 0.0),
        ("test/intermediate_algebra/428.json", "7, 5, 3", 1.0),
        ("test/intermediate_algebra/662.json", "1 + \\sqrt{19}, 1 - \\sqrt{19}", 1.0),
        ("test/intermediate_algebra/662.json", "1 + \\sqrt{19}", 0.0),
        ("test/intermediate_algebra/2015.json", "-2, 1 + \\sqrt{5}, 1 - \\sqrt{5}", 1.0),
        ("test/intermediate_algebra/2015.json", "\\{-2, 1 + \\sqrt{5}\\}", 0.0),
    ],
    "bases and expressions": [
        ("test/number_theory/864.json", "52_{8}", 1.0),
        ("test/number_theory/864.json", "52", 1.0),
        ("test/number_theory/864.json", "42", 0.0),
        ("test/number_theory/847.json", "4210_5", 1.0),
        ("test/intermediate_algebra/431.json", "(b+2)(a+5)", 1.0),
        ("test/intermediate_algebra/431.json", "ab + 2a + 5b + 10", 1.0),
        ("test/prealgebra/1924.json", "2(k+1)", 1.0),
        ("test/precalculus/24313.json", "\\frac{\\cos x}{\\sin x}", 1.0),
        ("test/precalculus/24313.json", "\\tan x", 0.0),
        ("test/intermediate_algebra/1994.json", "-q + p", 1.0),
        ("test/intermediate_algebra/1994.json", "q - p", 0.0),
    ],
}


@pytest.mark.parametrize(
    ("row_id", "answer", "expected"),
    [
        pytest.param(*case, id=f"{form}: {case[1]} ({'=' if case[2] else '!='} {GOLD.get(case[0], '?')})")
        for form, cases in COMPETITION_FORMS.items()
        for case in cases
    ],
)
def test_competition_answer_forms(row_id: str, answer: str, expected: float) -> None:
    result = score(f"Therefore the answer is $\\boxed{{{answer}}}$.", GOLD[row_id])
    assert not result.is_error, result.reason
    assert result.score == expected, result.reason


def test_every_reference_solution_matches_its_own_answer() -> None:
    rows = [json.loads(line) for line in COMPETITION.read_text().splitlines()]
    wrong = [row["id"] for row in rows if score(row["messages"][-1]["content"], row["ground_truth"]).score != 1.0]
    assert wrong == []


@pytest.mark.parametrize(
    "response",
    [
        "It is either \\boxed{3} or \\boxed{4}.",
        "\\boxed{3}, no wait, \\boxed{4}",
        "Answer: 3\nAnswer: 4",
        "#### 3\n#### 4",
    ],
)
def test_several_different_final_answers_score_zero(response: str) -> None:
    result = score(response, "3")
    assert result.score == 0.0
    assert "several different final answers" in result.reason


def test_repeating_the_same_answer_is_not_hedging() -> None:
    assert score("\\boxed{\\frac{1}{2}} ... so again \\boxed{0.5}", "1/2").score == 1.0


def test_boxes_answering_a_several_part_question_are_one_answer() -> None:
    gold = GOLD["test/intermediate_algebra/1388.json"]  # 1,-2
    assert score("The roots are $\\boxed{1}$ and $\\boxed{-2}$.", gold).score == 1.0
    assert score("The roots are $\\boxed{1}$, $\\boxed{-2}$ or $\\boxed{3}$.", gold).score == 0.0
    assert score("The roots are $\\boxed{1}$ or $\\boxed{2}$.", gold).score == 0.0


def test_no_anchored_answer_scores_zero_when_strict() -> None:
    result = score("Janet makes 16 - 3 - 4 = 9 eggs, so 9 * 2 = 18 dollars.", "18")
    assert result.score == 0.0
    assert result.metrics["anchored_answer"].score == 0.0
    assert "no final answer" in result.reason


def test_strict_false_accepts_the_last_expression() -> None:
    assert score("Janet makes 16 - 3 - 4 = 9 eggs, so 9 * 2 = 18 dollars.", "18", strict=False).score == 1.0
    assert score("so the share is $\\frac{1}{2}$ of it", "0.5", strict=False).score == 1.0
    assert score("first 18, then 20", "18", strict=False).score == 0.0
    assert score("no number at all", "18", strict=False).score == 0.0
    deep = continued_fraction(56, "1", "\\frac{18}{1}")
    unreadable = score(f"so it is ${deep}$", "18", strict=False)
    assert unreadable.score == 0.0 and "unreadable" in unreadable.reason, "not its innermost fraction"
    lenient = score("Answer: 20 (the 18 was wrong)", "18", strict=False)
    assert lenient.score == 0.0, "an anchored answer still wins over the last number"


def test_an_unparsable_stated_answer_scores_zero() -> None:
    result = score("\\boxed{\\frac{}", "3")
    assert result.score == 0.0
    assert not result.is_error


def continued_fraction(levels: int, head: str, innermost: str) -> str:
    """`head + 1/(head + 1/(... innermost))` with `levels` fractions, each one brace level deeper."""
    latex = innermost
    for _ in range(levels):
        latex = f"{head}+\\frac{{1}}{{{latex}}}"
    return latex


def continued_fraction_value(levels: int, head: int, innermost: Fraction) -> Fraction:
    value = innermost
    for _ in range(levels):
        value = head + 1 / value
    return value


@pytest.mark.parametrize(
    ("answer", "gold", "depth"),
    [
        # The two: too deep for the parser's recursion, math-verify read the innermost fraction.
        (continued_fraction(56, "1", "\\frac{18}{1}"), "18", 57),  # worth about 1.6
        (continued_fraction(56, "100", "7"), "\\frac{1}{7}", 56),  # worth about 100.01
    ],
)
def test_an_answer_nested_past_the_parser_is_unreadable_not_its_innermost_fraction(
    answer: str, gold: str, depth: int
) -> None:
    assert len(answer) < 1000  # under the length cap: the depth is what refuses it
    result = score(f"\\boxed{{{answer}}}", gold)
    assert result.score == 0.0 and not result.is_error
    assert f"unreadable final answer: brackets nested {depth} deep (limit 10)" in result.reason


def test_a_parse_that_fails_inside_is_unreadable_not_a_fragment(monkeypatch: pytest.MonkeyPatch) -> None:
    from math_verify import parser

    real = parser.latex2sympy

    def recursion_gives_out_on_long_input(latex: str, **kwargs: Any) -> Any:
        if len(latex) > 30:  # as the real parser does on deep input, whatever the stack left to it
            raise RecursionError("maximum recursion depth exceeded")
        return real(latex, **kwargs)

    monkeypatch.setattr(parser, "latex2sympy", recursion_gives_out_on_long_input)
    parser.parse_latex_cached.cache_clear()
    read_answer.cache_clear()
    try:
        answer = continued_fraction(3, "1", "\\frac{18}{1}")
        result = score(f"\\boxed{{{answer}}}", "18")
        assert result.score == 0.0 and not result.is_error
        assert "unreadable final answer: the parser could not read" in result.reason
        assert score("\\boxed{\\frac{18}{1}}", "18").score == 1.0  # the fragment alone reads
    finally:
        parser.parse_latex_cached.cache_clear()
        read_answer.cache_clear()


@pytest.mark.parametrize("response", ["\\boxed{\\frac{1}{=} = 18 = 18}", "\\boxed{17 + = 18 = 18}"])
def test_a_chain_read_only_in_its_last_part_is_unreadable(response: str) -> None:
    result = score(response, "18")
    assert result.score == 0.0 and "unreadable" in result.reason


def test_a_chain_read_whole_is_graded() -> None:
    assert score("\\boxed{x = 2 + 3 = 5}", "5").score == 1.0


def test_a_box_inside_a_box_is_part_of_its_answer() -> None:
    assert score("\\boxed{17 + \\boxed{1}}", "1").score == 0.0
    assert score("\\boxed{17 + \\boxed{1}}", "18").score == 1.0


@pytest.mark.parametrize("levels", [9, 10])
def test_answers_nested_up_to_the_limit_are_read_whole(levels: int) -> None:
    answer = continued_fraction(levels, "1", "2")
    value = continued_fraction_value(levels, 1, Fraction(2))
    assert score(f"\\boxed{{{answer}}}", f"\\frac{{{value.numerator}}}{{{value.denominator}}}").score == 1.0
    wrong = score(f"\\boxed{{{answer}}}", f"\\frac{{{value.numerator + 1}}}{{{value.denominator}}}")
    assert wrong.score == 0.0 and "!= expected" in wrong.reason


@pytest.mark.parametrize(
    ("shape", "innermost", "gold"),
    [
        ("({})", "5", "5"),
        ("\\sqrt{{{}}}", "{}", "2"),  # the 2^depth-th root of 2^(2^depth)
        ("\\left[{}\\right]", "5", "[5]"),
        ("\\frac{{{}}}{{1}}", "5", "5"),
    ],
)
@pytest.mark.parametrize("depth", [9, 10, 11])
def test_nesting_depth_around_the_limit(shape: str, innermost: str, gold: str, depth: int) -> None:
    answer = innermost.format(2 ** (2**depth))
    for _ in range(depth):
        answer = shape.format(answer)
    result = score(f"\\boxed{{{answer}}}", gold, timeout=60)  # deep parentheses parse slowly on a busy machine
    if depth > 10:
        assert result.score == 0.0 and not result.is_error
        assert f"unreadable final answer: brackets nested {depth} deep (limit 10)" in result.reason
    else:
        assert result.score == 1.0, result.reason


def test_a_runaway_answer_is_refused_without_parsing_it() -> None:
    score("\\boxed{1}", "1")  # imports outside the timing
    started = time.monotonic()
    result = score("\\boxed{" + "12" * 5000 + "}", "12")
    assert result.score == 0.0 and "10000 characters is not an answer" in result.reason
    assert time.monotonic() - started < 1
    assert score("so it is \\boxed{12", "12").score == 0.0  # cut off before its closing brace


@pytest.mark.parametrize("gold", ["", "   ", "\\frac{", "#### ???"])
def test_unparsable_gold_is_an_error_not_a_zero(gold: str) -> None:
    result = score("\\boxed{3}", gold)
    assert result.is_error
    assert "ground truth" in result.reason


def test_missing_gold_is_an_error() -> None:
    assert score("\\boxed{3}", None).is_error


@pytest.mark.parametrize(
    ("params", "named"), [({"timeout": 0}, "timeout"), ({"timeout": "5s"}, "timeout"), ({"strict": "no"}, "strict")]
)
def test_broken_params_are_an_error(params: dict[str, Any], named: str) -> None:
    result = score("\\boxed{3}", "3", **params)
    assert result.is_error
    assert named in result.reason


def test_numeric_ground_truth_is_accepted() -> None:
    assert score("#### 18", 18).score == 1.0
    assert score("\\boxed{0.25}", 0.25).score == 1.0


def test_gold_answer_is_parsed_once_per_row() -> None:
    read_answer.cache_clear()
    gold = "\\frac{3}{56}"
    for variant in ("\\boxed{\\dfrac{3}{56}}", "\\boxed{0.5}", "\\boxed{3/56}"):
        score(variant, gold)
    info = read_answer.cache_info()
    assert (info.misses, info.hits) == (4, 2)  # the gold once, each variant once


def _is_cut_off(result: EvaluateResult) -> bool:
    return result.score == 0.0 and not result.is_error and "timeout" in result.metrics


def test_hostile_input_is_cut_off_on_the_main_thread() -> None:
    score("\\boxed{1}", "1")  # imports outside the timing
    started = time.monotonic()
    result = score(HOSTILE, "5", timeout=0.5)
    assert _is_cut_off(result), result.reason
    assert time.monotonic() - started < 3
    assert score("\\boxed{5}", "5", timeout=0.5).score == 1.0  # and grading goes on


def test_hostile_input_is_cut_off_off_the_main_thread() -> None:
    results: list[EvaluateResult] = []

    def grade_in_thread() -> None:
        results.append(score(HOSTILE, "5", timeout=0.5))
        results.append(score("\\boxed{5}", "5", timeout=5))  # the worker is replaced after the kill

    thread = threading.Thread(target=grade_in_thread)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "grading off the main thread hung"
    assert _is_cut_off(results[0]), results[0].reason
    assert results[1].score == 1.0


def test_the_deadline_keeps_an_outer_alarm() -> None:
    fired: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
    try:
        signal.setitimer(signal.ITIMER_REAL, 30)
        assert score("\\boxed{5}", "5", timeout=1).score == 1.0
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 25 < remaining <= 30
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert fired == []


@pytest.mark.parametrize(
    ("gold", "answer", "expected"),
    [
        # The issue's: six-decimal rounding made tiny numbers equal.
        ("\\frac{1}{2^{99}}", "\\frac{1}{2^{98}}", 0.0),
        ("\\frac{1}{2^{100}}", "2^{-99}", 0.0),
        ("\\frac{1}{2^{99}}", "2^{-99}", 1.0),
        ("\\frac{\\pi}{2^{99}}", "\\frac{\\pi}{2^{98}}", 0.0),
        ("\\sqrt{2} \\cdot 10^{-40}", "\\frac{\\sqrt{8}}{2} \\cdot 10^{-40}", 1.0),
        ("10^{30}", "10^{30} + 1", 0.0),
        ("2^{100}", "1267650600228229401496703205376", 1.0),
        # A decimal is the number it writes.
        ("\\frac{1}{2}", "0.5", 1.0),
        ("\\frac{9}{5}", "1.8", 1.0),
        ("18", "18.0", 1.0),
        ("6.72 \\times 10^{-5}", "0.0000672", 1.0),
        ("\\frac{1}{3}", "0.333333", 0.0),
        ("\\frac{1}{3}", "0.3333333333333333", 0.0),
        ("\\pi", "3.14159265358979", 0.0),
        ("\\frac{2}{3}", "0.\\overline{6}", 1.0),
        # Inside tuples, sets, intervals and assignments too.
        ("(\\frac{1}{2^{99}}, 1)", "(\\frac{1}{2^{98}}, 1)", 0.0),
        ("\\{2^{-99}, 1\\}", "\\{1, 2^{-98}\\}", 0.0),
        ("\\{2^{-99}, 1\\}", "\\{1, \\frac{1}{2^{99}}\\}", 1.0),
        ("[0, 2^{-99}]", "[0, 2^{-98}]", 0.0),
        ("2^{-99}", "x = 2^{-98}", 0.0),
        ("2^{-99}", "x = 2^{-99}", 1.0),
        ("\\begin{pmatrix} 2^{-99} \\\\ 1 \\end{pmatrix}", "\\begin{pmatrix} 2^{-98} \\\\ 1 \\end{pmatrix}", 0.0),
    ],
)
def test_numbers_are_equal_exactly_or_to_a_relative_tolerance(gold: str, answer: str, expected: float) -> None:
    result = score(f"\\boxed{{{answer}}}", gold)
    assert result.score == expected, result.reason


@pytest.mark.parametrize(
    ("gold", "answer", "setting", "expected"),
    [
        ("\\frac{1}{3}", "0.333333", "refuse", 0.0),
        ("\\frac{1}{3}", "0.333333", "places:6", 1.0),
        ("\\frac{1}{3}", "0.33", "places:2", 1.0),
        ("\\frac{1}{3}", "0.333", "places:2", 1.0),
        ("\\frac{1}{3}", "0.34", "places:2", 0.0),
        ("\\frac{1}{3}", "0.3", "places:2", 0.0),
        ("\\frac{1}{3}", "\\frac{1}{3}", "places:2", 1.0),
        ("\\pi", "3.14", "refuse", 0.0),
        ("\\pi", "3.14", "places:2", 1.0),
        ("\\pi", "3.15", "places:2", 0.0),
        ("\\sqrt{117}", "10.8167", "places:4", 1.0),
        ("18", "17.999", "places:2", 0.0),  # an integer answer is never approximated
        ("18.9", "18.91", "places:1", 0.0),  # nor a decimal one: the gold is the decimal asked for
    ],
)
def test_decimal_for_exact(gold: str, answer: str, setting: str, expected: float) -> None:
    result = score(f"\\boxed{{{answer}}}", gold, decimal_for_exact=setting)
    assert result.score == expected, result.reason


@pytest.mark.parametrize("setting", ["places", "places:16", "places:-1", "round", 6, None])
def test_a_broken_decimal_for_exact_is_an_error(setting: Any) -> None:
    result = score("\\boxed{3}", "3", decimal_for_exact=setting)
    assert result.is_error and "decimal_for_exact" in result.reason


@pytest.mark.parametrize(
    "response",
    [
        "\\boxed{12}, but it could also be 13",  # the issue's
        "\\boxed{12} or 13",
        "$\\boxed{12}$, or maybe $\\frac{25}{2}$",
        "\\boxed{12}. Perhaps 13.",
        "Answer: 12 or 13",
        "The answer is 12, though it might be 13.",
        # Found by review: offers the first cues missed.
        "\\boxed{12}; alternatively, 13",
        "\\boxed{12}, otherwise 13",
        "\\boxed{12}. However, on reflection the answer is 13.",
        "\\boxed{12} (the answer should be 13 if the bags are counted)",
        "\\boxed{12}. Instead 13, if the bags count.",
    ],
)
def test_a_hedge_after_the_final_answer_is_wrong_by_default(response: str) -> None:
    result = score(response, "12")
    assert result.score == 0.0 and not result.is_error
    assert "hedged final answer" in result.reason
    if "boxed" in response:
        assert score(response, "12", hedging="last").score == 1.0


@pytest.mark.parametrize(
    "response",
    [
        "\\boxed{12} (or 12.0)",
        "so \\boxed{12}. We could prove that 12 is the only one by checking 11 and 13 too.",
        "Only $\\boxed{12}$ leaves remainder 0 when divided by 2, 3, 4, or 6.",
        "\\boxed{12}, which might be easier to see as 3 times 4.",
        "\\boxed{12}. Alternatively, 3 \\times 4 = 12 directly.",
        "\\boxed{12}, otherwise 12 - 0 would not hold.",
        "\\boxed{12}. So the answer is 12 apples.",
        "\\boxed{12}. The answer is not 13.",
    ],
)
def test_reasoning_after_the_final_answer_is_not_a_hedge(response: str) -> None:
    result = score(response, "12")
    assert result.score == 1.0, result.reason


def test_hedging_last_grades_the_last_final_answer() -> None:
    assert score("\\boxed{3}, no wait, \\boxed{4}", "4", hedging="last").score == 1.0
    assert score("\\boxed{3}, no wait, \\boxed{4}", "3", hedging="last").score == 0.0
    assert score("\\boxed{3}, no wait, \\boxed{4}", "4").score == 0.0


def test_a_broken_hedging_is_an_error() -> None:
    result = score("\\boxed{3}", "3", hedging="first")
    assert result.is_error and "hedging" in result.reason


def test_a_cold_process_grades_its_first_answer_under_a_short_deadline(tmp_path: Path) -> None:
    # The imports run before the deadline starts: cut short, they would leave math-verify half imported.
    code = (
        "from pytest_rewardkit import math_reward\n"
        "r = math_reward([{'role': 'assistant', 'content': '\\\\boxed{5}'}], ground_truth='5', timeout=0.05)\n"
        "print(r.score, r.reason)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.stdout.startswith("1.0 answer 5 equals 5"), done.stdout + done.stderr
