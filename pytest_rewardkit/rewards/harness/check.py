"""The judge's side: run a row's check code (trusted), calling the candidate through stubs.

Runs as the sandbox's `__main__` in a sandbox of its own, with `plain.py` and `check.py`'s code as
`test.py` beside it. The first stdin line names the request and reply fds of the channel to
`candidate.py`. Every global name the check uses that is not a builtin (nor defined by the check
itself) is a stub that sends its arguments and rebuilds the answer from plain data. The verdict is
this program's last stdout line: one JSON object, {"outcome": ..., "detail": ...}.
"""

from __future__ import annotations

import builtins
import json
import os
import sys
import traceback
import types
from typing import Any

# The sandbox runs this file with `-I`: its own folder is not on the path until added.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plain

REPLY_BYTES = 1 << 24


class CandidateGone(BaseException):
    """The candidate's process ended (or closed its replies) before answering. A BaseException, so
    that a check's own `except Exception` cannot swallow it."""


class BadReply(BaseException):
    """The candidate answered with something that is not plain data."""


class Channel:
    def __init__(self, requests: Any, replies: Any) -> None:
        self.requests = requests
        self.replies = replies

    def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            self.requests.write(plain.dumps((name, list(args), kwargs)) + "\n")
            self.requests.flush()
        except BrokenPipeError:
            raise CandidateGone from None
        line = self.replies.readline(REPLY_BYTES)
        if not line:
            raise CandidateGone
        if not line.endswith(b"\n"):
            raise BadReply(f"{name}(…) answered with more than {REPLY_BYTES} bytes")
        try:
            reply = plain.loads(line)
            kind = reply[0]
        except (ValueError, TypeError, IndexError, KeyError):
            raise BadReply(f"{name}(…) answered with something that is not plain data") from None
        if kind == "value" and len(reply) == 2:
            return reply[1]
        if kind == "raised" and len(reply) == 3:
            raise _rebuilt(*map(str, reply[1:]))
        if kind == "unsendable" and len(reply) == 3:
            raise BadReply(f"{name}(…) returned a {str(reply[1])[:100]}, which is not plain data")
        raise BadReply(f"{name}(…) answered with something that is not plain data")


class CandidateRaised(Exception):
    """An exception of the candidate's, of a type the judge does not know."""


def _rebuilt(type_name: str, message: str) -> Exception:
    """The candidate's exception as a builtin exception of the same name (looked up among the
    judge's own builtins, never sent), so that checks expecting e.g. ValueError still work."""
    kind = getattr(builtins, type_name, None)
    exc: Exception
    if isinstance(kind, type) and issubclass(kind, Exception):
        try:
            exc = kind(message)
        except Exception:
            exc = CandidateRaised(f"{type_name}: {message}")
    else:
        exc = CandidateRaised(f"{type_name}: {message}")
    exc.__rewardkit_candidate__ = True  # type: ignore[attr-defined]
    return exc


class Remote:
    """A function of the candidate's, as the check sees it."""

    def __init__(self, channel: Channel, name: str) -> None:
        self.channel = channel
        self.__name__ = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.channel.call(self.__name__, args, kwargs)

    def __repr__(self) -> str:
        return f"<candidate function {self.__name__}>"


def global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= global_names(constant)
    return names


def judge(code: types.CodeType, channel: Channel) -> tuple[str, str]:
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    for name in sorted(global_names(code) - set(dir(builtins))):
        namespace[name] = Remote(channel, name)
    try:
        exec(code, namespace)
    except CandidateGone:
        return "gone", ""
    except BadReply as exc:
        return "runtime_error", str(exc)
    except AssertionError as exc:
        return "wrong_answer", _where(exc)
    except Exception as exc:
        if getattr(exc, "__rewardkit_candidate__", False):
            return "runtime_error", f"{type(exc).__name__}: {exc}"[:1000]
        return "runtime_error", f"the check raised {type(exc).__name__}: {exc} ({_where(exc)})"[:1000]
    return "passed", ""


def _where(exc: BaseException) -> str:
    """The check's line that failed (`assert candidate(3) == 4`), and the assertion's message."""
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == "test.py"]
    line = frames[-1].line if frames else ""
    message = str(exc)
    return f"{line}{': ' + message if message else ''}"[:1000] or type(exc).__name__


def main() -> None:
    fds = json.loads(sys.stdin.readline())
    requests = os.fdopen(fds["requests"], "w", encoding="utf-8")
    replies = os.fdopen(fds["replies"], "rb")
    with open("test.py", encoding="utf-8") as source:
        code = compile(source.read(), "test.py", "exec")
    outcome, detail = judge(code, Channel(requests, replies))
    sys.stdout.flush()
    os.write(1, ("\n" + json.dumps({"outcome": outcome, "detail": detail}) + "\n").encode())
    os._exit(0)


main()
