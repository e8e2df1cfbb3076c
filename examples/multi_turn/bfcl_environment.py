"""The environment of the multi-turn suite: BFCL's Gorilla file system and Math API, written for
this project from BFCL's function documents (`functions.json`); BFCL publishes the documents,
this is our own implementation of what they describe.

The file system's state is its public attribute `root`, in the form of BFCL's `initial_config`
(`{name: {"type": "directory", "contents": {...}}}`, files `{"type": "file", "content": ...}`),
so the checker compares plain data. The working directory is private (`_cwd`): like BFCL, only
what the commands leave in the tree counts. Results are dicts (sent to the model as JSON) or
None; failures are `{"error": ...}` answers, as the documents describe.
"""

from __future__ import annotations

import math
import statistics
from decimal import Decimal, localcontext
from typing import Any

_INVALID_NAME_CHARACTERS = set('|/\\?%*:"><')


class GorillaFileSystem:
    """A small in-memory file system navigated one directory at a time."""

    def __init__(self, root: dict[str, Any] | None = None) -> None:
        self.root: dict[str, Any] = root or {"/": {"type": "directory", "contents": {}}}
        if len(self.root) != 1:
            raise ValueError("root must hold exactly one top directory")
        self._cwd: list[str] = [next(iter(self.root))]

    # -- helpers (private: not tools) ---------------------------------------------------------

    def _node(self, path: list[str]) -> dict[str, Any]:
        node = self.root[path[0]]
        for name in path[1:]:
            node = node["contents"][name]
        return node

    def _here(self) -> dict[str, Any]:
        contents: dict[str, Any] = self._node(self._cwd)["contents"]
        return contents

    def _file(self, file_name: str) -> dict[str, Any] | None:
        item = self._here().get(file_name)
        return item if isinstance(item, dict) and item.get("type") == "file" else None

    @staticmethod
    def _bad_name(name: str) -> bool:
        return any(c in _INVALID_NAME_CHARACTERS for c in name)

    # -- tools --------------------------------------------------------------------------------

    def pwd(self) -> dict[str, str]:
        return {"current_working_directory": "/" + "/".join(self._cwd)}

    def ls(self, a: bool = False) -> dict[str, list[str]]:
        names = [name for name in self._here() if a or not name.startswith(".")]
        return {"current_directory_content": names}

    def cd(self, folder: str) -> dict[str, str]:
        folder = folder.rstrip("/") or "/"
        if folder == "..":
            if len(self._cwd) == 1:
                return {"error": "cd: ..: the current directory is already the root"}
            self._cwd.pop()
        elif folder == "/":
            self._cwd = self._cwd[:1]
        elif folder == ".":
            pass
        elif "/" in folder:
            return {"error": f"cd: {folder}: only one folder level at a time is supported"}
        else:
            item = self._here().get(folder)
            if not isinstance(item, dict) or item.get("type") != "directory":
                return {"error": f"cd: {folder}: No such directory"}
            self._cwd.append(folder)
        return {"current_working_directory": self._cwd[-1]}

    def mkdir(self, dir_name: str) -> dict[str, str] | None:
        if self._bad_name(dir_name):
            return {"error": f"mkdir: cannot create directory '{dir_name}': Invalid character"}
        if dir_name in self._here():
            return {"error": f"mkdir: cannot create directory '{dir_name}': File exists"}
        self._here()[dir_name] = {"type": "directory", "contents": {}}
        return None

    def touch(self, file_name: str) -> dict[str, str] | None:
        if self._bad_name(file_name):
            return {"error": f"touch: cannot touch '{file_name}': Invalid character"}
        if file_name in self._here():
            return {"error": f"touch: cannot touch '{file_name}': File exists"}
        self._here()[file_name] = {"type": "file", "content": ""}
        return None

    def echo(self, content: str, file_name: str | None = None) -> dict[str, str] | None:
        if file_name is None or file_name == "None":
            return {"terminal_output": content}
        if self._bad_name(file_name):
            return {"error": f"echo: cannot write to '{file_name}': Invalid character"}
        item = self._file(file_name)
        if item is None:
            return {"error": f"echo: cannot write to '{file_name}': No such file"}
        item["content"] = content
        return None

    def cat(self, file_name: str) -> dict[str, str]:
        if file_name in self._here() and self._file(file_name) is None:
            return {"error": f"cat: '{file_name}': Is a directory"}
        item = self._file(file_name)
        if item is None:
            return {"error": f"cat: '{file_name}': No such file or directory"}
        return {"file_content": item["content"]}

    def find(self, path: str = ".", name: str | None = None) -> dict[str, Any]:
        start: list[str] = list(self._cwd)
        for part in [p for p in path.split("/") if p and p != "."]:
            item = self._node(start)["contents"].get(part)
            if not isinstance(item, dict) or item.get("type") != "directory":
                return {"error": f"find: '{path}': No such file or directory"}
            start.append(part)
        matches: list[str] = []

        def walk(node: dict[str, Any], prefix: str) -> None:
            for item_name, item in node["contents"].items():
                item_path = f"{prefix}/{item_name}"
                if name is None or name == "None" or name in item_name:
                    matches.append(item_path)
                if item.get("type") == "directory":
                    walk(item, item_path)

        walk(self._node(start), path.rstrip("/"))
        return {"matches": matches}

    def wc(self, file_name: str, mode: str = "l") -> dict[str, Any]:
        if mode not in ("l", "w", "c"):
            return {"error": f"wc: invalid mode '{mode}'"}
        item = self._file(file_name)
        if item is None:
            return {"error": f"wc: {file_name}: No such file or directory"}
        content = item["content"]
        if mode == "l":
            return {"count": len(content.splitlines()), "type": "lines"}
        if mode == "w":
            return {"count": len(content.split()), "type": "words"}
        return {"count": len(content), "type": "characters"}

    def sort(self, file_name: str) -> dict[str, str]:
        item = self._file(file_name)
        if item is None:
            return {"error": f"sort: {file_name}: No such file or directory"}
        return {"sorted_content": "\n".join(sorted(item["content"].splitlines()))}

    def grep(self, file_name: str, pattern: str) -> dict[str, Any]:
        item = self._file(file_name)
        if item is None:
            return {"error": f"grep: {file_name}: No such file or directory"}
        return {"matching_lines": [line for line in item["content"].splitlines() if pattern in line]}

    def du(self, human_readable: bool = False) -> dict[str, str]:
        def size(node: dict[str, Any]) -> int:
            if node.get("type") == "file":
                return len(node["content"].encode("utf-8"))
            return sum(size(child) for child in node["contents"].values())

        total = float(size(self._node(self._cwd)))
        if not human_readable:
            return {"disk_usage": f"{int(total)} bytes"}
        for unit in ("B", "KB", "MB", "GB", "TB"):
            if total < 1024:
                return {"disk_usage": f"{total:.2f} {unit}"}
            total /= 1024
        return {"disk_usage": f"{total:.2f} PB"}

    def tail(self, file_name: str, lines: int = 10) -> dict[str, str]:
        item = self._file(file_name)
        if item is None:
            return {"error": f"tail: {file_name}: No such file or directory"}
        content = item["content"].splitlines()
        return {"last_lines": "\n".join(content[-lines:] if lines > 0 else [])}

    def diff(self, file_name1: str, file_name2: str) -> dict[str, str]:
        first, second = self._file(file_name1), self._file(file_name2)
        if first is None or second is None:
            return {"error": f"diff: {file_name1} or {file_name2}: No such file or directory"}
        pairs = zip(first["content"].splitlines(), second["content"].splitlines(), strict=False)
        return {"diff_lines": "\n".join(f"- {a}\n+ {b}" for a, b in pairs if a != b)}

    def _transfer(self, command: str, source: str, destination: str, keep_source: bool) -> dict[str, str]:
        here = self._here()
        if source not in here:
            return {"error": f"{command}: cannot {command} '{source}': No such file or directory"}
        if "/" in destination:
            return {"error": f"{command}: path not allowed in destination. Provide only a file or directory name."}
        item = here[source] if not keep_source else _copy(here[source])
        target = here.get(destination)
        if isinstance(target, dict) and target.get("type") == "directory":
            if source in target["contents"]:
                return {"error": f"{command}: cannot {command} '{source}' to '{destination}/{source}': File exists"}
            if not keep_source:
                del here[source]
            target["contents"][source] = item
            return {"result": f"'{source}' {_done(command)} to '{destination}/{source}'"}
        if target is not None:
            return {"error": f"{command}: cannot {command} '{source}' to '{destination}': File exists"}
        if not keep_source:
            del here[source]
        here[destination] = item
        return {"result": f"'{source}' {_done(command)} to '{destination}'"}

    def mv(self, source: str, destination: str) -> dict[str, str]:
        return self._transfer("mv", source, destination, keep_source=False)

    def cp(self, source: str, destination: str) -> dict[str, str]:
        return self._transfer("cp", source, destination, keep_source=True)

    def rm(self, file_name: str) -> dict[str, str]:
        if file_name not in self._here():
            return {"error": f"rm: cannot remove '{file_name}': No such file or directory"}
        del self._here()[file_name]
        return {"result": f"'{file_name}' removed"}

    def rmdir(self, dir_name: str) -> dict[str, str]:
        item = self._here().get(dir_name)
        if item is None:
            return {"error": f"rmdir: cannot remove '{dir_name}': No such file or directory"}
        if item.get("type") != "directory":
            return {"error": f"rmdir: cannot remove '{dir_name}': Not a directory"}
        if item["contents"]:
            return {"error": f"rmdir: cannot remove '{dir_name}': Directory not empty"}
        del self._here()[dir_name]
        return {"result": f"'{dir_name}' removed"}


