"""`math`: is the response's final answer equal to the ground truth, as a competition grader would
judge it? Reading LaTeX and deciding equivalence is math-verify's job (sympy-backed: fractions in any
notation, radicals, pi, complex numbers, intervals, sets, tuples, matrices, equations, degrees, units,
percentages). This module decides which part of the response *is* the final answer, refuses responses
that hedge between several, and fills the few gaps math-verify leaves (see `_PREPARE` and `_comparable`).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from pytest_rewardkit.errors import RewardError
from pytest_rewardkit.models import EvaluateResult, Message, MetricResult
from pytest_rewardkit.reward import reward_function
from pytest_rewardkit.rewards.deadline import DeadlineExceeded, call_with_deadline

# math-verify warns once that its own (signal-based) timeout is off; ours replaces it.
logging.getLogger("math_verify").setLevel(logging.ERROR)

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_HASHES = re.compile(r"^\s*####\s*(.+?)\s*$", re.MULTILINE)
_ANSWER_LINE = re.compile(
    r"^\s*(?:\*\*)?(?:(?:final )?answer(?:\*\*)?\s*(?::|is\b)|a(?:\*\*)?\s*:)\s*(?:\*\*)?(.+?)\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_ANSWER_PHRASE = re.compile(r"\bthe (?:final )?answer is[:\s]+(.+?)(?:\.\s|\.?$)", re.IGNORECASE | re.MULTILINE)

_REPEATING = re.compile(r"(?<![\d.])(-?)(\d*)\.(\d*)\\overline\s*\{(\d+)\}")
# Notation latex2sympy does not read, rewritten into notation it does.
_PREPARE: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"\s*°"), r"^\\circ"),
    (re.compile(r"√\s*(\d+|[a-zA-Z])"), r"\\sqrt{\1}"),
    (re.compile(r"√"), r"\\sqrt"),
    (re.compile(r"\\(?:mathrm|text|mathit)\s*\{i\}"), "i"),  # the imaginary unit set upright
    (re.compile(r"\\langle"), "("),  # vectors written <1, 2>
    (re.compile(r"\\rangle"), ")"),
    # Digit groups set apart by a thin space, as SI style writes 10\,080 (spaces vanish in math mode).
    (re.compile(r"(?<![\d.])\d{1,3}(?:(?:\\,|\s)\d{3})+(?![\d.])"), lambda m: re.sub(r"\\,|\s", "", m[0])),
    (re.compile(r"(\\text\s*\{\s*)(?:an?|the)\s+", re.IGNORECASE), r"\1"),  # \text{an ellipse}
)
# Math words that are not prose: a bare `sqrt(2)` or `pi` is still an expression.
_MATH_WORDS = frozenset({"sqrt", "sin", "cos", "tan", "cot", "sec", "csc", "log", "exp", "inf", "infty", "pi", "mod"})
_TEXT_COMMAND = re.compile(r"\\(?:text\w*|mbox|math\w+)\s*\{[^{}]*\}")
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")
# A number or closing brace followed by words only: '18 dollars per day', '\frac{270}{7} degrees'.
_TRAILING_WORDS = re.compile(r"^(.*[\d}])\s+([A-Za-z][A-Za-z\s.]*)$", re.DOTALL)
_MATH_ENV = re.compile(r"\$[^$]+\$|\\\(.+?\\\)|\\\[.+?\\\]", re.DOTALL)
# A sentence states its answer first: 'Answer: 20 apples (4 boxes of 5)', 'The answer is 18. The 9 eggs...'.
_AFTER_FIRST_CLAUSE = re.compile(r"^(\D*\d.*?)(?:\s*[(;—]|\.\s)", re.DOTALL)
# MATH-500's longest answer has 53 characters. Parsing is slow on long LaTeX (a second per few hundred
# characters), and degenerate generations loop inside \boxed{...}: past this, it is not an answer.
_MAX_ANSWER_CHARS = 1000
# MATH-500's answers nest brackets at most 2 deep. Parsing time grows steeply with depth (20 nested
# parentheses take seconds), and near 55 nested fractions the parser's recursion gives out, where
# math-verify would go on to read a fragment of the answer: past this depth, it is not an answer.
_MAX_NESTING = 10
_BRACKETS = re.compile(r"[^{}()\[\]]+")
# Numbers are compared evaluated to this many digits. Two readings of one exact number (2\sqrt{2},
# \sqrt{8}) then differ only far past the relative tolerance; distinct numbers, however small or
# large, differ far before it.
_DIGITS = 40
_RELATIVE_TOLERANCE = 1e-25
# Past this exponent a power is not expanded exactly (2^(10^10) has a billion digits).
_MAX_EXACT_EXPONENT = 10_000
# Words offering another answer beside the final one: '\boxed{12}, but it could also be 13',
# '\boxed{12} or 13', 'Answer: 12 or 13', '\boxed{12}; alternatively, 13', 'However, the answer is
# 13'. Reasoning that goes on after the box ('we could prove that...', 'divisible by 2, 3, or 6')
# is not an offer; 'or' counts only right after the answer.
_HEDGE_CUE = (
    r"\b(?:(?:could|might|may)\s+(?:also\s+|instead\s+|even\s+)?be|maybe|perhaps|possibly|or else|not sure"
    r"|alternatively|otherwise|instead|(?:answer|result)\s+(?:is|would\s+be|should\s+be))\b"
)
_HEDGE_AFTER = re.compile(rf"^[\s$.,;:)\]}}]*(?:and/)?or\b|{_HEDGE_CUE}", re.IGNORECASE)
_HEDGE_WITHIN = re.compile(rf"\bor\b|{_HEDGE_CUE}", re.IGNORECASE)
# What may stand between an offer and the value it offers: 'or maybe $\boxed{13}$', 'alternatively, 13'.
_OFFERED = re.compile(r"[\s$:=(,]*(?:\\boxed\s*\{)?\s*")
_CANDIDATE = re.compile(r"\\[dt]?frac\s*\{[^{}]*\}\s*\{[^{}]*\}|(?<![\w.^_])-?\d+(?:\.\d+)?(?:/\d+)?")
# A number that starts a calculation ('alternatively, 3 times 4 is 12') is reasoning, not an offer.
_OPERAND = re.compile(r"\s*(?:[-+*/×·^]|\\times|\\cdot|times\b|plus\b|minus\b|divided\b)", re.IGNORECASE)
_HEDGINGS = ("wrong", "last")
_LEADING_WORDS = re.compile(r"^(?:[A-Za-z']+[\s,:]+)+(?=[-−$(\[\d\\{])")


@functools.cache
def _sympy() -> Any:
    """sympy, imported on first use: a second of start-up that only grading needs. The graders use
    its names through this rather than a `from sympy import ...` each: that statement costs more per
    call than most of the checks it would serve, and they run several times per response."""
    import sympy

    return sympy


@functools.cache
def _percent() -> Any:
    """The factor math-verify reads '%' as: an unevaluated 1/100."""
    sympy = _sympy()
    return sympy.UnevaluatedExpr(sympy.Rational(1, 100))


def _boxed_contents(text: str) -> list[str]:
    """The contents of the outermost boxes (a box inside a box is part of its answer)."""
    found = []
    end = 0
    for match in _BOXED.finditer(text):
        if match.start() < end:
            continue
        depth, start = 1, match.end()
        for i in range(start, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    found.append(text[start:i])
                    end = i
                    break
    return found


def _nesting(text: str) -> int:
    """How deep brackets of any kind ({, (, [ and their \\left forms) nest: a fraction inside a
    fraction, a root inside a root or an exponent inside an exponent each adds a level of braces."""
    depth = deepest = 0
    for char in _BRACKETS.sub("", text):
        if char in "{([":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth = max(depth - 1, 0)
    return deepest


def _not_an_answer(text: str) -> str | None:
    """Why `text` is refused before parsing (too long, nested too deep), if it is."""
    if len(text) > _MAX_ANSWER_CHARS:
        return f"a final answer of {len(text)} characters is not an answer (limit {_MAX_ANSWER_CHARS})"
    depth = _nesting(text)
    if depth > _MAX_NESTING:
        return f"unreadable final answer: brackets nested {depth} deep (limit {_MAX_NESTING})"
    return None


def _anchored_answers(text: str) -> tuple[list[str], bool]:
    """The final answers a response states, by the strongest anchor it uses: `\\boxed{}` (then the
    second item is True), else GSM8K's `#### N`, else an 'Answer: N' / 'the answer is N' line."""
    for finder in (_boxed_contents, _HASHES.findall, _ANSWER_LINE.findall, _ANSWER_PHRASE.findall):
        answers = [a.strip() for a in finder(text) if a.strip()]
        if answers:
            return answers, finder is _boxed_contents
    return [], False


def _repeating_decimal(match: re.Match[str]) -> str:
    sign, whole, fixed, period = match.groups()
    # x = whole.fixed(period)(period)... = whole + (fixed.period - fixed) / (10^len(fixed) (10^len(period) - 1))
    value = Fraction(int(whole or "0")) + Fraction(
        int(fixed + period) - int(fixed or "0"), 10 ** len(fixed) * (10 ** len(period) - 1)
    )
    return f"{sign}\\frac{{{value.numerator}}}{{{value.denominator}}}"


def _is_prose(text: str) -> bool:
    words = _WORD.findall(_TEXT_COMMAND.sub(" ", text))
    return any(word.lower() not in _MATH_WORDS for word in words)


def _prepare(answer: str) -> str:
    """One stated answer as LaTeX math-verify can read: without its surrounding `$...$` or final
    full stop, and with the notation latex2sympy lacks rewritten (0.\\overline{3}, °, √)."""
    answer = answer.strip().removesuffix(".").strip()
    if answer.startswith("$") and answer.endswith("$") and len(answer) > 1 and answer.count("$") == 2:
        answer = answer[1:-1].strip()
    answer = _BOXED.sub("{", answer)  # a box inside the answer, read as part of it
    answer = _REPEATING.sub(_repeating_decimal, answer)
    for pattern, replacement in _PREPARE:
        answer = pattern.sub(replacement, answer)
    return answer


def _units_as_text(latex: str) -> str:
    """'18 dollars' -> '18 \\text{ dollars}', which math-verify's unit normalisation drops as it
    drops '18 \\text{ cm}' (its own list of bare unit words is short)."""
    trailing = _TRAILING_WORDS.match(latex)
    if trailing and _is_prose(trailing[2]):
        return f"{trailing[1]} \\text{{ {trailing[2].strip()}}}"
    return latex


def _math_of_sentence(sentence: str) -> str:
    """'the roots are 1, -2 (by Vieta)' -> '1, -2': the first clause, without its leading words."""
    clause = _AFTER_FIRST_CLAUSE.match(sentence)
    return _LEADING_WORDS.sub("", clause[1] if clause else sentence)


def _read_whole(text: str, extraction_config: list[Any]) -> tuple[Any, ...]:
    """math-verify's reading of the last expression its extraction finds in `text`, followed by
    that expression's text; the text alone when the parser cannot read that expression whole.

    `parse` falls back on failure: to an earlier or inner match (the innermost `\\frac{18}{1}` of a
    fraction nested too deep for the parser's recursion), and from a chain `a = b = c` it cannot
    read to its last part `c`. A fragment is not the answer, so neither fallback is taken."""
    from math_verify import parse
    from math_verify.grader import should_treat_as_complex
    from math_verify.parser import get_last_eq, latex2sympy

    found = tuple(parse(text, extraction_config=extraction_config, extraction_mode="first_match", parsing_timeout=None))
    if _is_math(found) and isinstance(found[-1], str) and get_last_eq(found[-1]) != found[-1]:
        whole = found[-1]
        try:  # exactly math-verify's first attempt, which it does not report
            latex2sympy(
                whole, is_real=not should_treat_as_complex(whole), convert_degrees=False, normalization_config=None
            )
        except Exception:
            return (whole,)
    return found


@functools.lru_cache(maxsize=8192)
def read_answer(answer: str) -> tuple[Any, ...]:
    """What math-verify reads in one stated answer: LaTeX (boxed or bare), or the math of a sentence
    ('Janet makes $18 a day.'). Cached: the n variants of a row, and every row sharing a gold
    answer, parse it once."""
    from math_verify import LatexExtractionConfig

    latex = _prepare(answer)
    if _MATH_ENV.search(latex) or (_is_prose(latex) and "\\" not in latex):
        latex = _math_of_sentence(latex)
        if _MATH_ENV.search(latex):
            found = _read_whole(latex, [LatexExtractionConfig()])
            if found:
                return found
    return _read_whole(f"\\boxed{{{_units_as_text(latex)}}}", [LatexExtractionConfig(boxed_match_priority=0)])


def _last_expression(response: str) -> tuple[Any, ...]:
    """math-verify's own unanchored extraction: the last LaTeX or plain expression in the text."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    return _read_whole(response, [LatexExtractionConfig(), ExprExtractionConfig()])


def _is_math(parsed: tuple[Any, ...]) -> bool:
    # math-verify returns its parse followed by the raw text; text alone means it could not parse.
    return any(not isinstance(value, str) for value in parsed)


def _comparable(gold: Any, pred: Any) -> tuple[Any, Any]:
    """Readings math-verify does not compare, made comparable:
    a vector given as a tuple is the one-column matrix, (1, 2) = [[1], [2]] (math-verify compares
    matrices only with matrices); inequalities joined by 'or' are the union of their sets,
    'x < 2 or x > 3' = (-oo, 2) U (3, oo) (math-verify reads them as a list)."""
    sympy = _sympy()

    def as_tuple(value: Any) -> Any:
        if isinstance(value, sympy.MatrixBase) and 1 in value.shape:
            return sympy.Tuple(*value)
        if isinstance(value, sympy.Interval) and value.left_open and value.right_open:
            return sympy.Tuple(value.start, value.end)  # '(1, 2)' reads as an open interval
        return value

    if isinstance(gold, sympy.MatrixBase) != isinstance(pred, sympy.MatrixBase):
        return as_tuple(gold), as_tuple(pred)
    inequalities = isinstance(pred, sympy.FiniteSet) and all(
        isinstance(item, sympy.Rel) and not isinstance(item, sympy.Equality) for item in pred.args
    )
    if (
        inequalities
        and isinstance(gold, sympy.Set)
        and not isinstance(gold, sympy.FiniteSet)
        and len(pred.free_symbols) == 1
    ):
        return gold, sympy.Union(*(item.as_set() for item in pred.args))
    return gold, pred


def _number(value: Any) -> Any:
    """`value` if it is a number (no unknowns; pi, roots and percentages included), else None."""
    return value if isinstance(value, _sympy().Expr) and value.is_number else None


def _readings(number: Any) -> list[Any]:
    """A percentage 'X%' is X (as GSM8K writes it) or X/100; any other number is itself."""
    if isinstance(number, _sympy().Mul) and len(number.args) == 2 and number.args[1] == _percent():
        return [number.args[0], number.args[0] / 100]
    return [number]


def _too_big_to_evaluate(number: Any) -> bool:
    for power in number.atoms(_sympy().Pow):
        exponent = power.exp.evalf(15)
        if not exponent.is_Number or abs(exponent) > _MAX_EXACT_EXPONENT:
            return True
    return False


def _as_written(number: Any) -> Any:
    """The exact value a number writes, decimals at face value: 0.333333 is 333333/1000000."""
    sympy = _sympy()
    return number.replace(lambda e: isinstance(e, sympy.Float), lambda f: sympy.Rational(str(f))).doit()


def _relatively_close(a: Any, b: Any) -> bool:
    difference = abs((a - b).evalf(_DIGITS))
    scale = max(abs(a.evalf(_DIGITS)), abs(b.evalf(_DIGITS)))
    return bool(difference <= _RELATIVE_TOLERANCE * scale)


def _same_number(gold: Any, pred: Any, places: int | None) -> bool:
    """Equal exactly when both are rationals (decimals as written); otherwise to a relative
    tolerance, except that a decimal for an exact gold is refused unless `places` is set and it is
    the gold to that many decimal places."""
    if gold.is_Rational and pred.is_Rational:  # already exact numbers: GSM8K's integers, most fractions
        return bool(gold == pred)
    float_type = _sympy().Float
    decimal_for_exact = pred.has(float_type) and not gold.has(float_type)
    if _too_big_to_evaluate(gold) or _too_big_to_evaluate(pred):
        return not decimal_for_exact and _relatively_close(gold, pred)
    exact_gold, exact_pred = _as_written(gold), _as_written(pred)
    if not (exact_gold.is_finite and exact_pred.is_finite):
        return bool(exact_gold == exact_pred)  # oo, -oo, zoo
    if exact_gold.is_Rational and exact_pred.is_Rational and exact_gold == exact_pred:
        return True
    if decimal_for_exact:
        # An integer answer is not approximated: 17.999 is not 18, whatever `places` says.
        if places is None or exact_gold.is_Integer:
            return False
        return bool(abs((exact_pred - exact_gold).evalf(_DIGITS)) <= 0.5 * 10**-places)
    if exact_gold.is_Rational and exact_pred.is_Rational:
        return False
    return _relatively_close(exact_gold, exact_pred)


def _numbers_equal(gold: Any, pred: Any, places: int | None) -> bool:
    return any(_same_number(g, p, places) for g in _readings(gold) for p in _readings(pred))


def _assignment_value(value: Any) -> Any:
    """The number `x = 5` assigns (math-verify compares an assignment with a number by its value)."""
    sympy = _sympy()
    if isinstance(value, sympy.Eq) and isinstance(value.lhs, sympy.Symbol):
        return _number(value.rhs)
    return None


def _numeric_verdict(gold: Any, pred: Any, places: int | None) -> bool | None:
    """Whether `gold` and `pred` are equal, when both are numbers or the same kind of container of
    numbers; None (math-verify decides) otherwise. math-verify itself rounds decimals to six places
    and drops differences below 1e-15 or so, which makes 2^-99 equal 2^-98 and 0.333333 equal 1/3."""
    sympy = _sympy()
    g, p = _number(gold), _number(pred)
    if isinstance(gold, sympy.Eq) and isinstance(pred, sympy.Eq):
        if gold.lhs == pred.lhs:
            g, p = _assignment_value(gold), _assignment_value(pred)
    elif g is not None and p is None:
        p = _assignment_value(pred)
    elif p is not None and g is None:
        g = _assignment_value(gold)
    if g is not None and p is not None:
        return _numbers_equal(g, p, places)
    matrix, tuple_type = sympy.MatrixBase, sympy.Tuple
    same_matrix_shape = isinstance(gold, matrix) and isinstance(pred, matrix) and gold.shape == pred.shape
    if same_matrix_shape or (isinstance(gold, tuple_type) and isinstance(pred, tuple_type) and len(gold) == len(pred)):
        pairs = list(zip(gold, pred, strict=True))
    elif isinstance(gold, sympy.Interval) and isinstance(pred, sympy.Interval):
        if (gold.left_open, gold.right_open) != (pred.left_open, pred.right_open):
            return False
        pairs = [(gold.start, pred.start), (gold.end, pred.end)]
    elif isinstance(gold, sympy.FiniteSet) and isinstance(pred, sympy.FiniteSet) and len(gold) == len(pred):
        if not all(_number(item) is not None for item in (*gold.args, *pred.args)):
            return None
        unmatched = list(pred.args)
        for item in gold.args:
            match = next((other for other in unmatched if _numbers_equal(item, other, places)), None)
            if match is None:
                return False
            unmatched.remove(match)
        return True
    else:
        return None
    if not all(_number(a) is not None and _number(b) is not None for a, b in pairs):
        return None
    return all(_numbers_equal(a, b, places) for a, b in pairs)


def _equal(gold: tuple[Any, ...], pred: tuple[Any, ...], places: int | None) -> bool:
    """Equivalence over both readings of each side: numbers as `_numeric_verdict` decides,
    everything else (expressions, equations, sets of expressions) as math-verify does."""
    from math_verify.grader import verify

    for g in gold:
        for p in pred:
            g_value, p_value = _comparable(g, p)
            verdict = _numeric_verdict(g_value, p_value, places)
            if verdict is None:
                verdict = verify(g_value, p_value, timeout_seconds=None, allow_set_relation_comp=True)
            if verdict:
                return True
    return False


def _gold_answer(ground_truth: str) -> str:
    anchored, _ = _anchored_answers(ground_truth)
    return anchored[-1] if anchored else ground_truth


def _is_collection(parsed: tuple[Any, ...]) -> bool:
    return any(isinstance(value, _sympy().FiniteSet) and len(value) > 1 for value in parsed)


class UnusableGold(RewardError, ValueError):
    """The ground truth is not a math answer: the grader's problem, not the response's."""


def _hedge(response: str, stated: str, boxed: bool, answer: tuple[Any, ...], places: int | None) -> str | None:
    """A different value the response offers beside its final answer, right after it (or, for an
    'Answer: ...' line, within it): '\\boxed{12}, but it could also be 13'."""
    after = response[response.rfind(stated) + len(stated) :].removeprefix("}")
    offers = [*_HEDGE_AFTER.finditer(after)] + ([] if boxed else [*_HEDGE_WITHIN.finditer(stated)])
    for offer in offers:
        gap = _OFFERED.match(offer.string, offer.end())
        candidate = _CANDIDATE.match(offer.string, gap.end() if gap else offer.end())
        if candidate and not _OPERAND.match(offer.string, candidate.end()):
            value = read_answer(candidate[0])
            if _is_math(value) and not _equal(answer, value, places):
                return candidate[0]
    return None


def _grade(response: str, ground_truth: str, strict: bool, places: int | None, hedging: str) -> tuple[float, str, bool]:
    """(score, reason, whether the answer was anchored) for one response."""
    gold_text = _gold_answer(ground_truth)
    refused = _not_an_answer(gold_text)
    if refused:
        raise UnusableGold(f"ground truth {ground_truth!r}: {refused}")
    gold = read_answer(gold_text)
    if not _is_math(gold):
        raise UnusableGold(f"ground truth {ground_truth!r} is not a parsable math answer")
    stated, boxed = _anchored_answers(response)
    anchored = bool(stated)
    if boxed and len(stated) > 1 and _is_collection(gold):
        # Several boxes answering a several-part question are one answer, as math-verify reads them:
        # 'the solutions are \\boxed{1} and \\boxed{-2}'. A hedge still fails: the set then differs.
        stated = [", ".join(stated)]
    for text in stated:
        refused = _not_an_answer(text)
        if refused:
            return 0.0, refused, True
    parsed = [read_answer(s) for s in stated]
    if not anchored and not strict:
        refused = _not_an_answer(response) if _nesting(response) > _MAX_NESTING else None
        if refused:
            return 0.0, refused, False
        last = _last_expression(response)
        if last:
            stated, parsed = [str(last[-1])], [last]
    if not stated:
        return 0.0, "no final answer: state it as \\boxed{...}, '#### N' or 'Answer: N'", False
    distinct = [stated[-1]]
    if hedging == "wrong":
        for text, value in zip(stated[:-1], parsed[:-1], strict=True):
            if text not in distinct and not _equal(parsed[-1], value, places):
                distinct.append(text)
    if len(distinct) > 1:
        shown = ", ".join(distinct[:0:-1][:3] + distinct[:1])
        return 0.0, f"several different final answers ({shown}); expected {gold_text}", anchored
    if not _is_math(parsed[-1]):
        return 0.0, f"unreadable final answer: the parser could not read {stated[-1]!r} whole", anchored
    hedge = _hedge(response, stated[-1], boxed, parsed[-1], places) if hedging == "wrong" and anchored else None
    if hedge:
        return 0.0, f"a hedged final answer: {stated[-1]}, then {hedge} as an alternative; expected {gold_text}", True
    if _equal(gold, parsed[-1], places):
        return 1.0, f"answer {stated[-1]} equals {gold_text}", anchored
    return 0.0, f"answer {stated[-1]} != expected {gold_text}", anchored


def _decimal_places(setting: Any) -> int | None:
    """`decimal_for_exact`: 'refuse' is None, 'places:N' is N."""
    places = re.fullmatch(r"places:(\d{1,2})", setting) if isinstance(setting, str) else None
    if setting != "refuse" and not (places and int(places[1]) <= 15):
        raise ValueError(f"math reward: `decimal_for_exact` must be 'refuse' or 'places:N' (N <= 15), got {setting!r}")
    return int(places[1]) if places else None


def _load_math_verify() -> None:
    read_answer("1")  # imports sympy and math-verify and loads the LaTeX grammar


@reward_function
def math_reward(
    messages: list[Message],
    ground_truth: Any = None,
    strict: bool = True,
    timeout: float = 5.0,
    decimal_for_exact: str = "refuse",
    hedging: str = "wrong",
    **kwargs: Any,
) -> EvaluateResult:
    """1.0 when the last message's final answer equals `ground_truth`, else 0.0.

    `strict=False` accepts the last expression of a response that anchors no final answer.
    Numbers are equal exactly when both are rationals (a decimal is the number it writes: 0.5 is
    1/2, 0.333333 is not 1/3), and to a relative tolerance otherwise. `decimal_for_exact="places:N"`
    also accepts, for an exact gold that is not an integer (1/3, sqrt(2), pi), a decimal equal to
    it to N places; "refuse" (the default) does not. `hedging="wrong"` (the default) scores 0 a
    response that states different final answers or offers another value after its final one;
    "last" grades the last final answer stated, whatever surrounds it.
    An unparsable or missing ground truth is an error, not a 0, and so is a failure of the grader
    itself (its worker process dying, say): it never raises. Grading that overruns `timeout`
    seconds (on or off the main thread) scores 0.
    """
    if ground_truth is None:
        return EvaluateResult.invalid("the row has no ground_truth to compare with")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf"):
        return EvaluateResult.invalid(f"math reward: `timeout` must be a positive number of seconds, got {timeout!r}")
    if not isinstance(strict, bool):
        return EvaluateResult.invalid(f"math reward: `strict` must be true or false, got {strict!r}")
    try:
        places = _decimal_places(decimal_for_exact)
    except ValueError as exc:
        return EvaluateResult.invalid(str(exc))
    if hedging not in _HEDGINGS:
        return EvaluateResult.invalid(f"math reward: `hedging` must be 'wrong' or 'last', got {hedging!r}")
    response = messages[-1].text if messages else ""
    try:
        score, reason, anchored = call_with_deadline(
            _grade, (response, str(ground_truth), strict, places, hedging), timeout, warm_up=_load_math_verify
        )
    except DeadlineExceeded:
        return EvaluateResult(
            score=0.0,
            reason=f"grading took longer than {timeout:g}s; the answer is treated as wrong",
            metrics={"timeout": MetricResult(score=0.0, reason="math-verify overran its deadline")},
        )
    except UnusableGold as exc:
        return EvaluateResult.invalid(str(exc))
    except Exception as exc:  # the grader failed (its worker died, say): an error, never a wrong answer
        return EvaluateResult.invalid(f"math reward: grader error: {exc}", error=f"{type(exc).__name__}: {exc}")
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
