"""Environments of multi-turn rows: a user's class whose public methods are the model's tools.

An environment is built fresh for every rollout as `Class(**initial_config)`. Its tools are its
public methods; their JSON schemas come from the suite's function documents (`tools:`) or from
the methods' type hints and docstrings (Google style `Args:`). Everything the model sends is
untrusted input: a call names a tool of this instance or is answered with an error, its arguments
are JSON checked against the tool's schema before the method runs, and a method that raises is
answered with the error. Nothing the model sends is evaluated as code.

Tool results follow BFCL's convention, so that results compare the way its checker compares them:
a string as is, a dict as JSON, anything else as `str()`; a failure as `Error during execution: ...`.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema.exceptions
from pydantic import create_model
from pydantic_core import to_jsonable_python

from pytest_rewardkit.config import EnvironmentSpec
from pytest_rewardkit.errors import ConfigError
from pytest_rewardkit.resolver import resolver_for

ERROR_PREFIX = "Error during execution: "
_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters):\s*$")
_SECTION_HEADER = re.compile(r"^\s*[A-Z][A-Za-z ]*:\s*$")
_ARG_LINE = re.compile(r"^\s*(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")


class EnvironmentSetupError(ConfigError):
    """The suite's environment cannot be used (import, tools file, schema); the message names
    the file, class or tool and the fix."""


@dataclass(frozen=True)
class Tool:
    """One tool offered to the model: a public method of the environment and its JSON schema."""

    name: str
    description: str
    parameters: dict[str, Any]
    validator: jsonschema.protocols.Validator = field(compare=False, repr=False)

    def openai(self) -> dict[str, Any]:
        """The tool as an OpenAI `tools` entry."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    @property
    def parameter_names(self) -> list[str]:
        """Parameter names in declaration order (positional arguments of a call map onto these)."""
        properties = self.parameters.get("properties")
        return list(properties) if isinstance(properties, dict) else []


@dataclass(frozen=True)
class ToolResult:
    content: str
    error: bool = False


def format_result(value: Any) -> str:
    """A method's return value as the tool message's text (BFCL's convention)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        try:
            return json.dumps(value)
        except (TypeError, ValueError):
            return str(value)
    return str(value)


def _make_tool(name: str, description: str, parameters: dict[str, Any], where: str) -> Tool:
    if parameters.get("type", "object") != "object":
        raise EnvironmentSetupError(f"{where}: tool {name!r}: parameters must be a JSON Schema of type 'object'")
    try:
        jsonschema.Draft202012Validator.check_schema(parameters)
    except jsonschema.exceptions.SchemaError as exc:
        raise EnvironmentSetupError(
            f"{where}: tool {name!r}: parameters are not a valid JSON Schema ({exc.message} at "
            f"{'/'.join(str(p) for p in exc.absolute_path) or 'top level'}); use JSON Schema types "
            "(object, number, integer, string, boolean, array)"
        ) from None
    return Tool(name, description, parameters, jsonschema.Draft202012Validator(parameters))


def _docstring_parts(doc: str | None) -> tuple[str, dict[str, str]]:
    """A Google-style docstring's description and its `Args:` descriptions."""
    lines = inspect.cleandoc(doc or "").splitlines()
    description: list[str] = []
    args: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    for line in lines:
        if _ARGS_HEADER.match(line):
            section, current = "args", None
        elif _SECTION_HEADER.match(line) and not line.startswith(" "):
            section, current = "other", None
        elif section is None:
            description.append(line)
        elif section == "args":
            match = _ARG_LINE.match(line)
            if match and (len(line) - len(line.lstrip())) <= 4:
                current = match.group(1).lstrip("*")
                args[current] = match.group(3).strip()
            elif current and line.strip():
                args[current] = f"{args[current]} {line.strip()}".strip()
    return " ".join(" ".join(description).split()), args


def _strip_titles(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _strip_titles(v) for k, v in schema.items() if k != "title" or not isinstance(v, str)}
    if isinstance(schema, list):
        return [_strip_titles(v) for v in schema]
    return schema


