"""HumanEval references verified per second: all 164 canonical solutions of examples/coding
checked by the `code` reward in the bubblewrap sandbox, scored by `--workers` threads.

Run from anywhere: `python benchmarks/humaneval_verify.py [--workers 1 4]`. Each count of
workers is one full pass over the 164 problems; a problem that does not pass stops the benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pytest_rewardkit import resolve_reward

DATASET = Path(__file__).resolve().parent.parent / "examples" / "coding" / "dataset.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    rows = [json.loads(line) for line in DATASET.read_text(encoding="utf-8").splitlines() if line.strip()]
    reward = resolve_reward("code")
    reward([rows[0]["messages"][-1]], tests=rows[0]["tests"])  # the one-time sandbox probe

    def verify(row: dict) -> float:
        return reward([row["messages"][-1]], tests=row["tests"], mode="all").score

    print(f"{len(rows)} HumanEval references, {os.cpu_count()} CPUs")
    for workers in args.workers:
        start = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            scores = list(pool.map(verify, rows))
        elapsed = time.perf_counter() - start
        failed = [row["id"] for row, s in zip(rows, scores, strict=True) if s != 1.0]
        if failed:
            raise SystemExit(f"references that did not pass: {failed}")
        print(f"workers {workers:>2}: {len(rows)} verified in {elapsed:5.1f} s = {len(rows) / elapsed:5.1f} per second")


if __name__ == "__main__":
    main()
