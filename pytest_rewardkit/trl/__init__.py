"""pytest-rewardkit with TRL: a suite's reward, prompts and environment for `GRPOTrainer`, and the
training command built on them.

- `adapter`: `trl_reward` (a reward as a `reward_funcs` entry) and `suite_dataset` (a suite's rows
  as TRL's conversational prompt dataset);
- `environment`: `environment_factory` (a suite's tools as TRL's `environment_factory`);
- `train`: `python -m pytest_rewardkit.trl.train SUITE`, GRPO on a suite (what every example's
  `train_grpo.py` runs). It imports torch, transformers and TRL; this package itself does not,
  so a reward adapter costs no more than the reward.

    from trl import GRPOTrainer
    from pytest_rewardkit.trl import suite_dataset, trl_reward

    trainer = GRPOTrainer(model=..., reward_funcs=[trl_reward("examples/math")],
                          train_dataset=suite_dataset("examples/math"), args=...)
"""

from pytest_rewardkit.trl.adapter import AsyncTRLReward, TRLReward, suite_dataset, trl_reward
from pytest_rewardkit.trl.environment import TRLEnvironment, environment_factory

__all__ = ["AsyncTRLReward", "TRLEnvironment", "TRLReward", "environment_factory", "suite_dataset", "trl_reward"]
