"""The one resolver: `module:function` and `module:Class` beside a suite, a reward bound to its params once."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_rewardkit.errors import ConfigError, RewardError, UnknownReward
from pytest_rewardkit.resolver import resolver_for

MODULE = '''
from pytest_rewardkit import EvaluateResult, reward_function

PREPARED = []


class Calendar:
    """An environment class, as rollouts will name them."""


@reward_function
def counted(messages, ground_truth=None, scale=1.0, **kwargs):
    return EvaluateResult(score=scale)


@counted.preparer
def _prepare(params, resolver):
    PREPARED.append(dict(params))
    if not 0 <= params.get("scale", 1.0) <= 1:
        from pytest_rewardkit.errors import RewardError

        raise RewardError("counted reward params: scale must be in [0, 1]")
    return params
'''


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(sys, "path", list(sys.path))  # the suite's folder joins sys.path for its module
    name = f"resolver_mod_{abs(hash(tmp_path)) % 10**8}"
    monkeypatch.delitem(sys.modules, name, raising=False)
    (tmp_path / f"{name}.py").write_text(MODULE, encoding="utf-8")
    (tmp_path / "name.txt").write_text(name, encoding="utf-8")
    return tmp_path


def module_of(folder: Path) -> str:
    return (folder / "name.txt").read_text(encoding="utf-8")


def test_a_class_beside_the_suite_resolves_and_is_cached(folder: Path) -> None:
    resolver = resolver_for(folder)
    cls = resolver.load(f"{module_of(folder)}:Calendar")
    assert cls.__name__ == "Calendar"
    assert resolver.load(f"{module_of(folder)}:Calendar") is cls
    assert resolver_for(folder) is resolver


def test_a_reward_is_bound_to_its_params_once_per_suite(folder: Path) -> None:
    resolver = resolver_for(folder)
    name = f"{module_of(folder)}:counted"
    first = resolver.bind(name, {"scale": 0.5})
    again = resolver.bind(name, {"scale": 0.5})
    assert again is first and first.params == {"scale": 0.5} and first.name == name
    prepared: list[Any] = sys.modules[module_of(folder)].PREPARED
    assert prepared == [{"scale": 0.5}]
    assert first.reward([{"role": "assistant", "content": "x"}], **first.params).score == 0.5


def test_params_a_reward_refuses_are_a_reward_error(folder: Path) -> None:
    with pytest.raises(RewardError, match="scale must be in"):
        resolver_for(folder).bind(f"{module_of(folder)}:counted", {"scale": 2})


@pytest.mark.parametrize(
    ("path", "error", "message"),
    [
        ("no_such_module_xyz:thing", ConfigError, "cannot import 'no_such_module_xyz:thing'"),
        ("no_colon", ConfigError, "module:function"),
    ],
)
def test_an_unresolvable_path_is_a_config_error(path: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        resolver_for(None).load(path)


def test_an_unknown_reward_names_the_built_ins() -> None:
    with pytest.raises(UnknownReward, match=r"unknown reward 'nope': use a built-in \(.*math"):
        resolver_for(None).reward("nope")
