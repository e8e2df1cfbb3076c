"""A deadline for a call on the main thread that interrupts it in place: a reward that hangs
(`time.sleep(3600)`, an endless loop) becomes that row's error and the run goes on.

One daemon thread watches the armed deadline and, past it, sends SIGUSR2 to the main thread; the
handler raises `CallTimeout` there. A signal rather than a helper thread running the call: the
call stays on the main thread, where the math reward's own SIGALRM deadline works, and it is
really stopped, not left running. SIGALRM stays free for graders that use it themselves.
Elsewhere than the main thread (or without SIGUSR2) the call runs without this deadline.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TypeVar

T = TypeVar("T")

SIGNAL = getattr(signal, "SIGUSR2", None)


class CallTimeout(BaseException):
    """The call overran its deadline. A BaseException, so a reward's broad `except Exception`
    cannot swallow it."""


class _Watchdog:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._deadline: float | None = None
        # When the watching thread wakes by itself next (None: only when notified). A call armed
        # no earlier than that needs no wake-up, so successive calls with the same limit cost the
        # watcher nothing: waking it for each would hand the GIL back and forth once per call.
        self._wakes_at: float | None = None
        self._fired = False
        self._main = threading.main_thread().ident
        assert SIGNAL is not None
        self._previous = signal.signal(SIGNAL, self._handle)
        threading.Thread(target=self._watch, name="rewardkit-watchdog", daemon=True).start()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        with self._cond:
            ours, self._fired = self._fired, False
        if ours:
            raise CallTimeout
        if callable(self._previous):
            self._previous(signum, frame)

    def _watch(self) -> None:
        with self._cond:
            while True:
                if self._deadline is None:
                    self._wakes_at = None
                    self._cond.wait()
                    continue
                remaining = self._deadline - time.monotonic()
                if remaining > 0:
                    self._wakes_at = self._deadline
                    self._cond.wait(remaining)
                    continue
                # Fired under the lock: once `disarm` returns, no signal of ours is on its way.
                self._deadline, self._fired = None, True
                assert SIGNAL is not None and self._main is not None
                signal.pthread_kill(self._main, SIGNAL)

    def run(self, call: Callable[[], T], seconds: float) -> T:
        deadline = time.monotonic() + seconds
        with self._cond:
            self._deadline, self._fired = deadline, False
            if self._wakes_at is None or self._wakes_at > deadline:
                self._cond.notify()
        try:
            return call()
        finally:
            # A signal that crossed the call's return finds nothing armed and does nothing.
            with self._cond:
                self._deadline, self._fired = None, False


_watchdog: _Watchdog | None = None
_lock = threading.Lock()


def run_with_deadline(call: Callable[[], T], seconds: float) -> T:
    """`call()`, raising CallTimeout if it runs longer than `seconds` (main thread only)."""
    global _watchdog
    if SIGNAL is None or threading.current_thread() is not threading.main_thread():
        return call()
    with _lock:
        if _watchdog is None:
            _watchdog = _Watchdog()
    return _watchdog.run(call, seconds)
