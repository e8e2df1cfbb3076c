"""examples/competition_math (MATH-500): the references pass 500/500, solutions shuffled between rows
score near 0, and `--rk-group-by subject` / `level` break the pass rate down in the terminal summary
and in summary.json."""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pytest_rewardkit.dataset import write_dataset
from pytest_rewardkit.suite import run_suite

EXAMPLE = Path(__file__).parent.parent / "examples" / "competition_math"
WRONG = "Working it through carefully, the answer is $\\boxed{-123456}$."


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (EXAMPLE / "dataset.jsonl").read_text(encoding="utf-8").splitlines()]


def test_dataset_is_math500_with_its_fields(rows: list[dict[str, Any]]) -> None:
    assert len(rows) == 500
    assert Counter(r["subject"] for r in rows) == {
        "Algebra": 124,
        "Intermediate Algebra": 97,
        "Prealgebra": 82,
        "Number Theory": 62,
        "Precalculus": 56,
        "Geometry": 41,
        "Counting & Probability": 38,
    }
    assert {r["level"] for r in rows} == {1, 2, 3, 4, 5}
    for row in rows:
        assert row["id"] == row["unique_id"]
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
        assert "\\boxed" in row["messages"][1]["content"] and row["ground_truth"]


def test_prepare_data_builds_rows_from_a_math500_line() -> None:
    spec = importlib.util.spec_from_file_location("competition_math_prepare_data", EXAMPLE / "prepare_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    source = {
        "problem": "What is $1+1$?",
        "solution": "It is $\\boxed{2}$.",
        "answer": "2",
        "subject": "Prealgebra",
        "level": 1,
        "unique_id": "test/prealgebra/1.json",
    }
    assert module.math500_rows([json.dumps(source), ""]) == [
        {
            "id": "test/prealgebra/1.json",
            "messages": [
                {"role": "user", "content": "What is $1+1$?"},
                {"role": "assistant", "content": "It is $\\boxed{2}$."},
            ],
            "ground_truth": "2",
            "subject": "Prealgebra",
            "level": 1,
            "unique_id": "test/prealgebra/1.json",
        }
    ]


def test_config_asks_for_step_by_step_reasoning_and_a_boxed_answer() -> None:
    text = (EXAMPLE / "rewardkit.yaml").read_text(encoding="utf-8")
    assert "step by step" in text and "\\boxed{}" in text


def test_references_pass_500_of_500() -> None:
    outcomes = run_suite(EXAMPLE)
    assert len(outcomes) == 500
    assert [o.row_id for o in outcomes if not o.passed] == []


def test_solutions_shuffled_between_rows_score_near_zero(rows: list[dict[str, Any]], tmp_path: Path) -> None:
    # Each row gets the solution of the row 250 places on: a fixed derangement across subjects.
    shuffled = [
        {**row, "messages": [row["messages"][0], rows[(i + 250) % len(rows)]["messages"][1]]}
        for i, row in enumerate(rows)
    ]
    write_dataset(tmp_path / "shuffled.jsonl", shuffled)
    outcomes = run_suite(EXAMPLE, dataset=tmp_path / "shuffled.jsonl")
    assert len(outcomes) == 500
    assert [o.error for o in outcomes if o.error] == []
    passed = [o.row_id for o in outcomes if o.passed]
    # Only rows whose answers happen to coincide (a '2' for a '2') may pass.
    for row_id in passed:
        i = next(i for i, r in enumerate(rows) if r["id"] == row_id)
        assert rows[i]["ground_truth"].strip("$ ") == rows[(i + 250) % 500]["ground_truth"].strip("$ ")
    assert len(passed) / 500 < 0.03


def test_group_by_subject_and_level_in_terminal_summary_and_summary_json(
    rows: list[dict[str, Any]], quiet_pytester: pytest.Pytester, tmp_path: Path
) -> None:
    sample = rows[:60]
    # The first two Algebra rows answer wrongly, so the groups' rates differ.
    wrong_ids = [r["id"] for r in sample if r["subject"] == "Algebra"][:2]
    suite_rows = [
        {**r, "messages": [r["messages"][0], {"role": "assistant", "content": WRONG}]} if r["id"] in wrong_ids else r
        for r in sample
    ]
    suite = quiet_pytester.path / "competition_math"
    suite.mkdir()
    (suite / "rewardkit.yaml").write_text((EXAMPLE / "rewardkit.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    write_dataset(suite / "dataset.jsonl", suite_rows)
    out = tmp_path / "results"

    result = quiet_pytester.runpytest(
        str(suite),
        "--rk-group-by",
        "subject",
        "--rk-group-by",
        "level",
        "--rk-output",
        str(out),
        "-p",
        "no:cacheprovider",
    )

    result.assert_outcomes(passed=58, failed=2)
    expected: dict[str, dict[str, tuple[int, int]]] = {"level": {}, "subject": {}}  # printed in this order
    for field, groups in expected.items():
        for value in sorted({str(r[field]) for r in sample}):
            members = [r for r in sample if str(r[field]) == value]
            groups[value] = (sum(r["id"] not in wrong_ids for r in members), len(members))
    assert expected["subject"]["Algebra"][0] == expected["subject"]["Algebra"][1] - 2

    lines = ["*rewardkit summary*", "*rows 60 *passed 58 *failed 2 *"]
    for field, groups in expected.items():
        lines.append(f"  by {field}:")
        lines += [f"    {value} *{ok:>5}/{total:<5}*{ok / total:.1%}" for value, (ok, total) in groups.items()]
    result.stdout.fnmatch_lines(lines)

    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))["summaries"][0]
    assert summary["rows"] == 60 and summary["passed"] == 58
    assert {
        field: {value: (fig["passed"], fig["rows"]) for value, fig in groups.items()}
        for field, groups in summary["by_group"].items()
    } == expected
    assert summary["by_group"]["subject"]["Algebra"]["pass_rate"] == pytest.approx(
        expected["subject"]["Algebra"][0] / expected["subject"]["Algebra"][1]
    )
