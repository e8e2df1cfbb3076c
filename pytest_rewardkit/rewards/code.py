"""`code`: run the response's code against the row's tests in the sandbox (`pytest_rewardkit.sandbox`).

The code is the response's fenced block in the configured language (untagged blocks count as
that language): the last one, the first one, or the one whose fence names it (```python solution.py).

Tests come from the row's `tests` field (or, failing that, its `ground_truth`): a list of objects
of three kinds, told apart by their keys.

- stdin/stdout: `{"stdin": "1 2\\n", "stdout": "3\\n"}`. The code runs as a script; its output is
  compared with `stdout` line by line, each line stripped, trailing blank lines ignored. A missing
  or extra line fails. With `tolerance` > 0, numbers on a line match within that tolerance.
- call: `{"call": "add", "args": [1, 2], "kwargs": {}, "expected": 3}`. The code is loaded as a
  module, the function is called with the JSON arguments, and its return value comes back as
  plain data (`pytest_rewardkit.rewards.plain`) to be compared here, outside the sandbox (numbers
  within `tolerance`, tuples as lists).
- check: `{"check": "assert add(1, 2) == 3"}`: HumanEval's `check(candidate)` style. The check is
  trusted code and runs in a sandbox of its own; the code runs in another. Each function of the
  code's that the check names is a stub there, which sends the arguments to the code's process
  and rebuilds the answer from plain data. The test passes when the check returns. Names the
  check defines itself are its own, never stubs: a helper the check relies on (HumanEval's `poly`,
  `encode_cyclic`) belongs in the check's code, so a response redefining it cannot steer the check.

Expected values never enter the code's sandbox, and the verdict is decided where the code cannot
reach: no exit status, output line, marker, stack frame, patched builtin or object with a rigged
`__eq__` of the code's crosses to the judge, only plain data does (`harness/` holds both sides).
A sandbox that cannot start makes the result an error, never a 0.

Score: the fraction of tests passed, or with `mode: all`, 1.0 only when every test passes. Each
test ends as passed, wrong answer, runtime error, timeout or resource limit; a response can also
end before any test as no code or syntax error (checked here with `compile`, which runs nothing).
`metrics` holds `tests_passed` and, for each other outcome that occurred, the share of tests
that ended so; `reason` names the first failure with a short excerpt of what went wrong.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import selectors
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pytest_rewardkit.errors import dotted, validation_problems
from pytest_rewardkit.models import EvaluateResult, Message, MetricResult, excerpt
from pytest_rewardkit.reward import reward_function
from pytest_rewardkit.rewards import plain
from pytest_rewardkit.rewards.harness import HERE as HARNESS
from pytest_rewardkit.sandbox import BWRAP, Limits, RunResult, Sandbox, SandboxMode, SandboxUnavailable

Outcome = Literal["passed", "wrong_answer", "runtime_error", "timeout", "resource_limit"]
FAILURES: tuple[Outcome, ...] = ("timeout", "resource_limit", "runtime_error", "wrong_answer")
EXCERPT = 200

logger = logging.getLogger(__name__)

LANGUAGE_ALIASES = {"python": {"python", "py", "python3", "py3"}}


def _fence(line: str) -> tuple[str, str, str] | None:
    """(fence, tag, info) when `line` opens or closes a fenced block (CommonMark: three or more
    backticks or tildes, indented by spaces or tabs, no backtick after the fence), else None.
    String methods only, each linear in the line: a regex with nested optional runs here took
    cubic time on a hostile line (a fence followed by thousands of spaces), before any sandbox."""
    stripped = line.lstrip(" \t")
    char = stripped[:1]
    if char not in ("`", "~"):
        return None
    rest = stripped.lstrip(char)
    fence = stripped[: len(stripped) - len(rest)]
    if len(fence) < 3 or "`" in rest:
        return None
    rest = rest.lstrip(" \t")
    tag = rest.split(maxsplit=1)[0] if rest and not rest[0].isspace() else ""
    return fence, tag, rest[len(tag) :].lstrip(" \t")


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
            problems = "; ".join(validation_problems(exc, lambda loc: dotted(loc) if loc else "test"))
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
        opening = _fence(lines[i])
        i += 1
        if not opening:
            continue
        fence, tag, info = opening
        start = i
        while i < len(lines) and not _closes(lines[i], fence):
            i += 1
        if tag.lower() in accepted:
            blocks.append((info.strip(), "\n".join(lines[start:i]) + "\n"))
        i += 1
    if not blocks:
        return None
    if block == "last":
        return blocks[-1][1]
    if block == "first":
        return blocks[0][1]
    named = [code for info, code in blocks if block in info.split()]
    return named[-1] if named else None


def _closes(line: str, fence: str) -> bool:
    """Whether `line` closes a block opened by `fence`: nothing but at least as many of its
    characters, and whitespace."""
    bare = line.strip()
    return len(bare) >= len(fence) and bare[0] == fence[0] and not bare.strip(fence[0])


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


def _failure(run: RunResult, timeout: float, silent: str = "") -> tuple[Outcome, str]:
    """The outcome of a run that did not report success; `silent` says why when the run itself
    shows nothing wrong."""
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
    return "runtime_error", last or silent or f"exit status {run.exit_code} without a result"


def _same_value(expected: Any, actual: Any, tolerance: float) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return expected == actual or math.isclose(expected, actual, rel_tol=tolerance, abs_tol=tolerance)
    if isinstance(expected, (list, tuple)) and isinstance(actual, (list, tuple)):
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
    if isinstance(test, CallTest):
        return _run_call(sandbox, code, test, tolerance, limits)
    return _run_check(sandbox, code, test, limits)


def _harness_files(code: str) -> dict[str, str]:
    return {"solution.py": code, "plain.py": _source(Path(plain.__file__))}


@functools.cache
def _source(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _fds_line(requests: int, replies: int) -> str:
    return json.dumps({"requests": requests, "replies": replies}) + "\n"


def _run_call(sandbox: Sandbox, code: str, test: CallTest, tolerance: float, limits: Limits) -> tuple[Outcome, str]:
    """The code's function called once, from here: this process is the judge."""
    requests_read, requests_write = os.pipe()
    replies_read, replies_write = os.pipe()
    client = _Client(
        requests_write, replies_read, plain.dumps((test.call, test.args, test.kwargs)), limits.output_bytes
    )
    client.start()
    try:
        run = sandbox.run(
            _source(HARNESS / "candidate.py"),
            stdin=_fds_line(requests_read, replies_write),
            files=_harness_files(code),
            limits=limits,
            pass_fds=(requests_read, replies_write),
        )
    finally:
        client.finish()
    if client.reply is None:
        return _failure(run, limits.wall_time, "the code's process ended before answering")
    try:
        kind, *reply = plain.loads(client.reply)
    except (ValueError, TypeError):
        return "runtime_error", f"{test.call}(…) answered with something that is not plain data"
    if kind == "raised" and len(reply) == 2:
        return _raised(f"{reply[0]}: {reply[1]}")
    if kind != "value" or len(reply) != 1:
        return "runtime_error", f"{test.call}(…) returned something that is not plain data"
    try:
        # As JSON would have it: the expected value is JSON (tuples are lists, keys are strings).
        actual = json.loads(json.dumps(reply[0]))
    except (TypeError, ValueError) as exc:
        return "runtime_error", f"{test.call}(…) returned a value that is not JSON: {exc}"
    if _same_value(test.expected, actual, tolerance):
        return "passed", ""
    return (
        "wrong_answer",
        f"{test.call}(…) returned {excerpt(json.dumps(actual), EXCERPT)}, "
        f"expected {excerpt(json.dumps(test.expected), EXCERPT)}",
    )


