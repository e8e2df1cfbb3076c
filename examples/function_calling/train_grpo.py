"""GRPO training with this suite's reward (`tool_call`) on its prompts; see pytest_rewardkit.trl.train.

pip install -e ".[trl]"
python examples/function_calling/train_grpo.py --max-steps 2         # tiny model built locally, CPU, seconds
python examples/function_calling/train_grpo.py --model ./Qwen3-0.6B  # a real model you have locally
"""

import sys
from pathlib import Path

from pytest_rewardkit.trl.train import main

if __name__ == "__main__":
    sys.exit(main(suite=Path(__file__).resolve().parent))
