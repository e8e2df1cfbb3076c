"""The grading worker: `python -m pytest_rewardkit.rewards._grading_worker PARENT REQUESTS REPLIES LIFELINE`.

Started by `deadline.py` for calls made off the main thread. It reads `(function, args)` pairs from
the REQUESTS pipe and answers each on the REPLIES pipe with `(True, result)` or `(False, exception)`.
Being its own `__main__`, it never imports the caller's script. It dies with its caller: a
parent-death SIGKILL (Linux; delivered even while a call holds the GIL in a long C computation), and
a thread that exits the process when the LIFELINE pipe, which only the caller holds open, reaches EOF.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
from multiprocessing.connection import Connection

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent(parent: int, lifeline: int) -> None:
    with contextlib.suppress(OSError, AttributeError):  # no prctl (not Linux): the lifeline alone
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(0)  # the caller died before the signal was armed
    threading.Thread(target=_exit_at_eof, args=(lifeline,), name="lifeline", daemon=True).start()


def _exit_at_eof(fd: int) -> None:
    while os.read(fd, 1):
        pass
    os._exit(0)


def main(argv: list[str]) -> None:
    parent, requests_fd, replies_fd, lifeline = (int(arg) for arg in argv)
    _die_with_parent(parent, lifeline)
    # Ctrl-C reaches the whole process group; the caller decides what an interrupt means.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests = Connection(requests_fd, writable=False)
    replies = Connection(replies_fd, readable=False)
    # The caller's import path, after the worker's own: functions are sent by module and name.
    sys.path.extend(path for path in requests.recv() if path not in sys.path)
    while True:
        try:
            fn, args = requests.recv()
            reply = (True, fn(*args))
        except EOFError:
            return  # the caller closed the pipe: done
        except Exception as exc:
            reply = (False, exc)
        try:
            replies.send(reply)
        except Exception as exc:  # a result or exception that does not pickle
            replies.send((False, RuntimeError(f"the grading worker could not send back its reply: {exc!r}")))


if __name__ == "__main__":
    main(sys.argv[1:])
