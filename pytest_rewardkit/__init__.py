"""pytest-rewardkit: reward functions for LLM RL, evaluated over datasets as pytest items."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The error tree imports nothing at run time, so it is no start-up cost.
from pytest_rewardkit.errors import (
    CassetteError,
    ConfigError,
    DatasetError,
    GenerationError,
    ReplayMiss,
    RewardError,
    RewardkitError,
    RowError,
    SandboxError,
    SessionStop,
    UnknownReward,
)

if TYPE_CHECKING:
    from pytest_rewardkit.models import EvaluateResult, Message, MetricResult, Row
    from pytest_rewardkit.reward import RewardFunction, reward_function
    from pytest_rewardkit.rewards import BUILTINS, resolve_reward
    from pytest_rewardkit.rewards.code import code_reward
    from pytest_rewardkit.rewards.composite import composite_reward
    from pytest_rewardkit.rewards.math import math_reward
    from pytest_rewardkit.rewards.multi_turn import multi_turn_reward
    from pytest_rewardkit.rewards.shaping import (
        cosine_length_reward,
        json_schema_reward,
        length_reward,
        list_match_reward,
        multiple_choice_reward,
        reasoning_steps_reward,
        repetition_penalty_reward,
        tag_count_reward,
        think_format_reward,
    )
    from pytest_rewardkit.rewards.tool_call import tool_call_reward

__all__ = [
    "BUILTINS",
    "CassetteError",
    "ConfigError",
    "DatasetError",
    "EvaluateResult",
    "GenerationError",
    "Message",
    "MetricResult",
    "ReplayMiss",
    "RewardError",
    "RewardFunction",
    "RewardkitError",
    "Row",
    "RowError",
    "SandboxError",
    "SessionStop",
    "UnknownReward",
    "code_reward",
    "composite_reward",
    "cosine_length_reward",
    "json_schema_reward",
    "length_reward",
    "list_match_reward",
    "math_reward",
    "multi_turn_reward",
    "multiple_choice_reward",
    "reasoning_steps_reward",
    "repetition_penalty_reward",
    "resolve_reward",
    "reward_function",
    "tag_count_reward",
    "think_format_reward",
    "tool_call_reward",
]

# Name -> module, imported on first use: the pytest plugin lives in this package, so an eager
# import would make every pytest run of every project pay for pydantic (and `math_reward` for sympy).
_LAZY = {
    "EvaluateResult": "pytest_rewardkit.models",
    "Message": "pytest_rewardkit.models",
    "MetricResult": "pytest_rewardkit.models",
    "Row": "pytest_rewardkit.models",
    "RewardFunction": "pytest_rewardkit.reward",
    "reward_function": "pytest_rewardkit.reward",
    "BUILTINS": "pytest_rewardkit.rewards",
    "resolve_reward": "pytest_rewardkit.rewards",
    "code_reward": "pytest_rewardkit.rewards.code",
    "composite_reward": "pytest_rewardkit.rewards.composite",
    "math_reward": "pytest_rewardkit.rewards.math",
    "multi_turn_reward": "pytest_rewardkit.rewards.multi_turn",
    "cosine_length_reward": "pytest_rewardkit.rewards.shaping",
    "json_schema_reward": "pytest_rewardkit.rewards.shaping",
    "length_reward": "pytest_rewardkit.rewards.shaping",
    "list_match_reward": "pytest_rewardkit.rewards.shaping",
    "multiple_choice_reward": "pytest_rewardkit.rewards.shaping",
    "reasoning_steps_reward": "pytest_rewardkit.rewards.shaping",
    "repetition_penalty_reward": "pytest_rewardkit.rewards.shaping",
    "tag_count_reward": "pytest_rewardkit.rewards.shaping",
    "think_format_reward": "pytest_rewardkit.rewards.shaping",
    "tool_call_reward": "pytest_rewardkit.rewards.tool_call",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pytest_rewardkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
