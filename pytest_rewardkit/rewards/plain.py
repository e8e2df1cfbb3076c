"""Plain data across a process boundary: the only thing a candidate's process can send its judge.

Values are None, booleans, integers, floats, strings, bytes, and lists, tuples, dicts, sets and
frozensets of them. The text is JSON in which every JSON object is a tag naming a container that
JSON lacks (`{"tuple": [...]}`, `{"dict": [[key, value], ...]}`, `{"bytes": "<hex>"}`), so that
decoding builds nothing but those builtin types and runs no code of the sender's: an object whose
`__eq__` always answers True cannot cross, nor can a marker, a frame or a patched builtin.

Encoding accepts subclasses of the plain types (a named tuple is sent as its tuple); decoding
accepts exactly the format and raises `ValueError` for anything else (malformed text, unknown tags,
unhashable keys, nesting deeper than `MAX_DEPTH`, integers longer than Python parses), never
another exception. This module uses the standard library only: the sandboxed harnesses ship it
as a file beside themselves.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 100

_TAGS = ("tuple", "list", "set", "frozenset", "dict", "bytes")


def dumps(value: Any) -> str:
    """One line of text; `TypeError` for a value that is not plain data."""
    try:
        return json.dumps(_encode(value, 0), allow_nan=True, separators=(",", ":"))
    except RecursionError:
        raise TypeError(f"nested deeper than {MAX_DEPTH}") from None


def _encode(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise TypeError(f"nested deeper than {MAX_DEPTH}")
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, int):
        return int.__index__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, (bytes, bytearray)):
        return {"bytes": bytes(value).hex()}
    if isinstance(value, list):
        return [_encode(item, depth + 1) for item in list(value)]
    if isinstance(value, dict):
        return {"dict": [[_encode(k, depth + 1), _encode(v, depth + 1)] for k, v in dict(value).items()]}
    for kind in (tuple, frozenset, set):
        if isinstance(value, kind):
            return {kind.__name__: [_encode(item, depth + 1) for item in kind(value)]}
    raise TypeError(f"a {type(value).__name__} is not plain data")


def loads(text: str | bytes) -> Any:
    """The value `text` encodes; `ValueError` for anything that is not exactly this format."""
    try:
        return _decode(json.loads(text), 0)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH}") from None
    except (TypeError, UnicodeDecodeError) as exc:
        raise ValueError(str(exc)) from None


def _decode(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH}")
    if value is None or type(value) in (bool, int, float, str):
        return value
    if type(value) is list:
        return [_decode(item, depth + 1) for item in value]
    if type(value) is not dict or len(value) != 1:
        raise ValueError("not plain data: an object must be one tag")
    ((tag, body),) = value.items()
    if tag == "bytes" and type(body) is str:
        return bytes.fromhex(body)
    if type(body) is not list or tag not in _TAGS:
        raise ValueError(f"not plain data: unknown tag {tag!r}")
    if tag == "dict":
        if not all(type(pair) is list and len(pair) == 2 for pair in body):
            raise ValueError("not plain data: a dict is a list of [key, value] pairs")
        return {_decode(k, depth + 1): _decode(v, depth + 1) for k, v in body}
    items = [_decode(item, depth + 1) for item in body]
    return {"tuple": tuple, "list": list, "set": set, "frozenset": frozenset}[tag](items)
