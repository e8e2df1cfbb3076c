"""The package's public surface: every public name is listed in `__all__`, resolves, and importing the
package (which the pytest plugin does in every run of every project) stays light."""

from __future__ import annotations

import importlib
import importlib.resources
import inspect
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import pytest_rewardkit
from pytest_rewardkit import errors
from pytest_rewardkit.rewards import BUILTINS

ROOT = Path(__file__).resolve().parent.parent


def test_every_built_in_reward_is_exported_by_name() -> None:
    for path in BUILTINS.values():
        module, _, name = path.partition(":")
        assert name in pytest_rewardkit.__all__, f"add {name} to pytest_rewardkit.__all__ and _LAZY"
        assert getattr(pytest_rewardkit, name) is getattr(__import__(module, fromlist=[name]), name)


def test_the_error_tree_base_and_branches_are_exported() -> None:
    tree = {name for name, value in vars(errors).items() if isinstance(value, type) and issubclass(value, Exception)}
    assert tree <= set(pytest_rewardkit.__all__)
    assert pytest_rewardkit.RewardkitError is errors.RewardkitError


@pytest.mark.parametrize("name", pytest_rewardkit.__all__)
def test_each_listed_name_resolves(name: str) -> None:
    assert getattr(pytest_rewardkit, name) is not None
    assert name in dir(pytest_rewardkit)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pytest_rewardkit.nope  # noqa: B018


def test_importing_the_package_imports_nothing_heavy() -> None:
    probe = (
        "import sys, pytest_rewardkit\n"
        "print(sorted(m for m in ('pydantic', 'sympy', 'math_verify', 'aiohttp', 'yaml') if m in sys.modules))\n"
        "pytest_rewardkit.EvaluateResult\n"
        "print('pydantic' in sys.modules, 'sympy' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.splitlines() == ["[]", "True False"]


# The public surface, pinned: a change to it must be made here too, on purpose.
PUBLIC: dict[str, list[str]] = {
    "pytest_rewardkit": [
        "BUILTINS", "CassetteError", "ConfigError", "DatasetError", "EvaluateResult", "GenerationError", "Message",
        "MetricResult", "ReplayMiss", "RewardError", "RewardFunction", "RewardkitError", "Row", "RowError",
        "SandboxError", "SessionStop", "UnknownReward", "code_reward", "composite_reward", "cosine_length_reward",
        "json_schema_reward", "length_reward", "list_match_reward", "math_reward", "multi_turn_reward",
        "multiple_choice_reward", "reasoning_steps_reward", "repetition_penalty_reward", "resolve_reward",
        "reward_function", "tag_count_reward", "think_format_reward", "tool_call_reward",
    ],
    "pytest_rewardkit.rewards": ["BUILTINS", "UnknownReward", "resolve_reward"],
    "pytest_rewardkit.errors": [
        "CassetteError", "ConfigError", "DatasetError", "GenerationError", "ReplayMiss", "RewardError",
        "RewardkitError", "RowError", "SandboxError", "SessionStop", "UnknownReward",
    ],
    "pytest_rewardkit.testing": ["FakeChatServer", "Fault", "RecordedRequest", "TableRow", "read_table"],
    "pytest_rewardkit.trl": [
        "AsyncTRLReward", "TRLEnvironment", "TRLReward", "environment_factory", "suite_dataset", "trl_reward",
    ],
}  # fmt: skip


def public_names(module: ModuleType) -> list[str]:
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__
    )


@pytest.mark.parametrize("module_name", PUBLIC)
def test_the_public_surface_is_the_pinned_list(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert public_names(module) == PUBLIC[module_name], (
        f"{module_name}'s public names changed: if that is deliberate, update PUBLIC here and the README's Public API"
    )
    assert len(set(PUBLIC[module_name])) == len(PUBLIC[module_name])


def unannotated(value: Any) -> list[str]:
    """The parameters (and `return`) of a public callable that carry no annotation."""
    if isinstance(value, type):
        init = value.__init__
        if getattr(init, "__module__", "").split(".")[0] != "pytest_rewardkit":
            return []  # inherited (Exception, pydantic's typed BaseModel.__init__)
        value = init
    if not callable(value):
        return []
    signature = inspect.signature(value)
    missing = [
        name
        for name, parameter in signature.parameters.items()
        if name not in ("self", "cls") and parameter.annotation is inspect.Parameter.empty
    ]
    if signature.return_annotation is inspect.Signature.empty and not inspect.isclass(value):
        missing.append("return")
    return missing


@pytest.mark.parametrize(("module_name", "name"), [(m, n) for m, names in PUBLIC.items() for n in names])
def test_every_public_name_imports_and_is_annotated(module_name: str, name: str) -> None:
    namespace: dict[str, Any] = {}
    exec(f"from {module_name} import {name}", namespace)  # what a user writes
    value = namespace[name]
    assert value is getattr(importlib.import_module(module_name), name)
    assert unannotated(value) == [], f"{module_name}.{name} lacks annotations"


def test_the_package_is_marked_typed_and_a_type_checker_sees_every_public_name(tmp_path: Path) -> None:
    assert importlib.resources.files("pytest_rewardkit").joinpath("py.typed").is_file()
    # Lazily imported names (module __getattr__) too: a type checker must not see them as Any.
    names = [(m, n) for m, ns in PUBLIC.items() for n in ns]
    lines = [f"from {module} import {name} as {module.replace('.', '_')}__{name}" for module, name in names]
    lines += [f"reveal_type({module.replace('.', '_')}__{name})" for module, name in names]
    probe = tmp_path / "probe.py"
    probe.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--follow-imports=silent", str(probe)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    revealed = [line for line in result.stdout.splitlines() if "Revealed type is" in line]
    assert len(revealed) == len(names), result.stdout
    assert [line for line in revealed if '"Any"' in line] == []
    problems = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert problems == [], result.stdout
