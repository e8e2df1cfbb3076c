"""Run a CPU-bound grading call with a hard deadline, on or off the main thread.

Symbolic math can take unbounded time on hostile input. On the main thread a SIGALRM timer
interrupts it in place; elsewhere (TRL's reward threads, an event-loop executor) signals are not
available, so the call runs in a single persistent worker process that is killed on overrun.

The worker is `python -m pytest_rewardkit.rewards._grading_worker` speaking over pipes of its own:
it never imports the caller's `__main__` (no `if __name__ == "__main__":` guard needed), never
holds the caller's stdout or stderr, and dies with the caller (see `_grading_worker`).
"""

from __future__ import annotations

import atexit
import concurrent.futures
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Any, TypeVar

from pytest_rewardkit.errors import RewardError

T = TypeVar("T")

# A fresh interpreter importing sympy takes about a second, many more on a loaded machine.
_START_SECONDS = 120.0
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]
# A source checkout the caller imports from goes on the worker's path; an installed package is on
# it already, and putting site-packages ahead of the standard library could shadow it.
_EXTRA_PATH = [] if _PACKAGE_ROOT.name in ("site-packages", "dist-packages") else [str(_PACKAGE_ROOT)]


class DeadlineExceeded(BaseException):
    """Raised when a call overruns. A BaseException so that broad `except Exception`
    blocks inside third-party graders cannot swallow it."""


class GradingWorkerError(RewardError, RuntimeError):
    """The worker process could not start or died during a call: the grader failed, not the answer."""


class _Worker:
    """The worker process, the caller's ends of its pipes, and the file its stderr goes to."""

    def __init__(
        self, process: subprocess.Popen[bytes], requests: Connection, replies: Connection, lifeline: int, log: IO[bytes]
    ) -> None:
        self.process, self.requests, self.replies, self.lifeline, self.log = process, requests, replies, lifeline, log
        self.owner = os.getpid()

    def call(self, fn: Callable[..., T], args: tuple[Any, ...], seconds: float) -> T:
        try:
            self.requests.send((fn, args))
            if not self.replies.poll(seconds):
                raise DeadlineExceeded()
            ok, value = self.replies.recv()
        except (OSError, EOFError) as exc:
            raise self.died() from exc
        if ok:
            return value
        raise value

    def died(self) -> GradingWorkerError:
        try:
            status = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            status = None
        self.log.seek(0)
        stderr = self.log.read().decode(errors="replace").strip()[-2000:]
        return GradingWorkerError(
            f"the grading worker (pid {self.process.pid}) died (exit status {status})"
            + (f"; its stderr ends:\n{stderr}" if stderr else "")
        )

    def stop(self) -> None:
        if self.owner == os.getpid():  # a forked child leaves its parent's worker alone
            self.process.kill()
            self.process.wait()
        self.requests.close()
        self.replies.close()
        os.close(self.lifeline)
        self.log.close()


def _start_worker() -> _Worker:
    """Runs on `_parent_thread()`: the kernel's parent-death signal fires when the *thread* that
    started the worker ends, so that thread lives as long as the process."""
    requests_r, requests_w = os.pipe()
    replies_r, replies_w = os.pipe()
    lifeline_r, lifeline_w = os.pipe()
    theirs = (requests_r, replies_w, lifeline_r)
    log = tempfile.TemporaryFile()  # noqa: SIM115 -- the worker's stderr, kept open as long as it runs
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [*_EXTRA_PATH, os.environ.get("PYTHONPATH")]))}
    try:
        process = subprocess.Popen(
            # -P: the working directory is not put first on the worker's import path.
            [
                sys.executable,
                "-P",
                "-m",
                "pytest_rewardkit.rewards._grading_worker",
                str(os.getpid()),
                *map(str, theirs),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            pass_fds=theirs,
            env=env,
        )
    except BaseException:
        for fd in (requests_w, replies_r, lifeline_w):
            os.close(fd)
        log.close()
        raise
    finally:
        for fd in theirs:
            os.close(fd)
    return _Worker(
        process, Connection(requests_w, readable=False), Connection(replies_r, writable=False), lifeline_w, log
    )


_worker: _Worker | None = None
# One call at a time in the worker: a call queued behind another would spend its deadline
# waiting, and killing the worker on its overrun would kill the other call.
_worker_lock = threading.Lock()
_parent: tuple[int, concurrent.futures.ThreadPoolExecutor] | None = None


def _parent_thread() -> concurrent.futures.ThreadPoolExecutor:
    global _parent
    if _parent is None or _parent[0] != os.getpid():  # threads do not survive a fork
        _parent = (os.getpid(), concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="rewardkit-grading-parent"))
    return _parent[1]


