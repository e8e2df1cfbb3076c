"""Build examples/math/dataset.jsonl from GSM8K's test split (1,319 grade-school word problems).

    python examples/math/prepare_data.py --source path/to/gsm8k/test.jsonl
    python examples/math/prepare_data.py --download      # needs network: OpenAI's GitHub release

Each row: the question as the user turn, the reference solution as the assistant turn (what is
scored when no model is given), and the final number after '####' as ground_truth.
"""

from __future__ import annotations

import argparse
import json
import urllib.request
from pathlib import Path

from pytest_rewardkit.dataset import write_dataset

HERE = Path(__file__).parent
SOURCE_URL = "https://raw.githubusercontent.com/openai/grade-school-math/master/grade_school_math/data/test.jsonl"


def gsm8k_rows(lines: list[str]) -> list[dict[str, object]]:
    rows = []
    for index, line in enumerate(line for line in lines if line.strip()):
        item = json.loads(line)
        solution, _, final = item["answer"].rpartition("####")
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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--source", type=Path, help="a local GSM8K test.jsonl")
    where.add_argument("--download", action="store_true", help=f"fetch {SOURCE_URL}")
    parser.add_argument("--out", type=Path, default=HERE / "dataset.jsonl")
    args = parser.parse_args()
    if args.download:
        with urllib.request.urlopen(SOURCE_URL, timeout=60) as response:
            text = response.read().decode("utf-8")
    else:
        text = args.source.read_text(encoding="utf-8")
    rows = gsm8k_rows(text.splitlines())
    write_dataset(args.out, rows)
    print(f"wrote {len(rows)} rows to {args.out}")


if __name__ == "__main__":
    main()
