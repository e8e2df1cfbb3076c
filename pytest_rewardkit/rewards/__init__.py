"""Built-in rewards, by name. Each lives in its own module, imported only when asked for:
a suite that scores math never pays for the code sandbox's imports."""

from __future__ import annotations

from pathlib import Path

from pytest_rewardkit.errors import UnknownReward
from pytest_rewardkit.reward import RewardFunction

__all__ = ["BUILTINS", "UnknownReward", "resolve_reward"]

# One line per built-in: name -> "module:function". Other modules add theirs here.
BUILTINS: dict[str, str] = {
    "math": "pytest_rewardkit.rewards.math:math_reward",
    "tool_call": "pytest_rewardkit.rewards.tool_call:tool_call_reward",
    "think_format": "pytest_rewardkit.rewards.shaping:think_format_reward",
    "tag_count": "pytest_rewardkit.rewards.shaping:tag_count_reward",
    "length": "pytest_rewardkit.rewards.shaping:length_reward",
    "cosine_length": "pytest_rewardkit.rewards.shaping:cosine_length_reward",
    "repetition_penalty": "pytest_rewardkit.rewards.shaping:repetition_penalty_reward",
    "reasoning_steps": "pytest_rewardkit.rewards.shaping:reasoning_steps_reward",
    "multiple_choice": "pytest_rewardkit.rewards.shaping:multiple_choice_reward",
    "list_match": "pytest_rewardkit.rewards.shaping:list_match_reward",
    "json_schema": "pytest_rewardkit.rewards.shaping:json_schema_reward",
    "code": "pytest_rewardkit.rewards.code:code_reward",
    "composite": "pytest_rewardkit.rewards.composite:composite_reward",
    "multi_turn": "pytest_rewardkit.rewards.multi_turn:multi_turn_reward",
}


def resolve_reward(name: str, suite_dir: Path | None = None) -> RewardFunction:
    """A built-in by name, or any reward function by import path `module:function`; a module in
    `suite_dir` (beside the suite's YAML) is found there. UnknownReward if there is none."""
    from pytest_rewardkit.resolver import resolver_for

    return resolver_for(suite_dir).reward(name)