def _run_check(sandbox: Sandbox, code: str, test: CheckTest, limits: Limits) -> tuple[Outcome, str]:
    """The check in a sandbox of its own, calling the code's functions in another."""
    requests_read, requests_write = os.pipe()
    replies_read, replies_write = os.pipe()
    outcome: dict[str, RunResult | BaseException] = {}

    def candidate() -> None:
        try:
            outcome["run"] = sandbox.run(
                _source(HARNESS / "candidate.py"),
                stdin=_fds_line(requests_read, replies_write),
                files=_harness_files(code),
                limits=limits,
                pass_fds=(requests_read, replies_write),
            )
        except BaseException as exc:
            outcome["run"] = exc

    serving = threading.Thread(target=candidate, name="rewardkit-candidate")
    serving.start()
    try:
        # A little longer than the code: when the code overruns, the check sees it go first.
        judge_limits = limits.model_copy(update={"wall_time": limits.wall_time + JUDGE_GRACE})
        judged = sandbox.run(
            _source(HARNESS / "check.py"),
            stdin=_fds_line(requests_write, replies_read),
            files={"test.py": test.check, "plain.py": _source(Path(plain.__file__))},
            limits=judge_limits,
            pass_fds=(requests_write, replies_read),
        )
    finally:
        serving.join()
    run = outcome["run"]
    if isinstance(run, BaseException):
        raise run
    if judged.timed_out:
        return "timeout", f"exceeded {limits.wall_time:g}s wall time"
    verdict = _verdict_line(judged.stdout)
    if verdict is None:
        return "runtime_error", f"the check ended without a verdict: {_last_line(judged.stderr) or judged.exit_code}"
    kind, detail = verdict
    if kind == "passed":
        return "passed", ""
    if kind == "gone":
        return _failure(run, limits.wall_time, "the code's process ended before answering")
    if kind == "wrong_answer":
        return "wrong_answer", excerpt(detail, EXCERPT)
    return _raised(detail)


