"""Seconds per GRPO step with the tiny in-process model, on a suite's prompts and reward, for a few
batch shapes: what a CI run or a quick local check pays per training step on CPU.

Run from the repository root: `python benchmarks/grpo_steps.py [--suite examples/math] [--steps 5]`.
The first step of each shape is left out (it includes one-time set-up); the rest give the median.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from pytest_rewardkit.trl.train import StepPrinter, TrainSettings, build_trainer

# (completions per prompt, prompts per step, tokens per completion)
SHAPES = [(4, 2, 32), (8, 2, 32), (4, 2, 128), (8, 4, 64)]


class StepClock(TrainerCallback):
    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_step_end(self, *args: Any, **kwargs: Any) -> None:
        self.ends.append(time.perf_counter())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", type=Path, default=Path("examples/math"))
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    print(f"{'generations':>11} {'prompts':>7} {'tokens':>6}   median s/step   completions/s")
    # The first trainer of a process pays torch's one-time kernel set-up for many input shapes: a warm-up.
    for index, (generations, prompts, tokens) in enumerate([SHAPES[0], *SHAPES]):
        settings = TrainSettings(
            suite=args.suite,
            max_steps=args.steps,
            num_generations=generations,
            prompts_per_step=prompts,
            max_completion_length=tokens,
            limit=64,
        )
        with tempfile.TemporaryDirectory() as scratch:
            trainer = build_trainer(settings, Path(scratch))
            clock = StepClock()
            trainer.remove_callback(StepPrinter)
            trainer.add_callback(clock)
            trainer.train()
        step = statistics.median(b - a for a, b in zip(clock.ends, clock.ends[1:], strict=False))
        if index == 0:
            continue
        print(f"{generations:>11} {prompts:>7} {tokens:>6}   {step:13.2f}   {generations * prompts / step:13.1f}")


if __name__ == "__main__":
    main()