def _copy(item: dict[str, Any]) -> dict[str, Any]:
    if item.get("type") == "file":
        return {"type": "file", "content": item["content"]}
    return {"type": "directory", "contents": {k: _copy(v) for k, v in item["contents"].items()}}


def _done(command: str) -> str:
    return "moved" if command == "mv" else "copied"


# Factors to one base unit per quantity (m, kg, s, m/s, L, J, W, Pa).
_UNITS: dict[str, tuple[str, float]] = {
    "mm": ("m", 1e-3), "cm": ("m", 1e-2), "m": ("m", 1.0), "km": ("m", 1e3),
    "in": ("m", 0.0254), "ft": ("m", 0.3048), "yd": ("m", 0.9144), "mi": ("m", 1609.344),
    "mg": ("kg", 1e-6), "g": ("kg", 1e-3), "kg": ("kg", 1.0), "t": ("kg", 1e3),
    "oz": ("kg", 0.028349523125), "lb": ("kg", 0.45359237),
    "ms": ("s", 1e-3), "s": ("s", 1.0), "min": ("s", 60.0), "h": ("s", 3600.0),
    "m/s": ("m/s", 1.0), "km/h": ("m/s", 1 / 3.6), "mph": ("m/s", 0.44704),
    "ml": ("L", 1e-3), "l": ("L", 1.0), "gal": ("L", 3.785411784),
    "j": ("J", 1.0), "kj": ("J", 1e3), "cal": ("J", 4.184), "kcal": ("J", 4184.0),
    "w": ("W", 1.0), "kw": ("W", 1e3), "hp": ("W", 745.6998715822702),
    "pa": ("Pa", 1.0), "kpa": ("Pa", 1e3), "bar": ("Pa", 1e5), "psi": ("Pa", 6894.757293168),
}  # fmt: skip


