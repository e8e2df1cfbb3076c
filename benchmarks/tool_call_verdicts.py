"""Verdicts per second of the `tool_call` reward on examples/function_calling (1,240 BFCL rows).

Run from anywhere: `python benchmarks/tool_call_verdicts.py [--repeat N]`. Each verdict is one call of
the reward as a suite makes it (messages validated, ground truth and tools read, calls parsed,
checked, paired, schema-checked). Two response sets: the reference answers (all pass) and the
same answers with one parameter perturbed (all fail, so every mismatch path is timed). The best of
N rounds is reported.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

from pytest_rewardkit.rewards.tool_call import tool_call_reward

DATASET = Path(__file__).resolve().parent.parent / "examples" / "function_calling" / "dataset.jsonl"


def perturbed(row: dict[str, Any]) -> dict[str, Any]:
    """The row's reference with its first argument changed (irrelevance rows: an empty call)."""
    response = copy.deepcopy(row["messages"][-1])
    if not response.get("tool_calls"):
        name = row["tools"][0]["function"]["name"]
        response = {
            "role": "assistant",
            "tool_calls": [{"type": "function", "function": {"name": name, "arguments": "{}"}}],
        }
    else:
        function = response["tool_calls"][0]["function"]
        arguments = json.loads(function["arguments"]) or {"extra": 0}
        first = next(iter(arguments))
        arguments[first] = [arguments[first], "perturbed"]
        function["arguments"] = json.dumps(arguments)
    return {**row, "messages": [*row["messages"][:-1], response]}


def verdicts_per_second(rows: list[dict[str, Any]], repeat: int) -> tuple[float, float]:
    """(best verdicts per second, mean score) over `repeat` rounds of scoring every row."""
    best = 0.0
    scores: list[float] = []
    for _ in range(repeat):
        start = time.perf_counter()
        scores = [
            tool_call_reward(row["messages"], ground_truth=row["ground_truth"], tools=row["tools"]).score
            for row in rows
        ]
        best = max(best, len(rows) / (time.perf_counter() - start))
    return best, sum(scores) / len(scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = [json.loads(line) for line in DATASET.read_text(encoding="utf-8").splitlines() if line.strip()]
    for label, data in (("references", rows), ("one parameter perturbed", [perturbed(r) for r in rows])):
        rate, mean = verdicts_per_second(data, args.repeat)
        print(
            f"{label:>24}: {rate:8,.0f} verdicts/s over {len(data)} rows (best of {args.repeat}), mean score {mean:.3f}"
        )


if __name__ == "__main__":
    main()