JUDGE_GRACE = 2.0  # seconds


def _verdict_line(stdout: str) -> tuple[str, str] | None:
    """The check's verdict: its last output line, written by `harness/check.py` (trusted)."""
    try:
        verdict = json.loads(stdout.rstrip("\n").rpartition("\n")[2])
        kind, detail = verdict["outcome"], verdict["detail"]
    except (ValueError, TypeError, KeyError):
        return None
    if kind not in ("passed", "gone", "wrong_answer", "runtime_error") or not isinstance(detail, str):
        return None
    return kind, detail


def _raised(detail: str) -> tuple[Outcome, str]:
    """An exception of the code's, as reported by the judge: some are the code hitting a limit."""
    if any(marker in detail for marker in _RESOURCE_ERRORS):
        return "resource_limit", excerpt(detail, EXCERPT)
    return "runtime_error", excerpt(detail, EXCERPT)


class _Client(threading.Thread):
    """This process's end of a call: sends one request, keeps the first reply line (at most
    `cap` bytes). Never blocks past `finish`, even if a stray fork holds the pipes open."""

    def __init__(self, requests: int, replies: int, request: str, cap: int) -> None:
        super().__init__(name="rewardkit-call", daemon=True)
        self.requests: int | None = requests
        self.replies = replies
        self.pending = memoryview((request + "\n").encode())
        self.cap = cap
        self.reply: bytes | None = None
        self.done = threading.Event()

    def run(self) -> None:
        try:
            self._exchange()
        finally:
            # One call per run: the code's process reads the end of its requests and leaves.
            assert self.requests is not None
            os.close(self.requests)
            self.requests = None

    def _exchange(self) -> None:
        received = bytearray()
        assert self.requests is not None
        os.set_blocking(self.requests, False)
        os.set_blocking(self.replies, False)
        with selectors.DefaultSelector() as selector:
            selector.register(self.requests, selectors.EVENT_WRITE)
            selector.register(self.replies, selectors.EVENT_READ)
            while not self.done.is_set():
                for key, _ in selector.select(0.05):
                    if key.fd == self.requests:
                        try:
                            self.pending = self.pending[os.write(key.fd, self.pending) :]
                        except BlockingIOError:
                            continue
                        except BrokenPipeError:  # the code's process is gone; its run says why
                            self.pending = self.pending[:0]
                        if not self.pending:
                            selector.unregister(key.fd)
                        continue
                    try:
                        chunk = os.read(key.fd, 65536)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        return
                    received += chunk
                    if b"\n" in received:
                        self.reply = bytes(received.partition(b"\n")[0])
                        return
                    if len(received) > self.cap:
                        self.reply = b"\x00"  # not plain data: reported as such
                        return

    def finish(self) -> None:
        """Called once the run is over."""
        self.done.set()
        self.join()
        for fd in (self.requests, self.replies):
            if fd is not None:
                os.close(fd)


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
        problems = "; ".join(validation_problems(exc))
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
    except Exception as exc:  # a bug of ours, not the response's doing: say so, never crash a training step
        logger.exception("code reward failed")
        return EvaluateResult.invalid(f"code reward failed: {type(exc).__name__}: {exc}")
    return _verdict(results, params.mode)
