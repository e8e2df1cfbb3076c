"""The `code` reward: extraction, the three test kinds, scoring, outcomes, forged success."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from pytest_rewardkit import resolve_reward
from pytest_rewardkit.models import EvaluateResult
from pytest_rewardkit.rewards.code import compare_output, extract_code, parse_tests
from pytest_rewardkit.sandbox import WeakSandboxWarning, runner

code_reward = resolve_reward("code")

ADD_TESTS = [
    {"call": "add", "args": [1, 2], "expected": 3},
    {"call": "add", "args": [0.1, 0.2], "expected": 0.3},
    {"call": "add", "args": [[1], [2]], "expected": [1, 2]},
]
ADD = "def add(a, b):\n    return a + b\n"


def score(code: str, tests: Any, **params: Any) -> EvaluateResult:
    response = f"Here is my solution.\n\n```python\n{code}\n```\n"
    return code_reward(
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": response}], tests=tests, **params
    )


def test_extracts_the_last_python_block_by_default() -> None:
    text = "```python\nfirst = 1\n```\nthen\n```bash\nls\n```\n```py\nlast = 2\n```\n"
    assert extract_code(text) == "last = 2\n"
    assert extract_code(text, block="first") == "first = 1\n"
    assert extract_code(text, language="bash") == "ls\n"


def test_extracts_a_named_block_untagged_blocks_and_a_truncated_one() -> None:
    text = "```python helper.py\nh = 1\n```\n```python solution.py\ns = 2\n```\n```\nu = 3\n```\n"
    assert extract_code(text, block="solution.py") == "s = 2\n"
    assert extract_code(text) == "u = 3\n"
    assert extract_code(text, block="missing.py") is None
    assert extract_code("~~~~python\nx = [\n    1,\n") == "x = [\n    1,\n"
    assert extract_code("````python\nprint('```')\n```\nstill code\n````") == "print('```')\n```\nstill code\n"


def test_no_code_is_its_own_outcome() -> None:
    result = code_reward([{"role": "assistant", "content": "The answer is 3."}], tests=ADD_TESTS)
    assert result.score == 0.0 and not result.is_error
    assert "no_code" in result.metrics and result.reason.startswith("no code")


def test_syntax_error_is_caught_before_running_anything() -> None:
    result = score("def add(a, b)\n    return a + b", ADD_TESTS)
    assert result.score == 0.0 and "syntax_error" in result.metrics
    assert "line 1" in result.reason


def test_call_tests_compare_json_outside_with_tolerance() -> None:
    exact = score(ADD, ADD_TESTS)
    assert exact.score == pytest.approx(2 / 3)
    assert "add(…) returned 0.30000000000000004, expected 0.3" in exact.reason
    assert score(ADD, ADD_TESTS, tolerance=1e-9).score == 1.0


def test_call_tests_keep_bools_and_numbers_apart() -> None:
    tests = [{"call": "f", "args": [], "expected": 1}]
    assert score("def f():\n    return True", tests).score == 0.0
    assert score("def f():\n    return 1.0", tests).score == 1.0
    assert score("def f():\n    return (1, 2)", [{"call": "f", "expected": [1, 2]}]).score == 1.0


def test_stdin_stdout_tests_compare_line_by_line() -> None:
    tests = [{"stdin": "1 2\n", "stdout": "3\n"}, {"stdin": "2 2\n", "stdout": "4"}]
    program = "a, b = map(int, input().split())\nprint(a + b)"
    assert score(program, tests).score == 1.0
    assert score(program + "\nprint('extra')", tests).metrics["wrong_answer"].score == 1.0
    assert score("print(3)", tests).score == 0.5


def test_compare_output_rules() -> None:
    assert compare_output("1 2\n3\n", "  1 2  \n3\n\n", 0) is None
    assert compare_output("1\n2\n", "1\n", 0) == "expected 2 line(s), got 1"
    assert compare_output("1\n", "1\n2\n", 0) == "expected 1 line(s), got 2"
    assert compare_output("0.3333\n", "0.33333333\n", 0) is not None
    assert compare_output("0.3333\n", "0.33333333\n", 1e-3) is None
    assert compare_output("a b\n", "a  b c\n", 1e-3) is not None


def test_check_tests_run_after_the_code() -> None:
    tests = [{"check": "assert add(2, 3) == 5"}, {"check": "assert add('a', 'b') == 'ab'"}]
    assert score(ADD, tests).score == 1.0
    wrong = score("def add(a, b):\n    return a", tests)
    assert wrong.score == 0.0 and wrong.metrics["wrong_answer"].score == 1.0


def test_outcomes_are_told_apart() -> None:
    tests = [{"call": "f", "args": [], "expected": 1}]
    cases = {
        "runtime_error": "def f():\n    return 1 / 0",
        "timeout": "def f():\n    while True:\n        pass",
        "resource_limit": "def f():\n    return len(bytearray(400 * 2**20))",
        "wrong_answer": "def f():\n    return 2",
    }
    for outcome, program in cases.items():
        result = score(program, tests, timeout=1.5, memory_mb=128)
        assert result.score == 0.0
        assert set(result.metrics) == {"tests_passed", outcome}, (outcome, result.reason)
        assert outcome.replace("_", " ") in result.reason
    assert "ZeroDivisionError" in score(cases["runtime_error"], tests).reason


def test_reason_holds_a_short_excerpt_not_the_whole_output() -> None:
    result = score("def f():\n    raise ValueError('x' * 100_000)", [{"call": "f", "expected": 1}])
    assert len(result.reason) < 400


def test_mode_all_is_all_or_nothing() -> None:
    assert score(ADD, ADD_TESTS, mode="all").score == 0.0
    assert score(ADD, ADD_TESTS, mode="all", tolerance=1e-9).score == 1.0


def test_tests_run_in_parallel_within_a_total_time() -> None:
    tests = [{"call": "f", "args": [], "expected": 1}] * 4
    start = time.monotonic()
    result = score("import time\ndef f():\n    time.sleep(2)\n    return 1", tests, workers=4)
    assert result.score == 1.0
    # Four two-second tests side by side take 2 s and one after another 8 s: the margin between is
    # for the sandbox's start-up on a loaded machine.
    assert time.monotonic() - start < 6
    start = time.monotonic()
    bounded = score("def f():\n    while True:\n        pass", tests * 2, workers=2, timeout=5, total_timeout=1.5)
    assert time.monotonic() - start < 4
    assert bounded.metrics["timeout"].score == 1.0


@pytest.mark.parametrize(
    "forgery",
    [
        "print('PASS')\nprint('All tests passed')\nimport sys\nsys.exit(0)",
        "import os\nprint('ok')\nos._exit(0)",
        "import sys\nprint('0' * 32 + '1')\nsys.stdout.flush()\nraise SystemExit",
        "def check(candidate):\n    pass\nimport builtins\nbuiltins.AssertionError = None",
    ],
    ids=["pass-lines-and-exit-0", "os-exit", "fake-marker", "neutered-check"],
)
def test_forged_success_is_not_success(forgery: str) -> None:
    tests = [{"check": "assert add(1, 2) == 3\nassert add(2, 2) == 4"}]
    result = score("def add(a, b):\n    return 0\n" + forgery, tests)
    assert result.score == 0.0, result.reason


def test_forged_call_results_are_not_accepted() -> None:
    program = "import json, sys\nprint(json.dumps(3))\ndef add(a, b):\n    print(3)\n    sys.exit(0)\n"
    assert score(program, [{"call": "add", "args": [1, 2], "expected": 3}]).score == 0.0


def test_expected_values_never_enter_the_sandbox() -> None:
    expected = "needle-4f1c9e"
    program = (
        "import os, sys\n"
        "seen = sys.stdin.read() + repr(os.environ) + repr(os.listdir('.'))\n"
        "for name in os.listdir('.'):\n"
        "    seen += open(name).read()\n"
        "def f():\n"
        "    return seen\n"
    )
    result = score(program, [{"call": "f", "args": [], "expected": expected}])
    assert result.score == 0.0
    assert expected not in result.reason.split("expected")[0]
    stdio = score("import sys\nprint(sys.stdin.read())", [{"stdin": "in", "stdout": expected}])
    assert "got 'in'" in stdio.reason


def test_bad_tests_and_params_are_errors_not_zeros() -> None:
    assert score(ADD, None).is_error
    assert "tests[1]" in (score(ADD, [ADD_TESTS[0], {"call": "1bad"}]).error or "")
    assert "tests[0]: not a test" in (score(ADD, [{"input": "1"}]).error or "")
    assert "mode" in (score(ADD, ADD_TESTS, mode="most").error or "")
    assert "timeout" in (score(ADD, ADD_TESTS, timeout=-1).error or "")


def test_tests_may_come_from_ground_truth() -> None:
    response = [{"role": "assistant", "content": f"```python\n{ADD}```"}]
    assert code_reward(response, ground_truth=ADD_TESTS[:1]).score == 1.0


def test_missing_bubblewrap_makes_the_reward_refuse() -> None:
    result = score(ADD, ADD_TESTS, bwrap_path="/nonexistent/bwrap")
    assert result.is_error
    assert "bubblewrap was not found at /nonexistent/bwrap" in result.reason
    assert "apt-get install bubblewrap" in result.reason and "sandbox: process" in result.reason


def test_process_mode_is_an_explicit_opt_in_that_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "_warned", threading.Event())
    with pytest.warns(WeakSandboxWarning, match="WITHOUT bubblewrap"):
        result = score(ADD, ADD_TESTS, sandbox="process", bwrap_path="/nonexistent/bwrap", tolerance=1e-9)
    assert result.score == 1.0


def test_parse_tests_accepts_one_test_or_json_text() -> None:
    assert len(parse_tests({"check": "pass"})) == 1
    assert len(parse_tests('[{"stdin": "", "stdout": "1"}]')) == 1
    with pytest.raises(ValueError, match="non-empty"):
        parse_tests([])


HUMANEVAL_STYLE = [
    {"check": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(0, 7) == 7\n\ncheck(add)\n"}
]
WRONG_ADD = "def add(a, b):\n    return 0\n"


@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        pytest.param(
            "import builtins\nbuiltins.exec = lambda *a, **k: None\n" + WRONG_ADD,
            "wrong answer: assert candidate(2, 3) == 5",
            id="patched-exec",
        ),
        pytest.param(
            "import os, sys\n" + WRONG_ADD + "try:\n    print(sys._getframe(1).f_locals['marker'])\n"
            "except Exception:\n    pass\nos._exit(0)\n",
            "the code's process ended before answering",
            id="frame-marker-and-exit",
        ),
        pytest.param(
            "class Yes:\n    def __eq__(self, other):\n        return True\n\ndef add(a, b):\n    return Yes()\n",
            "add(…) returned a Yes, which is not plain data",
            id="always-equal",
        ),
    ],
)
def test_check_style_attacks_score_zero_with_a_reason(attack: str, reason: str) -> None:
    """The attacks of issue 15: each scored 1.0 while the check ran in the code's own interpreter."""
    assert score("def add(a, b):\n    return a + b\n", HUMANEVAL_STYLE).score == 1.0
    result = score(attack, HUMANEVAL_STYLE)
    assert result.score == 0.0 and not result.is_error, result.reason
    assert reason in result.reason


