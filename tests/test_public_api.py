"""The package's public surface: every public name is listed in `__all__`, resolves, and importing the
package (which the pytest plugin does in every run of every project) stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import pytest_rewardkit
from pytest_rewardkit import errors
from pytest_rewardkit.rewards import BUILTINS


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
