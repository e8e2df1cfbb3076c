"""--rk-baseline: row changes, McNemar and the paired bootstrap, and --rk-max-regressions as a gate."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from test_html_report import embedded
from test_report import outcome

from pytest_rewardkit.baseline import compare, mcnemar_exact, paired_bootstrap_ci, regression_reasons

if TYPE_CHECKING:
    from conftest import ChatRow, MakeSuite


def binomial_two_sided(b: int, c: int) -> float:
    n = b + c
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n)


@pytest.mark.parametrize(("b", "c"), [(10, 2), (2, 10), (5, 5), (0, 6), (1, 0), (40, 22)])
def test_mcnemar_is_the_exact_binomial_test_on_discordant_pairs(b: int, c: int) -> None:
    assert mcnemar_exact(b, c) == pytest.approx(binomial_two_sided(b, c))


def test_mcnemar_known_value_and_large_counts() -> None:
    assert mcnemar_exact(10, 2) == pytest.approx(0.03857, abs=1e-5)
    assert mcnemar_exact(0, 0) == 1.0
    assert 0 < mcnemar_exact(700, 600) < 0.01  # no float underflow past 1,074 pairs


def test_paired_bootstrap_is_seeded_and_covers_the_mean() -> None:
    deltas = [0.0] * 80 + [-1.0] * 15 + [1.0] * 5
    low, high = paired_bootstrap_ci(deltas) or (0.0, 0.0)
    assert paired_bootstrap_ci(deltas) == (low, high)
    assert low < -0.1 < high < 0
    assert paired_bootstrap_ci([]) is None


def rows(flags: str, model: str = "dataset") -> list[Any]:
    return [outcome(f"r{i:03d}", [1.0 if f == "1" else 0.0], model=model) for i, f in enumerate(flags)]


def test_regressions_are_counted_row_by_row_and_a_clear_drop_is_significant() -> None:
    before = rows("1" * 40)
    after = rows("0" * 12 + "1" * 28)
    (c,) = compare(after, before, "base")
    assert (c.paired, c.regressions, c.improvements) == (40, 12, 0)
    assert c.rows["r000"].change == "regressed" and c.rows["r039"].change == "same"
    assert c.rows["r000"].delta == -1.0
    assert c.significant_regression and not c.significant_improvement
    assert c.reward_delta == pytest.approx(-0.3)
    assert regression_reasons([c], 11) == [
        f"math/dataset regressed against base: 12 rows pass->fail > max 11 (McNemar p={c.mcnemar_p:.3g})"
    ]
    assert regression_reasons([c], 12) == []


def test_noise_is_not_a_regression() -> None:
    before = rows("1100" * 10)
    after = rows("0110" * 10)  # 10 rows pass->fail, 10 fail->pass: same pass rate
    (c,) = compare(after, before, "base")
    assert (c.regressions, c.improvements) == (10, 10)
    assert not c.significant_regression and not c.significant_improvement
    assert regression_reasons([c], 0) == []


def test_two_models_on_one_dataset_compare_as_an_a_b_test() -> None:
    (c,) = compare(rows("1110", model="b"), rows("1111", model="a"), "run-a")
    assert (c.model, c.baseline_model, c.regressions) == ("b", "a", 1)
    assert c.lines()[:2] == ["  vs baseline run-a [a]", "  4 paired rows: 1 pass->fail, 0 fail->pass (McNemar p=1)"]


def test_new_and_missing_rows_are_counted_apart() -> None:
    (c,) = compare([*rows("11"), outcome("extra", [1.0])], rows("111"), "base")
    assert (c.paired, c.new_rows, c.missing_rows) == (2, 1, 1)


def run_suite(pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow, answers: str, *args: str) -> Any:
    make_suite([chat_row(f"q{i:02d}", answer, "1") for i, answer in enumerate(answers)])
    return pytester.runpytest(*args)


@pytest.mark.parametrize("workers", [[], ["-n", "2"]])
def test_a_regression_is_detected_and_gated_and_noise_is_not(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow, workers: list[str]
) -> None:
    run = pytester.runpytest_subprocess if workers else pytester.runpytest
    run_suite(pytester, make_suite, chat_row, "1" * 30 + "2" * 10, "--rk-output", "base")
    base = str(pytester.path / "base" / "summary.json")
    gate = ("--rk-baseline", base, "--rk-max-regressions", "2", *workers)
    # 12 of the 30 passing rows now fail: a regression, gated.
    run_suite(pytester, make_suite, chat_row, "2" * 12 + "1" * 18 + "2" * 10)
    result = run(*gate, "--rk-output", "worse", "--rk-html", "worse.html")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "  vs baseline *summary.json",
            "  40 paired rows: 12 pass->fail, 0 fail->pass (McNemar p=0.000488)",
            "  mean reward -0.300 (95% CI * to *): significant regression",
            "  regressed: q00, q01, q02, q03, q04, q05, q06, q07, ... (12 in all)",
            "rewardkit gate: FAILED (suite/dataset regressed against *: 12 rows pass->fail > max 2*) -> exit 1",
        ]
    )
    data = embedded((pytester.path / "worse.html").read_text(encoding="utf-8"))
    assert data["baseline"] == base
    assert data["summaries"][0]["comparison"]["regressions"] == 12
    assert [r["change"] for r in data["rows"]].count("regressed") == 12
    # 3 rows flip each way: noise, not flagged, and the gate passes though rows fail.
    run_suite(pytester, make_suite, chat_row, "2" * 3 + "1" * 27 + "1" * 3 + "2" * 7)
    result = run(*gate, "--rk-output", "noisy")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["  mean reward +0.000 (95% CI * to *): no significant change", "*gate: PASSED*"])


def test_a_baseline_that_is_not_a_run_is_a_usage_error(quiet_pytester: pytest.Pytester) -> None:
    result = quiet_pytester.runpytest("--rk-baseline", "nowhere")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--rk-baseline: " in result.stderr.str() and "no such file or results folder" in result.stderr.str()
    result = quiet_pytester.runpytest("--rk-max-regressions", "1")
    assert "--rk-max-regressions needs --rk-baseline" in result.stderr.str()


def test_results_record_every_row_outcome_for_a_later_comparison(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    run_suite(pytester, make_suite, chat_row, "12", "--rk-output", "out")
    records = [json.loads(line) for line in (Path(pytester.path) / "out" / "outcomes.jsonl").read_text().splitlines()]
    assert [(r["version"], r["row_id"], r["passed"]) for r in records] == [(2, "q00", True), (2, "q01", False)]
