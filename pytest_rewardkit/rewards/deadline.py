"""Run a CPU-bound grading call with a hard deadline, on or off the main thread.

Symbolic math can take unbounded time on hostile input. On the main thread a SIGALRM timer
interrupts it in place; elsewhere (TRL's reward threads, an event-loop executor) signals are not
available, so the call runs in a single persistent worker process that is killed on overrun.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import math
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class DeadlineExceeded(BaseException):
    """Raised when a call overruns. A BaseException so that broad `except Exception`
    blocks inside third-party graders cannot swallow it."""


_pool: concurrent.futures.ProcessPoolExecutor | None = None
# One call at a time in the worker: a call queued behind another would spend its deadline
# waiting, and killing the worker on its overrun would kill the other call.
_worker_lock = threading.Lock()


def _get_pool(warm_up: Callable[[], object] | None) -> concurrent.futures.ProcessPoolExecutor:
    global _pool
    if _pool is None:
        # forkserver: forking a process that runs threads can deadlock the child.
        pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("forkserver")
        )
        _pool = pool
        try:
            # Start-up (a fresh interpreter importing sympy takes about a second) is not the call's time.
            pool.submit(warm_up or _nothing).result()
        except BaseException:
            _discard_pool()
            raise
    return _pool


def _nothing() -> None:
    return None


def _discard_pool() -> None:
    global _pool
    pool, _pool = _pool, None
    if pool is not None:
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)


# Let go of the pool while the interpreter is whole: collected during shutdown, its manager
# thread reports an AttributeError on modules already torn down.
atexit.register(_discard_pool)


def _raise_deadline(signum: int, frame: Any) -> None:
    raise DeadlineExceeded()


def _on_main_thread(fn: Callable[..., T], args: tuple[Any, ...], seconds: float) -> T:
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
        future = _get_pool(warm_up).submit(fn, *args)
        try:
            return future.result(timeout=seconds)
        except concurrent.futures.TimeoutError:
            _discard_pool()
            raise DeadlineExceeded() from None
        except concurrent.futures.process.BrokenProcessPool:
            _discard_pool()
            raise


def call_with_deadline(
    fn: Callable[..., T], args: tuple[Any, ...], seconds: float, warm_up: Callable[[], object] | None = None
) -> T:
    """`fn(*args)`, or `DeadlineExceeded` after `seconds`.

    Off the main thread, `fn`, `args` and the result must pickle, `warm_up` (imports, say) runs once
    in each new worker before any deadline starts, and the calling script needs the usual
    `if __name__ == "__main__":` guard, as the worker imports it."""
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"a deadline must be a positive number of seconds, got {seconds!r}")
    if threading.current_thread() is threading.main_thread():
        return _on_main_thread(fn, args, seconds)
    return _in_worker(fn, args, seconds, warm_up)
