"""The error tree: every error raised on purpose is a RewardkitError, under one documented branch."""

from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil
import typing
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, Field, ValidationError

import pytest_rewardkit
from pytest_rewardkit import errors
from pytest_rewardkit.auth import AuthError
from pytest_rewardkit.config import ConfigError
from pytest_rewardkit.dataset import DatasetError
from pytest_rewardkit.generation import AuthenticationError, BadResponse, RateLimitError
from pytest_rewardkit.generation.rollout import ModelRequest, ReplayMiss
from pytest_rewardkit.recording import CassetteError, SecretLeak
from pytest_rewardkit.rewards import UnknownReward
from pytest_rewardkit.rewards.deadline import GradingWorkerError
from pytest_rewardkit.rewards.math import UnusableGold
from pytest_rewardkit.sandbox import ExitStatusUnavailable, SandboxFailed, SandboxUnavailable


@pytest.mark.parametrize(
    ("error", "branch"),
    [
        (ConfigError, errors.ConfigError),
        (AuthError, errors.ConfigError),
        (DatasetError, errors.DatasetError),
        (UnknownReward, errors.RewardError),
        (AuthenticationError, errors.GenerationError),
        (RateLimitError, errors.GenerationError),
        (BadResponse, errors.GenerationError),
        (CassetteError, errors.CassetteError),
        (SecretLeak, errors.CassetteError),
        (UnusableGold, errors.RewardError),
        (GradingWorkerError, errors.RewardError),
        (ReplayMiss, errors.CassetteError),
        (SandboxUnavailable, errors.SandboxError),
        (SandboxFailed, errors.SandboxError),
        (ExitStatusUnavailable, errors.SandboxError),
        (errors.SandboxError, errors.RewardkitError),
        (errors.RowError, errors.RewardkitError),
        (errors.SessionStop, errors.RewardkitError),
    ],
)
def test_each_error_sits_under_its_branch_of_one_tree(error: type[Exception], branch: type[Exception]) -> None:
    assert issubclass(error, branch) and issubclass(error, errors.RewardkitError)


def test_an_unknown_reward_is_no_lookup_error() -> None:
    # A KeyError bug inside a reward must not be caught as "unknown reward".
    assert not issubclass(errors.UnknownReward, LookupError)


def test_settings_errors_stay_value_errors() -> None:
    assert issubclass(errors.ConfigError, ValueError) and issubclass(errors.DatasetError, ValueError)


@pytest.mark.parametrize(
    ("error", "former_base"),
    [
        (UnusableGold, ValueError),
        (GradingWorkerError, RuntimeError),
        (SandboxUnavailable, RuntimeError),
        (SandboxFailed, SandboxUnavailable),
        (ExitStatusUnavailable, SandboxUnavailable),
    ],
)
def test_a_re_parented_error_keeps_its_former_base(error: type[Exception], former_base: type[Exception]) -> None:
    # Code (ours or a user's) that caught the former base still catches it.
    assert issubclass(error, former_base)


def every_error() -> list[type[errors.RewardkitError]]:
    """Every class of the tree, found by importing every module of the package (so that a new error
    is tested without anyone listing it), except `__main__` and the sandbox harness's scripts, which
    run as programs of their own."""
    for module in pkgutil.walk_packages(pytest_rewardkit.__path__, "pytest_rewardkit."):
        if module.name.endswith(".__main__") or module.name.startswith("pytest_rewardkit.rewards.harness."):
            continue
        importlib.import_module(module.name)

    def below(cls: type[errors.RewardkitError]) -> Iterator[type[errors.RewardkitError]]:
        for sub in cls.__subclasses__():
            yield sub
            yield from below(sub)

    found = {errors.RewardkitError, *below(errors.RewardkitError)}
    return sorted(found, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


# A value per parameter type an error's __init__ takes; an error taking another type fails below, asking for one.
SAMPLES: dict[Any, Any] = {
    str: "cassettes/math/qwen3/r1.yaml:56: truncated cassette; restore it from git",
    int: 503,
    float: 2.5,
    int | None: 429,
    float | None: 1.5,
    str | None: "the message without the retry statistics",
    ModelRequest: ModelRequest({"model": "m", "messages": [{"role": "user", "content": "2+2?"}]}, turn=1, step=2),
}


def example(cls: type[errors.RewardkitError]) -> errors.RewardkitError:
    """An instance built through the class's own __init__, every parameter given."""
    if cls.__init__ is BaseException.__init__:
        return cls(SAMPLES[str])
    hints = typing.get_type_hints(cls.__init__)
    args, kwargs = [], {}
    for name, parameter in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if hints.get(name) not in SAMPLES:
            pytest.fail(f"{cls.__qualname__}.__init__ takes {name}: {hints.get(name)}; add a sample to SAMPLES")
        if parameter.kind is parameter.KEYWORD_ONLY:
            kwargs[name] = SAMPLES[hints[name]]
        else:
            args.append(SAMPLES[hints[name]])
    return cls(*args, **kwargs)


def test_the_tree_is_found_whole() -> None:
    found = every_error()
    for known in (ReplayMiss, SecretLeak, GradingWorkerError, UnusableGold, ExitStatusUnavailable, AuthError):
        assert known in found
    assert len(found) >= 30


@pytest.mark.parametrize("error", every_error(), ids=lambda cls: f"{cls.__module__}.{cls.__qualname__}")
def test_every_error_survives_pickling_with_its_attributes(error: type[errors.RewardkitError]) -> None:
    # xdist workers and the grading worker send errors between processes as pickles.
    original = example(error)
    original.add_note("a note added on the way")
    copy = pickle.loads(pickle.dumps(original))
    assert type(copy) is error
    assert copy.args == original.args and str(copy) == str(original)
    assert copy.__dict__ == original.__dict__ and copy.__notes__ == ["a note added on the way"]


class _Model(BaseModel):
    n: int = Field(ge=1)
    names: list[str]


def test_a_validation_error_reads_as_one_line_per_problem() -> None:
    with pytest.raises(ValidationError) as caught:
        _Model.model_validate({"n": 0, "names": ["a", 1]})
    assert errors.validation_problems(caught.value) == [
        "n: Input should be greater than or equal to 1",
        "names.1: Input should be a valid string",
    ]
    named = errors.validation_problems(caught.value, lambda loc: f"--{loc[0]}")
    assert named[0] == "--n: Input should be greater than or equal to 1"