def _convert(value: float, unit_in: str, unit_out: str) -> dict[str, Any]:
    source, target = unit_in.strip().lower(), unit_out.strip().lower()
    temperatures = {"c", "celsius", "f", "fahrenheit", "k", "kelvin"}
    if source in temperatures and target in temperatures:
        kelvin = {"c": value + 273.15, "f": (value - 32) * 5 / 9 + 273.15, "k": value}[source[0]]
        result = {"c": kelvin - 273.15, "f": (kelvin - 273.15) * 9 / 5 + 32, "k": kelvin}[target[0]]
        return {"result": result}
    if source not in _UNITS or target not in _UNITS:
        return {"error": f"unsupported units {unit_in!r} -> {unit_out!r}"}
    (base_in, factor_in), (base_out, factor_out) = _UNITS[source], _UNITS[target]
    if base_in != base_out:
        return {"error": f"cannot convert {unit_in!r} ({base_in}) to {unit_out!r} ({base_out})"}
    return {"result": value * factor_in / factor_out}


class MathAPI:
    """Arithmetic and statistics; stateless."""

    def absolute_value(self, number: float) -> dict[str, float]:
        return {"result": abs(number)}

    def add(self, a: float, b: float) -> dict[str, float]:
        return {"result": a + b}

    def subtract(self, a: float, b: float) -> dict[str, float]:
        return {"result": a - b}

    def multiply(self, a: float, b: float) -> dict[str, float]:
        return {"result": a * b}

    def divide(self, a: float, b: float) -> dict[str, Any]:
        if b == 0:
            return {"error": "Cannot divide by zero"}
        return {"result": a / b}

    def power(self, base: float, exponent: float) -> dict[str, Any]:
        try:
            return {"result": float(base**exponent)}
        except (OverflowError, ZeroDivisionError, TypeError) as exc:
            return {"error": str(exc)}

    def percentage(self, part: float, whole: float) -> dict[str, Any]:
        if whole == 0:
            return {"error": "Whole value cannot be zero"}
        return {"result": part / whole * 100}

    def round_number(self, number: float, decimal_places: int = 0) -> dict[str, float]:
        return {"result": round(number, decimal_places)}

    def logarithm(self, value: float, base: float, precision: int) -> dict[str, Any]:
        if value <= 0 or base <= 0 or base == 1:
            return {"error": "logarithm needs value > 0 and base > 0, base != 1"}
        with localcontext() as context:
            context.prec = max(1, min(precision, 100))
            result = Decimal(str(value)).ln() / Decimal(str(base)).ln()
        return {"result": float(result)}

    def square_root(self, number: float, precision: int) -> dict[str, Any]:
        if number < 0:
            return {"error": "Cannot calculate square root of a negative number"}
        with localcontext() as context:
            context.prec = max(1, min(precision, 100))
            return {"result": float(Decimal(str(number)).sqrt())}

    def mean(self, numbers: list[float]) -> dict[str, Any]:
        if not numbers:
            return {"error": "Cannot calculate mean of an empty list"}
        return {"result": statistics.fmean(numbers)}

    def standard_deviation(self, numbers: list[float]) -> dict[str, Any]:
        if not numbers:
            return {"error": "Cannot calculate standard deviation of an empty list"}
        return {"result": statistics.pstdev(numbers)}

    def sum_values(self, numbers: list[float]) -> dict[str, Any]:
        return {"result": math.fsum(numbers)}

    def max_value(self, numbers: list[float]) -> dict[str, Any]:
        return {"result": max(numbers)} if numbers else {"error": "Cannot find max of an empty list"}

    def min_value(self, numbers: list[float]) -> dict[str, Any]:
        return {"result": min(numbers)} if numbers else {"error": "Cannot find min of an empty list"}

    def si_unit_conversion(self, value: float, unit_in: str, unit_out: str) -> dict[str, Any]:
        return _convert(value, unit_in, unit_out)

    def imperial_si_conversion(self, value: float, unit_in: str, unit_out: str) -> dict[str, Any]:
        return _convert(value, unit_in, unit_out)


class FileSystemAndMath(GorillaFileSystem, MathAPI):
    """Both APIs in one environment, built from a BFCL row's `initial_config`
    (`{"GorillaFileSystem": {...}, "MathAPI": {...}}`). The Math API is stateless, so its
    configuration is accepted and has no effect, as in BFCL."""

    def __init__(self, **initial_config: Any) -> None:
        unknown = set(initial_config) - {"GorillaFileSystem", "MathAPI"}
        if unknown:
            raise TypeError(f"no API named {sorted(unknown)} in this environment (GorillaFileSystem, MathAPI)")
        GorillaFileSystem.__init__(self, **(initial_config.get("GorillaFileSystem") or {}))