def method_schema(fn: Callable[..., Any], where: str) -> tuple[str, dict[str, Any]]:
    """A method's description and parameters' JSON schema from its type hints and docstring."""
    name = fn.__name__
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:
        raise EnvironmentSetupError(f"{where}.{name}: cannot read its type hints: {exc}") from exc
    description, arg_docs = _docstring_parts(fn.__doc__)
    fields: dict[str, Any] = {}
    for param in list(inspect.signature(fn).parameters.values())[1:]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise EnvironmentSetupError(
                f"{where}.{name}: *args/**kwargs cannot be described to a model; name every parameter, "
                "or give the suite function documents (environment.tools)"
            )
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (hints.get(param.name, Any), default)
    try:
        generated = create_model(f"{name}_arguments", **fields).model_json_schema()
    except Exception as exc:
        raise EnvironmentSetupError(f"{where}.{name}: its parameters have no JSON schema: {exc}") from exc
    parameters: dict[str, Any] = _strip_titles(generated)
    for param_name, text in arg_docs.items():
        if param_name in parameters.get("properties", {}):
            parameters["properties"][param_name]["description"] = text
    parameters.setdefault("required", [])
    return description, parameters


def public_methods(cls: type) -> dict[str, Callable[..., Any]]:
    """The class's public methods (functions defined on it or its bases, not properties)."""
    methods: dict[str, Callable[..., Any]] = {}
    for name in dir(cls):
        if name.startswith("_"):
            continue
        attr = inspect.getattr_static(cls, name)
        if inspect.isfunction(attr):
            methods[name] = attr
    return methods


def read_function_documents(path: Path) -> list[dict[str, Any]]:
    """Function documents: a JSON list, or one JSON object a line; OpenAI `tools` entries or the
    bare function objects."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EnvironmentSetupError(f"environment.tools: cannot read {path}: {exc.strerror or exc}") from exc
    try:
        loaded = json.loads(text)
        items = loaded if isinstance(loaded, list) else [loaded]
    except json.JSONDecodeError:
        items = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    items.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise EnvironmentSetupError(f"{path}:{number}: not JSON: {exc.msg}") from None
    documents = []
    for index, item in enumerate(items):
        if isinstance(item, dict) and item.get("type") == "function" and isinstance(item.get("function"), dict):
            item = item["function"]
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise EnvironmentSetupError(f"{path}: entry {index} is not a function document with a 'name'")
        documents.append(item)
    return documents


def _import_class(path: str, suite_dir: Path) -> type:
    try:
        obj = resolver_for(suite_dir).load(path)
    except ConfigError as exc:
        raise EnvironmentSetupError(f"environment {path!r}: cannot import it: {exc.__cause__ or exc}") from exc
    if not inspect.isclass(obj):
        raise EnvironmentSetupError(f"environment {path!r} is a {type(obj).__name__}, not a class")
    return obj


class Environment:
    """A suite's environment class with its tools; `start()` builds one fresh instance."""

    def __init__(self, cls: type, tools: dict[str, Tool]) -> None:
        self.cls = cls
        self.tools = tools

    @classmethod
    def load(cls, name: str, tools_file: str | None, suite_dir: Path) -> Environment:
        env_cls = _import_class(name, suite_dir)
        where = f"{env_cls.__module__}.{env_cls.__qualname__}"
        methods = public_methods(env_cls)
        if not methods:
            raise EnvironmentSetupError(f"environment {name!r} has no public methods to offer as tools")
        tools: dict[str, Tool] = {}
        if tools_file is None:
            for method, fn in methods.items():
                description, schema = method_schema(fn, where)
                tools[method] = _make_tool(method, description, schema, where)
            return cls(env_cls, tools)
        path = suite_dir / tools_file
        for document in read_function_documents(path):
            name = document["name"]
            if name not in methods:
                raise EnvironmentSetupError(
                    f"{path}: function {name!r} is not a public method of {where}; "
                    f"its methods are {', '.join(sorted(methods))}"
                )
            parameters = document.get("parameters") or {"type": "object", "properties": {}}
            accepted = inspect.signature(methods[name]).parameters
            unknown = set(parameters.get("properties", {})) - set(accepted)
            if unknown and not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
                raise EnvironmentSetupError(
                    f"{path}: function {name!r} documents parameters {sorted(unknown)} that {where}.{name} "
                    "does not take"
                )
            tools[name] = _make_tool(name, str(document.get("description", "")), parameters, str(path))
        return cls(env_cls, tools)

    def start(self, initial_config: Any = None, excluded: Any = None) -> EnvironmentSession:
        """A fresh instance built from the row's `initial_config`, offering every tool but the
        row's `excluded_function`. ValueError names what is wrong with the row's fields."""
        config = copy.deepcopy(initial_config) if initial_config is not None else {}
        if not isinstance(config, dict):
            raise ValueError(f"initial_config must be an object (keyword arguments of {self.cls.__name__})")
        excluded = excluded or []
        if not isinstance(excluded, list) or not all(isinstance(name, str) for name in excluded):
            raise ValueError("excluded_function must be a list of tool names")
        unknown = sorted(set(excluded) - set(self.tools))
        if unknown:
            raise ValueError(f"excluded_function names {unknown}, which are not tools of {self.cls.__name__}")
        try:
            instance = self.cls(**config)
        except Exception as exc:
            raise ValueError(
                f"environment {self.cls.__name__} could not be built from initial_config: {type(exc).__name__}: {exc}"
            ) from exc
        tools = {name: tool for name, tool in self.tools.items() if name not in excluded}
        return EnvironmentSession(instance, tools)


