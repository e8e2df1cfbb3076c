"""Reading the function calls a response makes, in the three forms models use:

1. OpenAI `tool_calls` on the message (arguments as a JSON string, or an object);
2. `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` blocks in the text (Hermes/Qwen style);
3. BFCL's prompting format, the whole text being a Python list of calls: `[f(a=1, b="x"), g()]`.

The first form found wins. Python syntax is read with `ast` and never evaluated: only literals,
names (kept as text, BFCL's "variable"), nested calls and arithmetic on numbers are understood.
"""

from __future__ import annotations

import ast
import json
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pytest_rewardkit.models import Message

CallFormat = Literal["tool_calls", "tool_call_tags", "python", "none"]

_TAG_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL)
_ARITHMETIC: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_MAX_EXPONENT = 64  # `10**10**10` in a response must not hang the grader


@dataclass(frozen=True)
class Call:
    """One call a response makes. `error` says why its arguments could not be read."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def describe(self) -> str:
        if self.error is not None:
            return f"{self.name or '<no name>'}(<unreadable: {self.error}>)"
        args = ", ".join(f"{k}={v!r}" for k, v in self.arguments.items())
        return f"{self.name}({args})"


@dataclass(frozen=True)
class CallReading:
    """The calls found in a response, the form they were in, and why none were found if so."""

    calls: list[Call]
    format: CallFormat
    note: str = ""


def read_calls(message: Message) -> CallReading:
    """Every call `message` makes, from the first of the three forms it uses."""
    if message.tool_calls:
        return CallReading([_openai_call(item) for item in message.tool_calls], "tool_calls")
    text = message.text
    blocks = _TAG_BLOCK.findall(text)
    if blocks:
        return CallReading([_tagged_call(block) for block in blocks], "tool_call_tags")
    try:
        calls = parse_python_calls(text)
    except (SyntaxError, ValueError, TypeError, RecursionError) as exc:
        return CallReading([], "none", f"the text is not a call list like [f(a=1)] ({exc})")
    return CallReading(calls, "python" if calls else "none")


def _openai_call(item: dict[str, Any]) -> Call:
    function = item.get("function", item)
    if not isinstance(function, dict):
        return Call("", error="tool call has no 'function' object")
    name = function.get("name")
    if not isinstance(name, str) or not name:
        return Call("", error="tool call has no function name")
    return _with_arguments(name, function.get("arguments"))


def _tagged_call(block: str) -> Call:
    try:
        data = json.loads(block.strip())
    except json.JSONDecodeError as exc:
        return Call("", error=f"<tool_call> block is not JSON: {exc.msg} at column {exc.colno}")
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not data["name"]:
        return Call("", error='<tool_call> block must be an object {"name": ..., "arguments": {...}}')
    # Llama-style templates say "parameters" where Hermes/Qwen say "arguments".
    return _with_arguments(data["name"], data.get("arguments", data.get("parameters")))


def _with_arguments(name: str, raw: Any) -> Call:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        # Servers send "" (or nothing) for a call without arguments.
        return Call(name)
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            return Call(name, error=f"arguments are not valid JSON: {exc.msg} at column {exc.colno}")
    if not isinstance(raw, dict):
        return Call(name, error=f"arguments must be a JSON object, got {type(raw).__name__}")
    return Call(name, dict(raw))


def parse_python_calls(text: str) -> list[Call]:
    """BFCL's prompting format: `[f(a=1), g(b='x')]` (brackets optional). Raises SyntaxError,
    ValueError or TypeError when the text is not such a list."""
    # BFCL's order: strip code fences' backticks, add missing brackets, then strip wrapping quotes.
    source = text.strip("`\n ")
    if not source.startswith("["):
        source = "[" + source
    if not source.endswith("]"):
        source += "]"
    tree = ast.parse(source.strip().strip("'"), mode="eval").body
    elements = [tree] if isinstance(tree, ast.Call) else getattr(tree, "elts", None)
    if elements is None:
        raise ValueError("expected a list of calls")
    calls = []
    for element in elements:
        if not isinstance(element, ast.Call):
            raise ValueError(f"{ast.unparse(element)!r} is not a call")
        name, arguments = _python_call(element)
        if element.args:
            calls.append(Call(name, error="positional arguments; name every argument (a=1)"))
        else:
            calls.append(Call(name, arguments))
    return calls


def _python_call(node: ast.Call) -> tuple[str, dict[str, Any]]:
    parts = []
    func: ast.expr = node.func
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if not isinstance(func, ast.Name):
        raise ValueError(f"{ast.unparse(node.func)!r} is not a function name")
    parts.append(func.id)
    arguments = {}
    for keyword in node.keywords:
        if keyword.arg is None:
            raise ValueError(f"{ast.unparse(node)!r} unpacks **arguments; name every argument")
        arguments[keyword.arg] = _python_value(keyword.value)
    return ".".join(reversed(parts)), arguments


def _python_value(node: ast.expr) -> Any:
    """A literal's value, the way BFCL's decoder reads it (names become their text)."""
    if isinstance(node, ast.Constant):
        return "..." if node.value is Ellipsis else node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        # JSON has no tuples and OpenAI schemas say "array" for BFCL's "tuple": both become lists.
        return [_python_value(item) for item in node.elts]
    if isinstance(node, ast.Dict):
        pairs = list(zip(node.keys, node.values, strict=True))
        if any(key is None for key, _ in pairs):
            raise ValueError("dict unpacking (**) is not a literal")
        return {_python_value(k): _python_value(v) for k, v in pairs if k is not None}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _python_value(node.operand)
        if not _is_number(operand):
            raise ValueError(f"{ast.unparse(node)!r}: a sign applies to numbers only")
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        return _arithmetic(node)
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call):
        if not node.keywords:
            return ast.unparse(node)
        name, arguments = _python_call(node)
        return {name: arguments}
    if isinstance(node, ast.Subscript):
        return ast.unparse(node)
    raise ValueError(f"{ast.unparse(node)!r} is not a literal value")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _arithmetic(node: ast.BinOp) -> Any:
    # BFCL eval()s arithmetic such as `3*4`; the same result without running model output.
    left, right = _python_value(node.left), _python_value(node.right)
    if not (_is_number(left) and _is_number(right)):
        raise ValueError(f"{ast.unparse(node)!r}: arithmetic applies to numbers only")
    if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
        raise ValueError(f"{ast.unparse(node)!r}: exponent too large")
    try:
        return _ARITHMETIC[type(node.op)](left, right)
    except (ArithmeticError, ValueError) as exc:
        raise ValueError(f"{ast.unparse(node)!r}: {exc}") from exc
