"""A suite's environment for TRL's `GRPOTrainer(environment_factory=...)`.

TRL builds one instance per rollout, calls `reset(**row)` with the dataset row's columns, offers
the instance's public methods as tools (their schemas read from type hints and Google-style
docstrings) during generation, and calls `get_reward()` once the rollout is done. The class made
here gives TRL exactly that, backed by the suite's environment:

- one method per tool of the suite (function documents or the class's own methods), with the
  tool's JSON Schema turned into type hints and an `Args:` docstring for TRL to render;
- each call goes through the same path as a pytest rollout: arguments checked against the
  schema, errors answered as text, the result formatted the same way;
- `reset` builds a fresh environment from the row's `initial_config` (a row's
  `excluded_function` are answered as unknown tools: TRL renders one tool list per class);
- `get_reward` scores the rollout with the `multi_turn` checker on the first user turn, the only
  one TRL plays.

    from trl import GRPOTrainer
    from pytest_rewardkit.trl import environment_factory, suite_dataset

    trainer = GRPOTrainer(model=..., train_dataset=suite_dataset("examples/multi_turn"),
                          environment_factory=environment_factory("examples/multi_turn"), args=...)
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

from pytest_rewardkit.config import ConfigError
from pytest_rewardkit.environment import Environment, EnvironmentSession, Tool, load_environment
from pytest_rewardkit.models import Message
from pytest_rewardkit.rewards.multi_turn import multi_turn_reward
from pytest_rewardkit.suite import load_suite

_PYTHON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list,
    "object": dict,
}


def _json(value: Any) -> Any:
    # suite_dataset stores nested fields as JSON columns; a hand-made dataset may hold JSON text.
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class TRLEnvironment:
    """The base of the classes `environment_factory` makes; one instance serves many rollouts."""

    environment: Environment  # set on each generated class

    def __init__(self) -> None:
        self._session: EnvironmentSession | None = None
        self._row: dict[str, Any] = {}
        self._calls: list[tuple[str, dict[str, Any], str]] = []

    def reset(self, **row: Any) -> None:
        """A fresh environment from the row's `initial_config`; TRL calls this before each rollout."""
        self._row = row
        self._calls = []
        self._session = self.environment.start(_json(row.get("initial_config")), _json(row.get("excluded_function")))

    def get_reward(self) -> float | None:
        """BFCL's checker on the first user turn: 1 when the state and results match the ground
        truth's, else 0; None when the row cannot be checked."""
        truth = _json(self._row.get("ground_truth"))
        if not isinstance(truth, list) or not truth:
            return None
        messages = [Message(role="user", content="(turn 0)")]
        for number, (name, arguments, content) in enumerate(self._calls):
            call_id = f"call_{number}"
            function = {"name": name, "arguments": json.dumps(arguments)}
            messages.append(
                Message(
                    role="assistant",
                    content=None,
                    tool_calls=[{"id": call_id, "type": "function", "function": function}],
                )
            )
            messages.append(Message(role="tool", content=content, tool_call_id=call_id))
        result = multi_turn_reward(
            messages,
            ground_truth=truth[:1],
            environment=self.environment,
            initial_config=_json(self._row.get("initial_config")),
            excluded_function=_json(self._row.get("excluded_function")),
        )
        return None if result.is_error else result.score

    def _run(self, name: str, arguments: dict[str, Any]) -> str:
        if self._session is None:
            return "Error: the environment was not reset before the call"
        content = self._session.call(name, arguments).content
        self._calls.append((name, arguments, content))
        return content


def _annotation(schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    return _PYTHON_TYPES.get(kind, Any) if isinstance(kind, str) else Any


def _tool_method(tool: Tool) -> Any:
    properties = tool.parameters.get("properties") or {}
    required = set(tool.parameters.get("required") or [])

    def method(self: TRLEnvironment, **arguments: Any) -> str:
        return self._run(tool.name, arguments)

    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations: dict[str, Any] = {"return": str}
    args_doc = []
    for name, schema in properties.items():
        annotation = _annotation(schema if isinstance(schema, dict) else {})
        default = inspect.Parameter.empty if name in required else None
        if default is None:
            annotation = annotation | None if annotation is not Any else Any
        parameters.append(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        )
        annotations[name] = annotation
        description = " ".join(str(schema.get("description", "") if isinstance(schema, dict) else "").split())
        args_doc.append(f"    {name}: {description or name}")
    method.__name__ = method.__qualname__ = tool.name
    method.__signature__ = inspect.Signature(parameters, return_annotation=str)  # type: ignore[attr-defined]
    method.__annotations__ = annotations
    description = " ".join(tool.description.split()) or tool.name
    method.__doc__ = description + ("\n\nArgs:\n" + "\n".join(args_doc) if args_doc else "")
    return method


def environment_factory(suite: str | Path) -> type[TRLEnvironment]:
    """A class for `GRPOTrainer(environment_factory=...)`, made from the suite's environment."""
    settings, _ = load_suite(Path(suite))
    if settings.environment is None:
        raise ConfigError(f"{settings.config_path}: the suite names no environment (`environment: module:Class`)")
    environment = load_environment(settings.environment, settings.config_path.parent)
    reserved = {"reset", "get_reward"} & set(environment.tools)
    if reserved:
        raise ConfigError(
            f"{settings.config_path}: tools named {sorted(reserved)} clash with TRL's environment methods"
        )
    members: dict[str, Any] = {name: _tool_method(tool) for name, tool in environment.tools.items()}
    members["environment"] = environment
    return type(f"{environment.cls.__name__}ForTRL", (TRLEnvironment,), members)
