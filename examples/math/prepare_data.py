"""Build examples/math/dataset.jsonl from GSM8K's test split (1,319 grade-school word problems).

    python examples/math/prepare_data.py --source path/to/gsm8k/test.jsonl
    python examples/math/prepare_data.py --download      # needs network: OpenAI's GitHub release

Each row: the question as the user turn, the reference solution as the assistant turn (what is
scored when no model is given), and the final number after '####' as ground_truth.
"""

from __future__ import annotations

import json
from pathlib import Path

from pytest_rewardkit.dataset import prepare_main

HERE = Path(__file__).parent
SOURCE_URL = "https://raw.githubusercontent.com/openai/grade-school-math/master/grade_school_math/data/test.jsonl"


def gsm8k_rows(lines: list[str]) -> list[dict[str, object]]:
    rows = []
    for index, line in enumerate(line for line in lines if line.strip()):
        item = json.loads(line)
        final = item["answer"].rpartition("####")[2]
        rows.append(
            {
                "id": f"gsm8k-test-{index:04d}",
                "messages": [
                    {"role": "user", "content": item["question"]},
                    {"role": "assistant", "content": item["answer"]},
                ],
                "ground_truth": final.strip().replace(",", ""),
            }
        )
    return rows


def main() -> None:
    prepare_main(gsm8k_rows, description=__doc__ or "", source_url=SOURCE_URL, out=HERE / "dataset.jsonl")


if __name__ == "__main__":
    main()
