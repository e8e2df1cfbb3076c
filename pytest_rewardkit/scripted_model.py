"""A scripted tool-calling model for the local fake server: it plays known calls, one call per
request, turn by turn. With ground-truth calls it records reference trajectories; with altered
ones, the trajectories tests need (a wrong argument, a bad call, a model that never stops).

    model = ScriptedToolModel({"<first user message>": [["cd(folder='docs')", "ls()"], ["pwd()"]]})
    server = FakeChatServer(table=model)

A conversation is known by the text of its first user message. Its turn is the number of user
turns so far, its step the number of model answers since the last user message; step k of a turn
answers with the turn's k-th call, the step after the last call with `final` text. Calls are BFCL
call strings or {"name", "arguments"} objects; positional arguments take the parameter order of
the tools offered in the request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_rewardkit.models import content_text
from pytest_rewardkit.rewards.multi_turn import call_name, parse_call


def _position(messages: Sequence[dict[str, Any]]) -> tuple[str, int, int]:
    first, turn, step, previous = "", -1, 0, None
    for message in messages:
        role = message.get("role")
        if role == "user":
            if previous != "user":
                turn, step = turn + 1, 0
            first = first or content_text(message.get("content"))
        elif role == "assistant":
            step += 1
        previous = role
    return first, turn, step


def _parameter_names(tools: Any, name: str) -> list[str]:
    for tool in tools if isinstance(tools, list) else []:
        function = tool.get("function", tool) if isinstance(tool, dict) else {}
        if function.get("name") == name:
            properties = (function.get("parameters") or {}).get("properties") or {}
            return list(properties)
    return []


class ScriptedToolModel:
    """A `FakeChatServer` table: scripts by first user message, each a list of turns of calls."""

    def __init__(self, scripts: Mapping[str, Sequence[Sequence[Any]]], final: str = "Done.") -> None:
        self.scripts = scripts
        self.final = final

    def __call__(self, body: dict[str, Any]) -> list[str | dict[str, Any]]:
        messages = body.get("messages") or []
        first, turn, step = _position([m for m in messages if isinstance(m, dict)])
        script = self.scripts.get(first)
        if script is None:
            return [f"no script for a conversation starting {first[:80]!r}"]
        calls = list(script[turn]) if 0 <= turn < len(script) else []
        if step >= len(calls):
            return [self.final]
        raw = calls[step]
        if isinstance(raw, dict):
            # Sent as written, so that tests can script malformed calls (unknown tool, bad JSON).
            name, arguments = raw.get("name"), raw.get("arguments", {})
            arguments = arguments if isinstance(arguments, str) else json.dumps(arguments)
        else:
            call = parse_call(raw, _parameter_names(body.get("tools"), call_name(raw)))
            name, arguments = call.name, json.dumps(call.arguments)
        tool_call = {
            "id": f"call_{turn}_{step}",
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        return [{"content": None, "tool_calls": [tool_call]}]
