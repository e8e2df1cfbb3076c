"""`code`: run the response's code against the row's tests in the sandbox (`pytest_rewardkit.sandbox`).

The code is the response's fenced block in the configured language (untagged blocks count as
that language): the last one, the first one, or the one whose fence names it (```python solution.py).

Tests come from the row's `tests` field (or, failing that, its `ground_truth`): a list of objects
of three kinds, told apart by their keys.

- stdin/stdout: `{"stdin": "1 2\\n", "stdout": "3\\n"}`. The code runs as a script; its output is
  compared with `stdout` line by line, each line stripped, trailing blank lines ignored. A missing
  or extra line fails. With `tolerance` > 0, numbers on a line match within that tolerance.
- call: `{"call": "add", "args": [1, 2], "kwargs": {}, "expected": 3}`. The code is loaded as a
  module, the function is called with the JSON arguments, and its return value comes back as JSON
  to be compared here, outside the sandbox (numbers within `tolerance`, tuples as lists).
- check: `{"check": "assert add(1, 2) == 3"}`. The block runs after the code, in its namespace,
  as HumanEval's `check(candidate)` does; the test passes when the block returns.

Expected values never enter the sandbox for the first two kinds. A run counts as passed only when
it prints, as its last line, a random marker that the harness is given on stdin and prints itself
after the function (or the check block) returns: exit statuses and 'PASS' lines prove nothing.
Code that inspects the harness's own stack frames could still find the marker; the check kind
is also open to return values that claim equality with anything (`__eq__` always true): call-style
tests are the robust kind.

Score: the fraction of tests passed, or with `mode: all`, 1.0 only when every test passes. Each
test ends as passed, wrong answer, runtime error, timeout or resource limit; a response can also
end before any test as no code or syntax error (checked here with `compile`, which runs nothing).
`metrics` holds `tests_passed` and, for each other outcome that occurred, the share of tests
that ended so; `reason` names the first failure with a short excerpt of what went wrong.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pytest_rewardkit.models import EvaluateResult, Message, MetricResult, excerpt
from pytest_rewardkit.reward import reward_function
from pytest_rewardkit.sandbox import BWRAP, Limits, RunResult, Sandbox, SandboxMode, SandboxUnavailable

Outcome = Literal["passed", "wrong_answer", "runtime_error", "timeout", "resource_limit"]
FAILURES: tuple[Outcome, ...] = ("timeout", "resource_limit", "runtime_error", "wrong_answer")
EXCERPT = 200

LANGUAGE_ALIASES = {"python": {"python", "py", "python3", "py3"}}

_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([^\s`]*)[ \t]*([^`\n]*)$")

# The harness for call and check tests: the marker and the request arrive on stdin.
_HARNESS = """\
import json, os, sys


def main():
    marker = sys.stdin.readline().strip()
    request = json.loads(sys.stdin.readline())
    namespace = {"__name__": "solution", "__builtins__": __builtins__}
    with open("solution.py", encoding="utf-8") as source:
        exec(compile(source.read(), "solution.py", "exec"), namespace)
    if "check" in request:
        exec(compile(request["check"], "check", "exec"), namespace)
        reply = ""
    else:
        if not callable(namespace.get(request["call"])):
            sys.exit(f"NameError: the code defines no function {request['call']!r}")
        value = namespace[request["call"]](*request["args"], **request["kwargs"])
        try:
            reply = json.dumps(value)
        except (TypeError, ValueError) as exc:
            sys.exit(f"TypeError: the return value is not JSON: {exc}")
    sys.stdout.flush()
    os.write(1, ("\\n" + marker + reply + "\\n").encode())