def test_a_checks_expected_exception_still_works() -> None:
    """The code's exception crosses as a builtin exception of the same name, rebuilt by the judge."""
    check = "try:\n    add(1, 'x')\nexcept TypeError:\n    pass\nelse:\n    raise AssertionError('no TypeError')\n"
    assert score(ADD, [{"check": check}]).score == 1.0


@pytest.mark.parametrize(
    ("program", "reason"),
    [
        pytest.param(
            "import json\njson.dumps = lambda *a, **k: 'x'\n" + ADD, "not plain data", id="patched-json-dumps"
        ),
        pytest.param(
            "import plain\nplain.dumps = lambda value: '[' * 100_000 + ']' * 100_000\n" + ADD,
            "not plain data",
            id="deep-reply",
        ),
        pytest.param(
            "def add(a, b):\n    x = []\n    for _ in range(100_000):\n        x = [x]\n    return x\n",
            "not plain data",
            id="deep-value",
        ),
        pytest.param("import os, sys\n" + ADD + "os.write(int(sys.argv[0] == '') or 1, b'garbage')\n", "", id="noise"),
    ],
)
@pytest.mark.parametrize("style", ["call", "check"])
def test_hostile_replies_give_a_result_never_an_exception(program: str, reason: str, style: str) -> None:
    tests = [{"call": "add", "args": [1, 2], "expected": 3}] if style == "call" else HUMANEVAL_STYLE
    result = score(program, tests)
    assert not result.is_error, result.reason
    assert reason in result.reason
    assert result.score == (1.0 if reason == "" else 0.0), result.reason


ADVERSARIAL = {
    "fence-then-spaces": "```" + " " * 1_000_000 + "`",
    "backticks": "`" * 1_000_000,
    "tildes-and-backticks": "~~~" + "`" * 999_997,
    "many-fences": "```python\n" * 100_000,
    "nested-fences": "".join(f"{'`' * (3 + i % 50)}python\nx = {i}\n" for i in range(50_000))[:1_000_000],
    "spaces-lines": ("```   " + " " * 90 + "x`\n") * 10_000,
}


@pytest.mark.parametrize("text", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_fence_extraction_is_linear_on_adversarial_responses(text: str) -> None:
    """1 MB of hostile markdown: the cubic regex took 15.6 s on 2,000 spaces, and anything worse than
    linear takes minutes on 1 MB. The bound is a verdict on complexity, far above the ~10 ms linear
    extraction takes, so a loaded CI machine cannot fail it (benchmarks/extraction.py has figures)."""
    assert len(text) >= 900_000
    best = min(_timed(extract_code, text) for _ in range(3))
    assert best < 1.0, f"{best * 1000:.0f} ms"


def _timed(fn: Any, *args: Any) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start