@functools.lru_cache(maxsize=64)
def _load_cached(name: str, tools_file: str | None, suite_dir: Path) -> Environment:
    return Environment.load(name, tools_file, suite_dir)


def load_environment(spec: EnvironmentSpec, suite_dir: Path, row_override: Any = None) -> Environment:
    """The environment of a suite (or the row's own `environment: module:Class`), resolved and its
    tools checked once per process."""
    name = row_override if isinstance(row_override, str) and row_override else spec.name
    return _load_cached(name, spec.tools, suite_dir)


class EnvironmentSession:
    """One rollout's environment instance and the tools offered to the model."""

    def __init__(self, instance: Any, tools: dict[str, Tool]) -> None:
        self.instance = instance
        self.tools = tools

    def openai_tools(self) -> list[dict[str, Any]]:
        return [tool.openai() for tool in self.tools.values()]

    def call(self, name: Any, arguments: Any) -> ToolResult:
        """Run one tool call from the model; every problem is the tool's answer, never a raise.
        `arguments` is the JSON text the model sent (or an already decoded object)."""
        tool = self.tools.get(name) if isinstance(name, str) else None
        if tool is None:
            offered = ", ".join(self.tools) or "none"
            return ToolResult(f"Error: unknown tool {name!r}; the tools are: {offered}", error=True)
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as exc:
                return ToolResult(f"Error: the arguments of {name} are not JSON: {exc.msg} (col {exc.colno})", True)
        if not isinstance(arguments, dict):
            return ToolResult(f"Error: the arguments of {name} must be a JSON object", error=True)
        problem = jsonschema.exceptions.best_match(tool.validator.iter_errors(arguments))
        if problem is not None:
            at = "/".join(str(part) for part in problem.absolute_path)
            return ToolResult(
                f"Error: invalid arguments for {name}: {problem.message}" + (f" (at {at})" if at else ""), True
            )
        # Schemas generated from type hints (and most function documents) do not forbid other keys, and
        # changing them would change the recorded requests: an argument the tool does not declare is
        # refused here instead of reaching the method.
        if tool.parameters.get("additionalProperties", False) is False:
            undeclared = sorted(set(arguments) - set(tool.parameter_names))
            if undeclared:
                declared = ", ".join(tool.parameter_names) or "none"
                return ToolResult(
                    f"Error: invalid arguments for {name}: unexpected {', '.join(map(repr, undeclared))}; "
                    f"its parameters are: {declared}",
                    error=True,
                )
        try:
            value = getattr(self.instance, name)(**arguments)
        except Exception as exc:
            return ToolResult(f"{ERROR_PREFIX}{type(exc).__name__}: {exc}", error=True)
        return ToolResult(format_result(value))

    def state(self) -> dict[str, Any]:
        """The instance's public attributes (BFCL compares these), as a deep copy."""
        return {k: copy.deepcopy(v) for k, v in vars(self.instance).items() if not k.startswith("_")}

    def json_state(self) -> dict[str, Any]:
        """The public attributes as JSON-compatible data, for the trajectory and results files."""
        value = to_jsonable_python(self.state(), fallback=repr)
        return value if isinstance(value, dict) else {}
