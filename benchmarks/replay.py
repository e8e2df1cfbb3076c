"""Replay cost: `pytest examples/math --rk-model gpt3-gsm8k-solutions --rk-n 4` (1,319 rows x 4 variants
replayed from the committed cassettes) against a plain parametrized pytest file that scores the same
5,276 stored responses with the same math reward. Target: ratio <= 1.5.

Run from anywhere: `python benchmarks/replay.py [--repeat N]`. Both sides run as subprocesses with
`-q -p no:cacheprovider --tb=no` and `--rk-threshold 0` on both (so every row passes and the shared
timing helper accepts the runs); the best of N runs is reported.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from collect_rows import EXAMPLE, ROOT, time_pytest

from pytest_rewardkit.config import Options
from pytest_rewardkit.evaluation import Case
from pytest_rewardkit.recording import RowCassette, cassette_path
from pytest_rewardkit.suite import load_suite

ALIAS = "gpt3-gsm8k-solutions"
N = 4

PLAIN_TEST = textwrap.dedent(
    """
    import json
    from pathlib import Path

    import pytest

    from pytest_rewardkit.models import Message
    from pytest_rewardkit.rewards import resolve_reward

    DATA = json.loads(Path(__file__).with_name("stored.json").read_text(encoding="utf-8"))
    REWARD = resolve_reward(DATA["reward"])


    @pytest.mark.parametrize("row", DATA["rows"], ids=[row["id"] for row in DATA["rows"]])
    def test_row(row):
        prompt = [Message(**message) for message in row["prompt"]]
        scores = [
            REWARD([*prompt, Message(**response)], ground_truth=row["ground_truth"], **DATA["params"]).score
            for response in row["responses"]
        ]
        assert sum(scores) / len(scores) >= DATA["threshold"]
    """
)


def stored_responses() -> dict[str, Any]:
    """Every row's prompt, ground truth and its N recorded responses, read from the cassettes."""
    settings, entries = load_suite(EXAMPLE, Options(model=ALIAS, n=N), ROOT)
    rows: list[dict[str, Any]] = []
    for entry in entries:
        assert entry.row is not None, entry.problem
        path = cassette_path(ROOT / "cassettes", settings.suite, ALIAS, entry.row_id)
        choices = [c for i in RowCassette.load(path).interactions for c in i.choices][:N]
        if len(choices) < N:
            raise SystemExit(f"{path}: {len(choices)} of {N} responses recorded; re-record the demo cassettes")
        case = Case(settings=settings, row=entry.row, row_id=entry.row_id)
        rows.append(
            {
                "id": entry.row_id,
                "prompt": [m.to_api() for m in case.prompt()],
                "ground_truth": entry.row.ground_truth,
                "responses": [{"role": "assistant", **c["message"]} for c in choices],
            }
        )
    return {"reward": settings.reward.name, "params": settings.reward.params, "threshold": 0.0, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per side (default 3; the best is reported)")
    args = parser.parse_args()
    common = ["-q", "--tb=no"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = stored_responses()
        rows = len(data["rows"])
        (folder / "stored.json").write_text(json.dumps(data), encoding="utf-8")
        (folder / "test_plain.py").write_text(PLAIN_TEST, encoding="utf-8")
        rk_args = [str(EXAMPLE), "--rk-model", ALIAS, "--rk-n", str(N), "--rk-threshold", "0"]
        rk_times, rk_out = time_pytest([*rk_args, "--rk-output", str(folder / "out"), *common], args.repeat)
        plain_times, plain_out = time_pytest([str(folder / "test_plain.py"), *common], args.repeat)
    rk_best, plain_best = min(rk_times), min(plain_times)
    print(f"replay: {rows} rows x {N} variants = {rows * N} stored responses, math reward, best of {args.repeat}")
    for label, times, output in (("rewardkit", rk_times, rk_out), ("plain pytest", plain_times, plain_out)):
        verdict = re.findall(r"\d+ \w+ in [\d.]+s", output)
        print(
            f"  {label:<13} best {min(times):.2f} s  (all: {', '.join(f'{t:.2f}' for t in times)})"
            f"  [{verdict[-1] if verdict else output.strip().splitlines()[-1]}]"
        )
    print(f"  per-row overhead: {(rk_best - plain_best) / rows * 1000:.2f} ms")
    print(f"  ratio rewardkit / plain: {rk_best / plain_best:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
