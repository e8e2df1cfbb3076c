"""The error tree: every error raised on purpose is a RewardkitError, under one documented branch."""

from __future__ import annotations

import pickle

import pytest
from pydantic import BaseModel, Field, ValidationError

from pytest_rewardkit import errors
from pytest_rewardkit.auth import AuthError
from pytest_rewardkit.config import ConfigError
from pytest_rewardkit.dataset import DatasetError
from pytest_rewardkit.generation import AuthenticationError, BadResponse, RateLimitError
from pytest_rewardkit.generation.rollout import ReplayMiss
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


@pytest.mark.parametrize("error", [UnusableGold, GradingWorkerError, SandboxUnavailable, SandboxFailed])
def test_an_error_that_crosses_processes_still_pickles(error: type[Exception]) -> None:
    # UnusableGold comes back from the grading worker process as a pickle.
    copy = pickle.loads(pickle.dumps(error("ground truth 'x' is not a parsable math answer")))
    assert type(copy) is error and str(copy) == "ground truth 'x' is not a parsable math answer"


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
