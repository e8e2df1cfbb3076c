"""Build examples/competition_math/dataset.jsonl from MATH-500 (500 competition problems whose
answers are LaTeX: fractions, radicals, intervals, tuples, matrices, words, degrees...).

    python examples/competition_math/prepare_data.py --source path/to/math500/test.jsonl
    python examples/competition_math/prepare_data.py --download   # needs network: the Hugging Face copy

Each row: the problem as the user turn, the reference solution as the assistant turn (what is
scored when no model is given), the `answer` field as ground_truth, and the problem's `subject`,
`level` and `unique_id` as extra fields (unique_id is also the row id), for `--rk-group-by`.
"""

from __future__ import annotations

import json
from pathlib import Path

from pytest_rewardkit.dataset import prepare_main

HERE = Path(__file__).parent
SOURCE_URL = "https://huggingface.co/datasets/HuggingFaceH4/MATH-500/resolve/main/test.jsonl"


def math500_rows(lines: list[str]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for item in (json.loads(line) for line in lines if line.strip()):
        rows.append(
            {
                "id": item["unique_id"],
                "messages": [
                    {"role": "user", "content": item["problem"]},
                    {"role": "assistant", "content": item["solution"]},
                ],
                "ground_truth": item["answer"],
                "subject": item["subject"],
                "level": item["level"],
                "unique_id": item["unique_id"],
            }
        )
    return rows


def main() -> None:
    prepare_main(math500_rows, description=__doc__ or "", source_url=SOURCE_URL, out=HERE / "dataset.jsonl")


if __name__ == "__main__":
    main()