def _get_worker(warm_up: Callable[[], object] | None) -> _Worker:
    global _worker
    if _worker is not None and (_worker.owner != os.getpid() or _worker.process.poll() is not None):
        _discard_worker()  # forked from the worker's owner, or died between calls: start afresh
    if _worker is None:
        try:
            worker = _parent_thread().submit(_start_worker).result()
        except OSError as exc:
            raise GradingWorkerError(f"the grading worker could not start: {exc}") from exc
        _worker = worker
        try:
            worker.requests.send(list(sys.path))
            # Start-up (imports, say) is not the call's time.
            worker.call(warm_up or _nothing, (), _START_SECONDS)
        except DeadlineExceeded:
            _discard_worker()
            raise GradingWorkerError(f"the grading worker did not start within {_START_SECONDS:g}s") from None
        except BaseException:
            _discard_worker()
            raise
    return _worker


def _nothing() -> None:
    return None


def _discard_worker() -> None:
    global _worker
    worker, _worker = _worker, None
    if worker is not None:
        worker.stop()


atexit.register(_discard_worker)


def _raise_deadline(signum: int, frame: Any) -> None:
    raise DeadlineExceeded()


# The warm-ups already run in this process: an import cut short by the alarm would leave its
# module half-initialised, failing every later call.
_warmed_up: set[Callable[[], object]] = set()


def _on_main_thread(
    fn: Callable[..., T], args: tuple[Any, ...], seconds: float, warm_up: Callable[[], object] | None
) -> T:
    if warm_up is not None and warm_up not in _warmed_up:
        warm_up()
        _warmed_up.add(warm_up)
    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, _raise_deadline)
    outer_delay, outer_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    if outer_delay and outer_delay < seconds:
        signal.setitimer(signal.ITIMER_REAL, outer_delay)  # someone else's alarm (pytest-timeout) is due first
    try:
        return fn(*args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_delay:
            # Re-arm the outer alarm with what is left of it, so it still fires.
            left = max(outer_delay - (time.monotonic() - started), 1e-6)
            signal.setitimer(signal.ITIMER_REAL, left, outer_interval)


def _in_worker(fn: Callable[..., T], args: tuple[Any, ...], seconds: float, warm_up: Callable[[], object] | None) -> T:
    with _worker_lock:
        worker = _get_worker(warm_up)
        try:
            return worker.call(fn, args, seconds)
        except (DeadlineExceeded, GradingWorkerError):
            _discard_worker()
            raise


def call_with_deadline(
    fn: Callable[..., T], args: tuple[Any, ...], seconds: float, warm_up: Callable[[], object] | None = None
) -> T:
    """`fn(*args)`, or `DeadlineExceeded` after `seconds`.

    `warm_up` (imports, say) runs once, before any deadline starts, in this process and in each new
    worker. Off the main thread, `fn` must be importable by module and name (not defined in
    `__main__`), `args` and the result must pickle, and `GradingWorkerError` means the worker
    died or could not start."""
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"a deadline must be a positive number of seconds, got {seconds!r}")
    if threading.current_thread() is threading.main_thread():
        return _on_main_thread(fn, args, seconds, warm_up)
    return _in_worker(fn, args, seconds, warm_up)