main()
"""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StdioTest(_Strict):
    stdin: str = ""
    stdout: str


class CallTest(_Strict):
    call: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    expected: Any


class CheckTest(_Strict):
    check: str = Field(min_length=1)


TestCase = StdioTest | CallTest | CheckTest


class TestResult(BaseModel):
    index: int
    outcome: Outcome
    detail: str = ""


class CodeParams(_Strict):
    """The reward's settings, validated before anything runs (defaults live in `code_reward`)."""

    language: str = Field(min_length=1)
    block: str = Field(min_length=1)
    mode: Literal["fraction", "all"]
    tolerance: float = Field(ge=0.0)
    timeout: float = Field(gt=0.0)
    total_timeout: float = Field(gt=0.0)
    workers: int = Field(ge=1, le=64)
    memory_mb: int = Field(ge=32)
    max_processes: int = Field(ge=4)
    disk_mb: int = Field(ge=1)
    sandbox: SandboxMode
    bwrap_path: str = Field(min_length=1)


def parse_tests(raw: Any) -> list[TestCase]:
    """The row's tests; a ValueError names the test and the fix."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise ValueError("tests must be a JSON list of test objects") from None
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise ValueError("the row has no tests: give a non-empty `tests` list (stdin/stdout, call or check tests)")
    tests: list[TestCase] = []
    for index, item in enumerate(raw):
        kind: type[TestCase] | None = None
        if isinstance(item, dict):
            kind = (
                CallTest
                if "call" in item
                else CheckTest
                if "check" in item
                else StdioTest
                if "stdout" in item
                else None
            )
        if kind is None:
            raise ValueError(
                f"tests[{index}]: not a test; use {{'stdin', 'stdout'}}, {{'call', 'args', 'expected'}} or {{'check'}}"
            )
        try:
            tests.append(kind.model_validate(item))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'test'}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"tests[{index}] ({kind.__name__}): {problems}") from None
    return tests


def extract_code(text: str, language: str = "python", block: str = "last") -> str | None:
    """The chosen fenced code block of `text` in `language` (untagged blocks included), or None.
    A block left open at the end of the text (a truncated response) runs to the end."""
    accepted = LANGUAGE_ALIASES.get(language.lower(), {language.lower()}) | {""}
    blocks: list[tuple[str, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        i += 1
        if not opening:
            continue
        fence, tag, info = opening.groups()
        body = []
        while i < len(lines):
            closing = _FENCE.match(lines[i])
            if closing and closing[1][0] == fence[0] and len(closing[1]) >= len(fence) and not closing[2]:
                break
            body.append(lines[i])
            i += 1
        i += 1
        if tag.lower() in accepted:
            blocks.append((info.strip(), "\n".join(body) + "\n"))
    if not blocks:
        return None
    if block == "last":
        return blocks[-1][1]
    if block == "first":
        return blocks[0][1]
    named = [code for info, code in blocks if block in info.split()]
    return named[-1] if named else None


def syntax_problem(code: str) -> str | None:
    """Why `code` does not compile, or None. Compiling runs none of it."""
    try:
        compile(code, "solution.py", "exec", dont_inherit=True)
    except SyntaxError as exc:
        return f"line {exc.lineno}: {exc.msg}"
    except (ValueError, RecursionError, MemoryError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return excerpt(lines[-1], EXCERPT) if lines else ""


_RESOURCE_ERRORS = (
    "MemoryError",
    "can't start new thread",
    "Resource temporarily unavailable",
    "[Errno 11]",  # EAGAIN from fork: the process limit
    "[Errno 24]",  # EMFILE
    "[Errno 27]",  # EFBIG
    "[Errno 28]",  # ENOSPC
    "[Errno 122]",  # EDQUOT
)
_RESOURCE_SIGNALS = {9: "SIGKILL", 24: "SIGXCPU (CPU time)", 25: "SIGXFSZ (file size)"}


def _failure(run: RunResult, timeout: float) -> tuple[Outcome, str]:
    """The outcome of a run that did not report success."""
    if run.timed_out:
        return "timeout", f"exceeded {timeout:g}s wall time"
    if run.limit_hit:
        return "resource_limit", f"hit the {run.limit_hit} limit"
    last = _last_line(run.stderr)
    if run.signal in _RESOURCE_SIGNALS:
        return "resource_limit", f"killed by {_RESOURCE_SIGNALS[run.signal]}"
    if any(marker in last for marker in _RESOURCE_ERRORS):
        return "resource_limit", last
    if run.signal is not None:
        return "runtime_error", f"killed by signal {run.signal}"
    if last.startswith("AssertionError"):
        return "wrong_answer", last
    if run.stdout_truncated:
        return "runtime_error", "output flood: stopped reading after the cap"
    return "runtime_error", last or f"exit status {run.exit_code} without a result"


def _same_value(expected: Any, actual: Any, tolerance: float) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return expected == actual or math.isclose(expected, actual, rel_tol=tolerance, abs_tol=tolerance)
    if isinstance(expected, (list, tuple)) and isinstance(actual, list):
        return len(expected) == len(actual) and all(
            _same_value(e, a, tolerance) for e, a in zip(expected, actual, strict=True)
        )
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(
            _same_value(expected[k], actual[k], tolerance) for k in expected
        )
    return bool(expected == actual)


def _same_token(expected: str, actual: str, tolerance: float) -> bool:
    if expected == actual:
        return True
    if tolerance <= 0:
        return False
    try:
        return math.isclose(float(expected), float(actual), rel_tol=tolerance, abs_tol=tolerance)
    except ValueError:
        return False


def compare_output(expected: str, actual: str, tolerance: float) -> str | None:
    """None when `actual` matches `expected` line by line, else the first difference."""
    want = [line.strip() for line in expected.strip().splitlines()]
    got = [line.strip() for line in actual.rstrip().splitlines()]
    for number, (w, g) in enumerate(zip(want, got, strict=False), start=1):
        wt, gt = w.split(), g.split()
        if len(wt) != len(gt) or not all(_same_token(a, b, tolerance) for a, b in zip(wt, gt, strict=True)):
            return f"line {number}: expected {excerpt(w, EXCERPT)!r}, got {excerpt(g, EXCERPT)!r}"
    if len(got) != len(want):
        return f"expected {len(want)} line(s), got {len(got)}"
    return None


def run_test(sandbox: Sandbox, code: str, test: TestCase, tolerance: float, limits: Limits) -> tuple[Outcome, str]:
    """Run one test of `code` in the sandbox and judge it here."""
    if isinstance(test, StdioTest):
        run = sandbox.run(code, stdin=test.stdin, limits=limits)
        if run.exit_code != 0:
            return _failure(run, limits.wall_time)
        if run.stdout_truncated:
            return "wrong_answer", f"more than {limits.output_bytes} bytes of output"
        difference = compare_output(test.stdout, run.stdout, tolerance)
        return ("wrong_answer", difference) if difference else ("passed", "")
    marker = secrets.token_hex(16)
    request = {"check": test.check} if isinstance(test, CheckTest) else test.model_dump(exclude={"expected"})
    stdin = f"{marker}\n{json.dumps(request)}\n"
    run = sandbox.run(_HARNESS, stdin=stdin, files={"solution.py": code}, limits=limits)
    lines = run.stdout.rstrip("\n").rsplit("\n", 1)
    if run.exit_code != 0 or run.stdout_truncated or not lines[-1].startswith(marker):
        return _failure(run, limits.wall_time)
    if isinstance(test, CheckTest):
        return "passed", ""
    actual = json.loads(lines[-1][len(marker) :])
    if _same_value(test.expected, actual, tolerance):
        return "passed", ""
    return (
        "wrong_answer",
        f"{test.call}(…) returned {excerpt(json.dumps(actual), EXCERPT)}, "
        f"expected {excerpt(json.dumps(test.expected), EXCERPT)}",
    )


def run_tests(code: str, tests: list[TestCase], params: CodeParams) -> list[TestResult]:
    """Every test in parallel workers, within `total_timeout` for all of them."""
    sandbox = Sandbox(params.sandbox, params.bwrap_path)
    sandbox.check()
    deadline = time.monotonic() + params.total_timeout

    def one(index: int) -> TestResult:
        remaining = deadline - time.monotonic()
        if remaining <= 0.05:
            return TestResult(index=index, outcome="timeout", detail="not run: the response's total time ran out")
        limits = Limits(
            wall_time=min(params.timeout, remaining),
            memory_mb=params.memory_mb,
            max_processes=params.max_processes,
            disk_mb=params.disk_mb,
        )
        outcome, detail = run_test(sandbox, code, tests[index], params.tolerance, limits)
        return TestResult(index=index, outcome=outcome, detail=detail)

    with ThreadPoolExecutor(max_workers=min(params.workers, len(tests))) as pool:
        return list(pool.map(one, range(len(tests))))


def _verdict(results: list[TestResult], mode: str) -> EvaluateResult:
    total = len(results)
    passed = sum(r.outcome == "passed" for r in results)
    score = passed / total if mode == "fraction" else float(passed == total)
    metrics = {"tests_passed": MetricResult(score=passed / total, reason=f"{passed}/{total} tests passed")}
    for outcome in FAILURES:
        hits = [r for r in results if r.outcome == outcome]
        if hits:
            first = hits[0]
            metrics[outcome] = MetricResult(
                score=len(hits) / total,
                reason=f"{len(hits)}/{total} tests; test {first.index}: {first.detail}",
            )
    failed = next((r for r in results if r.outcome != "passed"), None)
    if failed is None:
        reason = f"{total}/{total} tests passed"
    else:
        reason = (
            f"{passed}/{total} tests passed; test {failed.index}: {failed.outcome.replace('_', ' ')}: {failed.detail}"
        )
    return EvaluateResult(score=score, reason=reason, metrics=metrics)


@reward_function
def code_reward(
    messages: list[Message],
    ground_truth: Any = None,
    tests: Any = None,
    language: str = "python",
    block: str = "last",
    mode: str = "fraction",
    tolerance: float = 0.0,
    timeout: float = 10.0,
    total_timeout: float = 60.0,
    workers: int = 4,
    memory_mb: int = 512,
    max_processes: int = 32,
    disk_mb: int = 64,
    sandbox: str = "bwrap",
    bwrap_path: str = BWRAP,
    **kwargs: Any,
) -> EvaluateResult:
    """Fraction of the row's tests (`tests`, else `ground_truth`) that the response's code passes.

    `block`: 'last', 'first' or a name on the block's fence line. `mode`: 'fraction' or 'all'.
    `timeout` bounds each test, `total_timeout` all tests of the response, run by `workers` in
    parallel; `memory_mb`, `max_processes` and `disk_mb` bound each run. `sandbox: process` opts
    out of bubblewrap (see `pytest_rewardkit.sandbox`). Bad settings or tests, and a missing
    sandbox, are errors, not a 0.
    """
    try:
        params = CodeParams(
            language=language,
            block=block,
            mode=mode,
            tolerance=tolerance,
            timeout=timeout,
            total_timeout=total_timeout,
            workers=workers,
            memory_mb=memory_mb,
            max_processes=max_processes,
            disk_mb=disk_mb,
            sandbox=sandbox,
            bwrap_path=bwrap_path,
        )
        cases = parse_tests(tests if tests is not None else ground_truth)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return EvaluateResult.invalid(f"code reward params: {problems}")
    except ValueError as exc:
        return EvaluateResult.invalid(f"code reward: {exc}")
    response = messages[-1].text if messages else ""
    code = extract_code(response, params.language, params.block)
    if code is None:
        which = "" if params.block in ("last", "first") else f" named {params.block!r}"
        return EvaluateResult(
            score=0.0,
            reason=f"no code: the response has no fenced {params.language} block{which}",
            metrics={"no_code": MetricResult(score=1.0, reason="no code block found")},
        )
    problem = syntax_problem(code)
    if problem:
        return EvaluateResult(
            score=0.0,
            reason=f"syntax error: {problem}",
            metrics={"syntax_error": MetricResult(score=1.0, reason=problem)},
        )
    try:
        results = run_tests(code, cases, params)
    except SandboxUnavailable as exc:
        return EvaluateResult.invalid(str(exc))
    return _verdict(results, params.mode)
