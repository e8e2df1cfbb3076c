"""Every error pytest-rewardkit raises on purpose, as one tree (the way httpx documents its own).

    RewardkitError
    ├── ConfigError        a setting, option, suite file or import path the user must fix
    │   ├── AuthError          no usable API key (pytest_rewardkit.auth)
    │   ├── EnvironmentSetupError  a suite's environment class or tools (pytest_rewardkit.environment)
    │   ├── PackagingError     a suite's reward cannot become a Fireworks evaluator (evaluators.packaging)
    │   └── ServerConfigError  the reward server refuses to start (pytest_rewardkit.server)
    ├── DatasetError       a dataset file that cannot be read as a whole (one bad line is a row problem)
    ├── RewardError        a reward that cannot be used
    │   ├── UnknownReward      neither a built-in nor an importable reward function
    │   ├── UnusableGold       a row's ground truth is no math answer (rewards.math)
    │   └── GradingWorkerError the math grader's worker process could not start or died (rewards.deadline)
    ├── GenerationError    a model call failed (subclasses in pytest_rewardkit.generation)
    ├── EvaluatorAPIError  a Fireworks evaluator call failed (subclasses in pytest_rewardkit.evaluators.api)
    ├── CassetteError      a cassette cannot be read or written (pytest_rewardkit.recording.SecretLeak)
    │   └── ReplayMiss         a request the row needs is not in its cassette, which may not record it;
    │                          also a RowError (generation.rollout's says which turn)
    ├── SandboxError       the code sandbox cannot run (pytest_rewardkit.sandbox)
    │   └── SandboxUnavailable code cannot run safely here
    │       ├── SandboxFailed          the sandbox failed before starting the program
    │       └── ExitStatusUnavailable  `sandbox: process` cannot learn the exit status (SIGCHLD ignored)
    ├── RowError           one row could not be scored: an error item, never a reward of 0
    └── SessionStop        no row can be scored (no or a rejected API key): the run stops once

Catch a branch, not a tuple of unrelated classes. `ConfigError`, `DatasetError` and `UnusableGold`
are also `ValueError`s, `SandboxUnavailable` and `GradingWorkerError` also `RuntimeError`s, as they
were before the tree existed. A grader's own failure inside a reward is not
raised: the reward returns `EvaluateResult.invalid(...)`. Every error in the tree pickles with its
attributes, whatever its __init__ takes, since errors cross processes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = [
    "CassetteError",
    "ConfigError",
    "DatasetError",
    "GenerationError",
    "ReplayMiss",
    "RewardError",
    "RewardkitError",
    "RowError",
    "SandboxError",
    "SessionStop",
    "UnknownReward",
]

Location = tuple[int | str, ...]


class RewardkitError(Exception):
    """Base of every error pytest-rewardkit raises on purpose; the message names the file, row or
    option at fault and the fix."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as its args and attributes and rebuilt without calling __init__, so that every error
        # crosses processes (xdist workers, the grading worker), also one whose __init__ takes other
        # arguments than its message (rollout's ReplayMiss takes the request).
        return (_rebuilt, (type(self), self.args), self.__dict__ or None)


def _rebuilt(cls: type[RewardkitError], args: tuple[Any, ...]) -> RewardkitError:
    return cls.__new__(cls, *args)


class ConfigError(RewardkitError, ValueError):
    """A settings problem the user must fix; the message names the file or option."""


class DatasetError(RewardkitError, ValueError):
    """The dataset file as a whole cannot be read (one bad line is a DatasetEntry problem)."""


class RewardError(RewardkitError):
    """A reward cannot be used: not found, a wrong signature, or params it refuses."""


class UnknownReward(RewardError):
    """A suite names a reward that is neither a built-in nor an importable reward function."""


class GenerationError(RewardkitError):
    """A model call failed; the row is an error item, never a reward of 0."""


class CassetteError(RewardkitError):
    """A cassette cannot be used; the message names the file and the fix."""


class SandboxError(RewardkitError):
    """The code sandbox cannot run a program as configured."""


class RowError(RewardkitError):
    """The row could not be scored (bad row, failed generation, broken reward): an error, not a 0."""


class ReplayMiss(CassetteError, RowError):
    """A request the row needs is not in its cassette and the record mode may not add it: the row
    is an error item (its outcome's error type is ReplayMiss) whose message says how to record it."""


class SessionStop(RewardkitError):
    """No row can be evaluated (e.g. no or a rejected API key): the session stops once with this
    message instead of failing every row the same way."""


def validation_problems(exc: ValidationError, locate: Callable[[Location], str] | None = None) -> list[str]:
    """A pydantic validation error as one line per problem, `<location>: <message>`, without
    pydantic's 'Value error, ' prefix. `locate` names a location (default: its parts joined by dots)."""
    problems = []
    for error in exc.errors():
        where = locate(error["loc"]) if locate is not None else dotted(error["loc"])
        problems.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return problems


def dotted(location: Location) -> str:
    """`tests.0.stdin`, or '(top level)' for the model itself."""
    return ".".join(str(part) for part in location) or "(top level)"
