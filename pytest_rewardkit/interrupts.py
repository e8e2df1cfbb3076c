"""A short step that Ctrl-C cannot cut in half: the interrupt is held until the step ends, then
delivered as usual, so Ctrl-C still stops the run, only a few microseconds later.

A Python-level handler rather than `signal.pthread_sigmask`: blocking SIGINT on the main thread
alone does not hold it back when the kernel delivers it to another thread (the watchdog, the
event loop's thread), and Python raises KeyboardInterrupt on the main thread whichever thread
received the signal. Swapping the handler holds it back wherever it lands.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def sigint_held() -> Iterator[None]:
    """Run the block with SIGINT held back; a SIGINT that came meanwhile is raised again after it."""
    # KeyboardInterrupt is only ever raised on the main thread; a handler not installed from Python
    # (None) cannot be put back, so the block runs as it is.
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is None:
        yield
        return
    came: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        came.append(signum)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if came:
            # Delivered to whatever handles SIGINT again: KeyboardInterrupt, an ignore, a default exit.
            signal.raise_signal(signal.SIGINT)
