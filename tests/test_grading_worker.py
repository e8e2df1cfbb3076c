"""The grading worker that runs the `math` reward's calls made off the main thread: it needs no
`if __name__ == "__main__":` guard in the caller, dies with its caller however the caller ends
(SIGKILL, `os._exit` from a thread), never holds the caller's output open, and its death is a
grader error, never an exception out of the reward and never a wrong answer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest

from pytest_rewardkit import EvaluateResult, math_reward
from pytest_rewardkit.rewards import deadline

HOSTILE = r"\boxed{9^{9^{9^{9}}}}"  # sympy would evaluate this tower for hours, mostly inside C
WORKER_MODULE = "pytest_rewardkit.rewards._grading_worker"

# No `if __name__ == "__main__":` guard, on purpose.
CALLER = r"""
import os, sys, threading, time
from pytest_rewardkit import math_reward

def grade(content, timeout=60.0):
    return math_reward([{"role": "assistant", "content": content}], ground_truth="5", timeout=timeout)

def off_the_main_thread():
    first = grade("\\boxed{5}")
    print("graded", first.score, first.reason, flush=True)
    if sys.argv[1] == "busy":
        print("busy", flush=True)
        grade(sys.argv[2])
    elif sys.argv[1] == "exit-from-thread":
        os._exit(3)

thread = threading.Thread(target=off_the_main_thread)
thread.start()
thread.join()
if sys.argv[1] != "return":
    time.sleep(300)  # until killed
"""


def score(response: str, **params: Any) -> EvaluateResult:
    return math_reward([{"role": "assistant", "content": response}], ground_truth="5", **params)


def off_the_main_thread(call: Callable[[], EvaluateResult]) -> EvaluateResult:
    results: list[EvaluateResult] = []
    thread = threading.Thread(target=lambda: results.append(call()))
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive(), "grading off the main thread hung"
    return results[0]


def workers_of(caller: int) -> list[int]:
    """Live grading workers started by process `caller` (its pid is the worker's first argument)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and WORKER_MODULE.encode() in argv and str(caller).encode() in argv:
            found.append(int(entry.name))
    return found


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline_at = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline_at:
            return False
        time.sleep(0.05)
    return True


def read_to_eof(stream: IO[bytes], seconds: float) -> bytes | None:
    """What a `| tail` reader gets: everything up to EOF, or None if EOF did not come in time."""
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(stream.read()), daemon=True)
    reader.start()
    reader.join(seconds)
    return got[0] if got else None


def start_caller(tmp_path: Path, mode: str) -> subprocess.Popen[bytes]:
    script = tmp_path / "caller.py"
    script.write_text(CALLER, encoding="utf-8")
    return subprocess.Popen(
        [sys.executable, str(script), mode, HOSTILE],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


def wait_for_line(caller: subprocess.Popen[bytes], prefix: bytes) -> bytes:
    assert caller.stdout is not None
    for line in caller.stdout:
        if line.startswith(prefix):
            return line
    raise AssertionError(f"the caller ended before printing {prefix!r} (exit status {caller.wait()})")


@pytest.mark.parametrize("mode", ["idle", "busy"])
def test_a_caller_killed_with_sigkill_leaves_no_worker_and_its_pipe_ends(tmp_path: Path, mode: str) -> None:
    caller = start_caller(tmp_path, mode)
    try:
        assert wait_for_line(caller, b"graded").startswith(b"graded 1.0")
        if mode == "busy":
            wait_for_line(caller, b"busy")
            time.sleep(0.5)  # the worker is deep in the tower's arithmetic, holding its GIL
        workers = workers_of(caller.pid)
        assert len(workers) == 1
        caller.send_signal(signal.SIGKILL)
        assert caller.stdout is not None
        assert read_to_eof(caller.stdout, 20) is not None, "something still holds the caller's stdout"
        assert wait_until(lambda: workers_of(caller.pid) == [], 20), f"worker {workers} outlived its caller"
    finally:
        caller.kill()
        caller.wait()


def test_a_caller_ending_with_os_exit_from_a_thread_leaves_no_worker_and_its_pipe_ends(tmp_path: Path) -> None:
    caller = start_caller(tmp_path, "exit-from-thread")
    try:
        assert caller.stdout is not None
        rest = read_to_eof(caller.stdout, 120)
        assert rest is not None, "something still holds the caller's stdout"
        assert b"graded 1.0" in rest
        assert caller.wait(timeout=20) == 3
        assert wait_until(lambda: workers_of(caller.pid) == [], 20)
    finally:
        caller.kill()
        caller.wait()


def test_a_script_without_a_main_guard_grades_off_the_main_thread_and_exits(tmp_path: Path) -> None:
    caller = start_caller(tmp_path, "return")
    try:
        assert caller.stdout is not None
        out = read_to_eof(caller.stdout, 120)
        assert caller.wait(timeout=20) == 0, out
        assert out is not None and out.startswith(b"graded 1.0 answer 5 equals 5"), out
        assert b"Error" not in out
        assert wait_until(lambda: workers_of(caller.pid) == [], 20)
    finally:
        caller.kill()
        caller.wait()


def test_the_worker_outlives_the_thread_that_first_needed_it() -> None:
    # PR_SET_PDEATHSIG fires when the thread that started the worker ends, not its process.
    assert off_the_main_thread(lambda: score("\\boxed{5}")).score == 1.0
    first = workers_of(os.getpid())
    assert off_the_main_thread(lambda: score("\\boxed{5}")).score == 1.0
    assert workers_of(os.getpid()) == first and len(first) == 1


def test_a_worker_that_dies_mid_call_is_a_grader_error_then_a_new_worker_grades() -> None:
    assert off_the_main_thread(lambda: score("\\boxed{5}")).score == 1.0
    (worker,) = workers_of(os.getpid())
    killer = threading.Timer(1.0, os.kill, (worker, signal.SIGKILL))
    killer.start()
    result = off_the_main_thread(lambda: score(HOSTILE, timeout=60))
    killer.join()
    assert result.is_error and result.score == 0.0
    assert "grader error" in result.reason and "died" in result.reason and "-9" in result.reason
    assert off_the_main_thread(lambda: score("\\boxed{5}")).score == 1.0
    assert workers_of(os.getpid()) not in ([], [worker])


def test_a_worker_that_cannot_start_is_a_grader_error(monkeypatch: pytest.MonkeyPatch) -> None:
    deadline._discard_worker()
    monkeypatch.setattr(sys, "executable", "/nonexistent/python3")
    result = off_the_main_thread(lambda: score("\\boxed{5}"))
    assert result.is_error and "grader error" in result.reason and "could not start" in result.reason
    monkeypatch.undo()
    assert off_the_main_thread(lambda: score("\\boxed{5}")).score == 1.0
