"""Verdicts per second of the `math` reward on GSM8K (examples/math) and MATH-500
(examples/competition_math) answers.

    python benchmarks/math_verdicts.py

Each suite is graded three ways, with the parse cache emptied first so every answer is read anew:
its reference solutions (every answer right), the solutions shuffled between rows (answers compared
in depth and nearly all found wrong), and the references again from a thread, where each verdict
runs in the deadline's worker process.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from pytest_rewardkit.rewards.math import math_reward, read_answer

EXAMPLES = Path(__file__).parent.parent / "examples"
SUITES = {"GSM8K": EXAMPLES / "math" / "dataset.jsonl", "MATH-500": EXAMPLES / "competition_math" / "dataset.jsonl"}

Pair = tuple[str, str]  # (response, ground truth)


def load(path: Path) -> tuple[list[Pair], list[Pair]]:
    """The reference pairs, and the same answers shuffled: row i against row i + n/2's solution."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    solutions = [row["messages"][-1]["content"] for row in rows]
    golds = [str(row["ground_truth"]) for row in rows]
    half = len(rows) // 2
    shuffled = [(solutions[(i + half) % len(rows)], gold) for i, gold in enumerate(golds)]
    return list(zip(solutions, golds, strict=True)), shuffled


def grade_all(pairs: list[Pair]) -> tuple[float, float]:
    """(verdicts per second, mean score) over `pairs`, from a cold parse cache."""
    read_answer.cache_clear()
    started = time.perf_counter()
    total = 0.0
    for response, gold in pairs:
        total += math_reward([{"role": "assistant", "content": response}], ground_truth=gold).score
    return len(pairs) / (time.perf_counter() - started), total / len(pairs)


def grade_all_in_thread(pairs: list[Pair]) -> tuple[float, float]:
    figures: list[tuple[float, float]] = []

    def run() -> None:
        math_reward([{"role": "assistant", "content": "\\boxed{1}"}], ground_truth="1")  # start the worker
        figures.append(grade_all(pairs))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return figures[0]


def main() -> None:
    grade_all([("\\boxed{1}", "1")])  # imports sympy and math-verify outside the timings
    print(f"{'suite':<10} {'responses':<28} {'verdicts':>8} {'verdicts/s':>11} {'mean score':>11}")
    for name, path in SUITES.items():
        references, shuffled = load(path)
        runs = [
            ("references", grade_all, references),
            ("shuffled (wrong answers)", grade_all, shuffled),
            ("references, off main thread", grade_all_in_thread, references),
        ]
        for label, grader, pairs in runs:
            rate, mean = grader(pairs)
            print(f"{name:<10} {label:<28} {len(pairs):>8} {rate:>11.0f} {mean:>11.3f}")


if __name__ == "__main__":
    main()
