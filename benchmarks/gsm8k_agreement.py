"""Agreement of the `math` reward with OpenAI's own correctness labels on the 5,276 GPT-3 GSM8K
solutions replayed by the demo cassettes (cassettes/math/gpt3-gsm8k-solutions, see
cassettes/README.md), and its verdicts per second on them.

    python benchmarks/gsm8k_agreement.py --solutions path/to/example_model_solutions.jsonl

The labels (`is_correct`) come from the grade-school-math release's `example_model_solutions.jsonl`,
which is not part of this project; the script lists every disagreement.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

from pytest_rewardkit.rewards.math import math_reward

ROOT = Path(__file__).parent.parent
KEYS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")  # variant order


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--solutions", type=Path, required=True, help="example_model_solutions.jsonl")
    args = parser.parse_args()
    labels = {}
    for line in args.solutions.read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            labels[item["question"]] = [item[key]["is_correct"] for key in KEYS]
    rows = [
        json.loads(line) for line in (ROOT / "examples/math/dataset.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    math_reward([{"role": "assistant", "content": "\\boxed{1}"}], ground_truth="1")  # imports outside the timing
    agree, disagreements, seconds = 0, [], 0.0
    for row in rows:
        cassette = ROOT / "cassettes/math/gpt3-gsm8k-solutions" / f"{row['id']}.yaml"
        recorded = yaml.load(cassette.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
        body = json.loads(recorded["interactions"][0]["response"]["body"]["string"])
        for choice, label in zip(body["choices"], labels[row["messages"][0]["content"]], strict=True):
            started = time.perf_counter()
            result = math_reward([choice["message"]], ground_truth=row["ground_truth"])
            seconds += time.perf_counter() - started
            if (result.score == 1.0) == label:
                agree += 1
            else:
                disagreements.append(f"{row['id']}: labelled {label}, scored {result.score}: {result.reason}")
    total = agree + len(disagreements)
    print(f"agreement {agree:,}/{total:,}  {total / seconds:,.0f} verdicts/s")
    print("\n".join(disagreements))


if __name__ == "__main__":
    main()
