"""examples/coding (HumanEval): every canonical solution passes its check in the sandbox, and
responses shuffled between problems score near 0 (the reward can fail)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pytest_rewardkit.dataset import write_dataset
from pytest_rewardkit.evaluation import RowOutcome
from pytest_rewardkit.suite import run_suite

SUITE = Path(__file__).parent.parent / "examples" / "coding"


def rows_of(suite: Path) -> list[dict[str, object]]:
    lines = (suite / "dataset.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def score_in_parallel(suite: Path, rows: list[dict[str, object]], tmp_path: Path, chunks: int = 4) -> list[RowOutcome]:
    """run_suite over `rows`, split into chunks scored side by side (each row is one sandbox run
    that mostly waits for process start-up)."""
    paths = []
    for index in range(chunks):
        path = tmp_path / f"chunk{index}.jsonl"
        write_dataset(path, rows[index::chunks])
        paths.append(path)
    with ThreadPoolExecutor(chunks) as pool:
        return [outcome for part in pool.map(lambda p: run_suite(suite, dataset=p), paths) for outcome in part]


def shuffled(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Each row gets the next row's reference response: a derangement, so none keeps its own."""
    responses = [row["messages"][-1] for row in rows]  # type: ignore[index]
    return [
        {**row, "messages": [*row["messages"][:-1], responses[(i + 1) % len(rows)]]}  # type: ignore[index]
        for i, row in enumerate(rows)
    ]


def test_every_humaneval_reference_passes(tmp_path: Path) -> None:
    rows = rows_of(SUITE)
    assert len(rows) == 164
    outcomes = score_in_parallel(SUITE, rows, tmp_path)
    failed = [o.verdict_message() for o in outcomes if not o.passed]
    assert len(outcomes) == 164
    assert failed == []


def test_shuffled_responses_score_near_zero(tmp_path: Path) -> None:
    rows = shuffled(rows_of(SUITE)[::4])
    outcomes = score_in_parallel(SUITE, rows, tmp_path)
    assert all(o.error is None for o in outcomes), [o.verdict_message() for o in outcomes if o.error][:3]
    mean = sum(o.reward or 0.0 for o in outcomes) / len(outcomes)
    assert mean <= 0.05, [o.verdict_message() for o in outcomes if o.passed]


# A wrong answer, with the prompt's helper redefined to agree with it: the check must call the
# prompt's own helper (trusted, from the dataset), never the response's.
FORGED_HELPERS = {
    "HumanEval-32": "def poly(xs, x):\n    return 0.0\n\n\ndef find_zero(xs):\n    return 12345.0\n",
    "HumanEval-38": "def encode_cyclic(s):\n    return s\n\n\ndef decode_cyclic(s):\n    return s\n",
    "HumanEval-50": "def encode_shift(s):\n    return s\n\n\ndef decode_shift(s):\n    return s\n",
}


def test_response_redefining_the_prompts_helper_scores_zero(tmp_path: Path) -> None:
    rows = [row for row in rows_of(SUITE) if row["id"] in FORGED_HELPERS]
    assert len(rows) == 3
    forged = [
        {
            **row,
            "messages": [
                *row["messages"][:-1],  # type: ignore[index]
                {"role": "assistant", "content": "```python\n" + FORGED_HELPERS[str(row["id"])] + "```"},
            ],
        }
        for row in rows
    ]
    path = tmp_path / "forged.jsonl"
    write_dataset(path, forged)
    outcomes = run_suite(SUITE, dataset=path)
    assert [(o.row_id, o.reward) for o in outcomes] == [(row["id"], 0.0) for row in rows], [
        o.verdict_message() for o in outcomes
    ]
