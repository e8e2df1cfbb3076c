"""Run a CPU-bound grading call with a hard deadline, on or off the main thread.

Symbolic math can take unbounded time on hostile input. On the main thread a SIGALRM timer
interrupts it in place; elsewhere (TRL's reward threads, an event-loop executor) signals are not
available, so the call runs in a single persistent worker process that is killed on overrun.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import signal
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class DeadlineExceeded(BaseException):
    """Raised when a call overruns. A BaseException so that broad `except Exception`
    blocks inside third-party graders cannot swallow it."""


_pool: concurrent.futures.ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def _get_pool() -> concurrent.futures.ProcessPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            # forkserver: forking a process that runs threads can deadlock the child.
            _pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("forkserver")
            )
        return _pool


def _discard_pool() -> None:
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)


def _raise_deadline(signum: int, frame: Any) -> None:
    raise DeadlineExceeded()


def call_with_deadline(fn: Callable[..., T], args: tuple[Any, ...], seconds: float) -> T:
    """`fn(*args)`, or `DeadlineExceeded` after `seconds`. `fn` and `args` must pickle when
    this is called off the main thread."""
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGALRM, _raise_deadline)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            return fn(*args)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    future = _get_pool().submit(fn, *args)
    try:
        return future.result(timeout=seconds)
    except concurrent.futures.TimeoutError:
        _discard_pool()
        raise DeadlineExceeded() from None
    except concurrent.futures.process.BrokenProcessPool:
        _discard_pool()
        raise
