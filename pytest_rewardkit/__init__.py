"""pytest-rewardkit: reward functions for LLM RL, evaluated over datasets as pytest items."""

from __future__ import annotations

from typing import Any

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
    "math_reward",
    "resolve_reward",
    "reward_function",
]


def __getattr__(name: str) -> Any:
    # Built-in rewards are public (`from pytest_rewardkit import math_reward`) but imported on
    # first use: math-verify pulls in sympy, which would tax every pytest start-up.
    for path in BUILTINS.values():
        _, _, attr = path.partition(":")
        if attr == name:
            from pytest_rewardkit.reward import import_object

            return import_object(path)
    raise AttributeError(f"module 'pytest_rewardkit' has no attribute {name!r}")
