"""Record the reference trajectories of examples/multi_turn: BFCL's ground-truth calls, played by
a scripted model through the local fake chat-completions server, one call per model request.

    python examples/multi_turn/record_reference.py

The scripted model (`pytest_rewardkit.scripted_model.ScriptedToolModel`) answers step k of turn t
with the row's k-th ground-truth call of that turn, and with "Done." after the last one. The
requests go through the normal record path, so each step is one interaction of the row's
cassette, under the model alias `bfcl-ground-truth` (cassettes/multi_turn/bfcl-ground-truth/).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from pytest_rewardkit.scripted_model import ScriptedToolModel
from pytest_rewardkit.testing import FakeChatServer

HERE = Path(__file__).parent
ALIAS = "bfcl-ground-truth"


def scripts(dataset: Path) -> dict[str, list[list[Any]]]:
    """The ground truth of every row, by the text of its first user message."""
    table = {}
    for line in dataset.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            table[row["turns"][0][0]["content"]] = row["ground_truth"]
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--record-mode", default="all", choices=["new_episodes", "all"])
    args = parser.parse_args()
    server = FakeChatServer(table=ScriptedToolModel(scripts(HERE / "dataset.jsonl")))
    with server.running() as base_url:
        # Fireworks' path, so that the cassettes match what a default (Fireworks) run requests.
        fireworks_like = base_url.removesuffix("/v1") + "/inference/v1"
        command = [
            sys.executable, "-m", "pytest", str(HERE), "-q", "-p", "no:cacheprovider",
            "--rk-model", ALIAS, "--rk-base-url", fireworks_like, f"--record-mode={args.record_mode}",
        ]  # fmt: skip
        result = subprocess.run(command, check=False, capture_output=True, text=True)
    print(result.stdout[-3000:] if result.returncode else result.stdout.splitlines()[-1])
    print(f"served {len(server.requests)} requests")


if __name__ == "__main__":
    main()
