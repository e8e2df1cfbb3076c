"""pytest-rewardkit: reward functions for LLM RL, evaluated over datasets as pytest items."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_rewardkit.models import EvaluateResult, Message, MetricResult, Row
    from pytest_rewardkit.reward import RewardFunction, reward_function
    from pytest_rewardkit.rewards import BUILTINS, resolve_reward

__all__ = [
    "BUILTINS",
    "EvaluateResult",
    "Message",
    "MetricResult",
    "RewardFunction",
    "Row",
    "resolve_reward",
    "reward_function",
]

_PUBLIC = {
    "EvaluateResult": "pytest_rewardkit.models",
    "Message": "pytest_rewardkit.models",
    "MetricResult": "pytest_rewardkit.models",
    "Row": "pytest_rewardkit.models",
    "RewardFunction": "pytest_rewardkit.reward",
    "reward_function": "pytest_rewardkit.reward",
    "BUILTINS": "pytest_rewardkit.rewards",
    "resolve_reward": "pytest_rewardkit.rewards",
}


def __getattr__(name: str) -> Any:
    # Everything is imported on first use: the pytest plugin lives in this package, so an eager
    # import would make every pytest run of every project pay for pydantic (and a built-in reward
    # like `math_reward` for sympy).
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    from pytest_rewardkit.rewards import BUILTINS

    for path in BUILTINS.values():
        module, _, attr = path.partition(":")
        if attr == name:
            return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'pytest_rewardkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    from pytest_rewardkit.rewards import BUILTINS

    return sorted({*__all__, *(path.partition(":")[2] for path in BUILTINS.values())})
