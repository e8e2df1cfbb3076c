"""Record the offline demo cassettes for examples/math from real, published model outputs.

Fireworks cannot be reached where this project is built, so no real Qwen3 recordings can be made.
Instead, OpenAI's grade-school-math release publishes four GPT-3 solutions for every GSM8K test
question (6B and 175B models, each fine-tuned and with a verifier). This script serves them from
the local fake chat-completions server and records them through the normal record path:

    python examples/math/record_demo.py --solutions path/to/example_model_solutions.jsonl

Variant i of row r replays solution KEYS[i] for that question. The cassettes land in
cassettes/math/gpt3-gsm8k-solutions/ (see cassettes/README.md for their provenance).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from pytest_rewardkit.testing import FakeChatServer

HERE = Path(__file__).parent
ALIAS = "gpt3-gsm8k-solutions"
KEYS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")


def solutions_table(path: Path) -> dict[str, list[str | dict[str, object]]]:
    table: dict[str, list[str | dict[str, object]]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            table[item["question"]] = [item[key]["solution"] for key in KEYS]
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--solutions", type=Path, required=True, help="example_model_solutions.jsonl")
    parser.add_argument("--record-mode", default="new_episodes", choices=["new_episodes", "all"])
    args = parser.parse_args()
    server = FakeChatServer(table=solutions_table(args.solutions), honour_n=True)
    with server.running() as base_url:
        # Fireworks' path, so that the cassettes match what a default (Fireworks) run requests.
        fireworks_like = base_url.removesuffix("/v1") + "/inference/v1"
        command = [
            sys.executable, "-m", "pytest", str(HERE), "-q", "-p", "no:cacheprovider",
            "--rk-model", ALIAS, "--rk-n", str(len(KEYS)), "--rk-base-url", fireworks_like,
            f"--record-mode={args.record_mode}", "--rk-output", "",
        ]  # fmt: skip
        result = subprocess.run(command, check=False, capture_output=True, text=True)
    print(result.stdout.splitlines()[-1] if result.stdout else result.stderr[-2000:])
    print(f"served {len(server.requests)} requests")


if __name__ == "__main__":
    main()
