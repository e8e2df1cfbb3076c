"""Built-in rewards, by name. Each lives in its own module, imported only when asked for:
a suite that scores math never pays for the code sandbox's imports."""

from __future__ import annotations

import sys
from pathlib import Path

from pytest_rewardkit.errors import UnknownReward
from pytest_rewardkit.reward import RewardFunction, import_object, reward_function

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
    """A built-in by name, or any reward function by import path `module:function`. A module
    that sits in `suite_dir` (beside the suite's YAML) is importable without any path setup."""
    path = BUILTINS.get(name, name)
    if ":" not in path:
        known = ", ".join(sorted(BUILTINS))
        raise UnknownReward(f"unknown reward {name!r}: use a built-in ({known}) or 'module:function'")
    top_module = path.partition(":")[0].split(".")[0]
    if name not in BUILTINS and suite_dir is not None and str(suite_dir) not in sys.path:
        local = suite_dir / f"{top_module}.py"
        if local.is_file() or (suite_dir / top_module / "__init__.py").is_file():
            # Like pytest's default "prepend" import mode does for test modules.
            sys.path.insert(0, str(suite_dir))
    try:
        obj = import_object(path)
    except (ImportError, AttributeError) as exc:
        raise UnknownReward(f"cannot import reward {path!r}: {exc}") from exc
    try:
        return reward_function(obj)
    except TypeError as exc:
        # A wrong signature is this suite's problem: an error item per row, counted, not a crash.
        raise UnknownReward(f"reward {path!r} cannot be used: {exc}") from exc
