"""The candidate's side: load `solution.py`, then answer calls until the requests end.

Runs as the sandbox's `__main__` with `plain.py` beside it. The first stdin line names two fds:
requests (one `plain` line each: name, args, kwargs) and replies. Each reply is one `plain` line:
("value", v), ("raised", exception type name, message) or ("unsendable", type name). Nothing here is
trusted: the code it loads can replace any of it; the judge reads only what arrives as plain data.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

# The sandbox runs this file with `-I`: its own folder is not on the path until added.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plain


def serve(namespace: dict[str, Any], requests: Any, replies: Any) -> None:
    for line in requests:
        name, args, kwargs = plain.loads(line)
        function = namespace.get(name)
        if not callable(function):
            reply: tuple[Any, ...] = ("raised", "NameError", f"the code defines no function {name!r}")
        else:
            try:
                value = function(*args, **kwargs)
            except Exception as exc:
                reply = ("raised", type(exc).__name__, _text(exc))
            else:
                reply = ("value", value)
        try:
            encoded = plain.dumps(reply)
        except (TypeError, ValueError) as exc:
            encoded = plain.dumps(("unsendable", type(reply[-1]).__name__, str(exc)))
        replies.write(encoded + "\n")
        replies.flush()


def _text(exc: BaseException) -> str:
    try:
        return str(exc)[:1000]
    except Exception:
        return ""


def main() -> None:
    fds = json.loads(sys.stdin.readline())
    requests = os.fdopen(fds["requests"], "r", encoding="utf-8")
    replies = os.fdopen(fds["replies"], "w", encoding="utf-8")
    namespace: dict[str, Any] = {"__name__": "solution", "__builtins__": __builtins__}
    with open("solution.py", encoding="utf-8") as source:
        exec(compile(source.read(), "solution.py", "exec"), namespace)
    serve(namespace, requests, replies)
    # The judge is done: leave at once, whatever threads the code started.
    sys.stdout.flush()
    os._exit(0)


main()
