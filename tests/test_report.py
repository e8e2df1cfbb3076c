"""Pass rate with its Wilson interval, unbiased pass@k and pass^k, the gate, and the result files."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any

import pytest

from pytest_rewardkit import EvaluateResult, Message, MetricResult
from pytest_rewardkit.evaluation import RowOutcome, VariantResult
from pytest_rewardkit.outcomes import ResultsWriter
from pytest_rewardkit.report import (
    GateSpec,
    RunFacts,
    Selection,
    annotate,
    format_summary,
    gate,
    pass_at_k,
    pass_hat_k,
    summarize,
    wilson_interval,
)

RESULT_FIELDS = {"row_id", "variant", "messages", "response", "score", "reason", "metrics", "passed", "error"}
RESULT_FIELDS |= {"model", "parameters"}


def outcome(
    row_id: str,
    scores: list[float],
    threshold: float = 1.0,
    error: str | None = None,
    suite: str = "math",
    model: str = "dataset",
) -> RowOutcome:
    """A row scored with `scores` per variant (its reward their mean), or an error row."""
    variants = [
        VariantResult(
            index=i,
            response=Message(role="assistant", content=f"answer {s}"),
            result=EvaluateResult(score=s, reason=f"scored {s}", metrics={"format": MetricResult(score=1.0)}),
            passed=s >= threshold,
        )
        for i, s in enumerate(scores)
    ]
    reward = None if error or not scores else sum(scores) / len(scores)
    return RowOutcome(
        suite=suite,
        dataset=f"{suite}/dataset.jsonl",
        row_id=row_id,
        model=model,
        parameters={"n": max(1, len(scores)), "temperature": 0.7},
        prompt=[Message(role="user", content=f"question {row_id}")],
        threshold=threshold,
        aggregate="mean",
        variants=variants,
        reward=reward,
        passed=reward is not None and reward >= threshold,
        error=error,
    )


# Newcombe (1998), "Two-sided confidence intervals for the single proportion", table I, method 3.
@pytest.mark.parametrize(
    ("successes", "total", "low", "high"),
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        (5, 10, 0.2366, 0.7634),
        (10, 10, 0.7225, 1.0),
    ],
)
def test_wilson_interval_known_values(successes: int, total: int, low: float, high: float) -> None:
    assert wilson_interval(successes, total) == pytest.approx((low, high), abs=5e-5)


def test_wilson_interval_is_symmetric_and_covers_everything_without_data() -> None:
    low, high = wilson_interval(3, 17)
    mirror_low, mirror_high = wilson_interval(14, 17)
    assert (low, high) == pytest.approx((1 - mirror_high, 1 - mirror_low))
    assert wilson_interval(0, 0) == (0.0, 1.0)


def brute_force(n: int, c: int, k: int) -> tuple[float, float]:
    """pass@k and pass^k by enumerating every k-subset of n samples, c of them correct."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(samples, k))
    return sum(map(any, subsets)) / len(subsets), sum(map(all, subsets)) / len(subsets)


@pytest.mark.parametrize("n", range(1, 8))
def test_pass_at_k_and_pass_hat_k_match_enumeration_over_subsets(n: int) -> None:
    for c in range(n + 1):
        for k in range(1, n + 1):
            at_k, hat_k = brute_force(n, c, k)
            assert pass_at_k(n, c, k) == pytest.approx(at_k), (n, c, k)
            assert pass_hat_k(n, c, k) == pytest.approx(hat_k), (n, c, k)


def test_pass_at_1_is_the_fraction_correct() -> None:
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_hat_k(10, 3, 1) == pytest.approx(0.3)


@pytest.mark.parametrize("estimator", [pass_at_k, pass_hat_k])
def test_k_above_n_is_refused(estimator: object) -> None:
    assert callable(estimator)
    with pytest.raises(ValueError, match="needs at least 5 samples, got 4"):
        estimator(4, 2, 5)


def test_summary_counts_passed_failed_and_errored_apart() -> None:
    rows = [
        outcome("a", [1.0]),
        outcome("b", [1.0]),
        outcome("c", [0.0]),
        outcome("d", [0.5], threshold=0.5),
        outcome("e", [], error="row e has no assistant turn"),
    ]
    (summary,) = summarize(rows)
    assert (summary.suite, summary.dataset, summary.model) == ("math", "math/dataset.jsonl", "dataset")
    assert (summary.rows, summary.variants, summary.passed, summary.failed, summary.errored) == (5, 4, 3, 1, 1)
    assert summary.pass_rate == pytest.approx(3 / 5)
    assert summary.pass_rate_ci95 == pytest.approx(wilson_interval(3, 5))
    assert summary.mean_reward == pytest.approx((1 + 1 + 0 + 0.5) / 4)  # the error is not a 0
    assert summary.pass_at_k == {"1": pytest.approx(3 / 5)}


def test_pass_at_k_is_estimated_per_row_then_averaged() -> None:
    rows = [outcome("a", [1, 0, 0, 0]), outcome("b", [1, 1, 1, 0])]
    (summary,) = summarize(rows, ks=[1, 2, 4])
    assert summary.pass_at_k == pytest.approx({"1": 0.5, "2": (0.5 + 1.0) / 2, "4": 1.0})
    assert summary.pass_hat_k == pytest.approx({"1": 0.5, "2": (0.0 + 0.5) / 2, "4": 0.0})


def test_default_ks_are_1_and_n() -> None:
    (summary,) = summarize([outcome("a", [1, 0, 0]), outcome("b", [1, 1, 0])])
    assert set(summary.pass_at_k) == set(summary.pass_hat_k) == {"1", "3"}


def test_an_errored_row_counts_as_no_correct_sample_in_pass_at_k() -> None:
    rows = [outcome("a", [1, 1]), outcome("b", [], error="generation failed")]
    (summary,) = summarize(rows, ks=[1])
    assert summary.pass_at_k == {"1": pytest.approx(0.5)}


def test_one_summary_per_dataset_and_model_in_any_order() -> None:
    rows = [outcome(f"r{i}", [float(i % 2)], suite=suite) for i in range(6) for suite in ("math", "code")]
    rows += [outcome("x", [1.0], model="gpt-x")]
    summaries = summarize(rows)
    assert [(s.suite, s.model, s.rows) for s in summaries] == [
        ("code", "dataset", 6),
        ("math", "dataset", 6),
        ("math", "gpt-x", 1),
    ]
    random.Random(7).shuffle(rows)
    assert summarize(rows) == summaries


def test_gate_met_when_every_pass_rate_reaches_the_minimum() -> None:
    summaries = summarize([outcome("a", [1.0]), outcome("b", [0.0]), outcome("c", [1.0], suite="code")])
    verdict = gate(summaries, GateSpec(min_pass_rate=0.5))
    assert verdict.met
    assert verdict.line == "rewardkit gate: PASSED (every pass rate >= 50.0%, error rate <= 0.0%) -> exit 0"


def test_gate_not_met_names_the_suites_below() -> None:
    summaries = summarize([outcome("a", [1.0]), outcome("b", [0.0]), outcome("c", [1.0], suite="code")])
    verdict = gate(summaries, GateSpec(min_pass_rate=0.6))
    assert not verdict.met
    assert verdict.line == "rewardkit gate: FAILED (min pass rate 60.0%; below: math/dataset 50.0%) -> exit 1"


def test_gate_with_no_rows_is_not_met() -> None:
    verdict = gate([], GateSpec(min_pass_rate=0.0))
    assert not verdict.met
    assert "no rows were evaluated" in verdict.line


def test_gate_judges_completeness_errors_and_what_failed_outside_it() -> None:
    rows = [outcome("a", [1.0]), outcome("b", [1.0]), outcome("c", [], error="cassette missing")]
    selection = Selection(suite="math", dataset="math/dataset.jsonl", model="dataset", selected=4)
    facts = RunFacts(selections=[selection], skipped={"math/math/dataset.jsonl/dataset": 1})
    summaries = annotate(summarize(rows), facts)
    assert gate(summaries, GateSpec(min_pass_rate=0.5, max_error_rate=0.4), facts).exit_status == 0
    verdict = gate(summaries, GateSpec(min_pass_rate=0.5), facts)
    assert verdict.reasons == ["errored: math/dataset 1 of 3 rows (33.3%) > max 0.0%"]
    facts.skipped = {}
    verdict = gate(annotate(summarize(rows), facts), GateSpec(min_pass_rate=0.5, max_error_rate=1), facts)
    assert verdict.reasons == ["incomplete: math/dataset 3 of 4 rows ran"]
    outside = RunFacts(outside_failures=["test_unit.py::test_unit"], outside_failure_count=1)
    verdict = gate(summarize(rows[:2]), GateSpec(min_pass_rate=1), outside)
    assert (verdict.met, verdict.exit_status) == (True, 1)
    assert verdict.line.endswith("; exit 1: 1 failure outside the gate (test_unit.py::test_unit)")


def test_a_selected_suite_none_of_whose_rows_ran_is_reported_and_fails_the_gate() -> None:
    facts = RunFacts(selections=[Selection(suite="code", dataset="code/dataset.jsonl", model="m", selected=2)])
    summaries = annotate(summarize([outcome("a", [1.0])]), facts)
    assert [(s.suite, s.rows, s.selected) for s in summaries] == [("code", 0, 2), ("math", 1, None)]
    assert "  incomplete: 0 of 2 rows ran" in format_summary(summaries)
    assert gate(summaries, GateSpec(min_pass_rate=0), facts).reasons == ["incomplete: code/m 0 of 2 rows ran"]


def test_format_summary_states_every_figure() -> None:
    text = "\n".join(format_summary(summarize([outcome("a", [1, 1]), outcome("b", [1, 0]), outcome("c", [0, 0])])))
    assert "math [dataset]  math/dataset.jsonl" in text
    assert "rows 3  variants 6  passed 1  failed 2  errored 0" in text
    assert "pass rate 33.3%  (95% CI 6.1%-79.2%)  mean reward 0.500" in text
    assert "pass@1 0.500  pass@2 0.667  |  pass^1 0.500  pass^2 0.333" in text


def test_results_file_has_one_line_per_row_and_variant_and_stays_valid_when_interrupted(tmp_path: Path) -> None:
    writer = ResultsWriter(tmp_path / "out")
    writer.write(outcome("a", [1.0, 0.0], threshold=1.0))
    writer.write(outcome("b", [], error="row b has no assistant turn"))
    # Not finished: what an interrupted run leaves behind.
    lines = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [(r["row_id"], r["variant"], r["passed"]) for r in lines] == [
        ("a", 0, True),
        ("a", 1, False),
        ("b", None, False),
    ]
    assert all(set(r) >= RESULT_FIELDS for r in lines)
    first = lines[0]
    assert first["messages"] == [{"role": "user", "content": "question a"}]
    assert first["response"] == {"role": "assistant", "content": "answer 1.0"}
    assert (first["score"], first["reason"], first["error"]) == (1.0, "scored 1.0", None)
    assert first["metrics"] == {"format": {"score": 1.0, "reason": "", "is_score_valid": True}}
    assert (first["model"], first["parameters"]) == ("dataset", None)  # scored as stored: nothing sampled
    assert lines[2]["error"] == {"type": "RowError", "message": "row b has no assistant turn"}
    assert not (tmp_path / "out" / "summary.json").exists()


def test_finish_writes_the_summary_json(tmp_path: Path) -> None:
    writer = ResultsWriter(tmp_path)
    rows = [outcome("a", [1.0]), outcome("b", [0.0])]
    for row in rows:
        writer.write(row)
    summaries = summarize(rows)
    writer.finish(summaries, gate(summaries, GateSpec(min_pass_rate=0.9)))
    payload = json.loads((tmp_path / "summary.json").read_text())
    assert payload["summaries"] == [s.model_dump(mode="json") for s in summaries]
    assert payload["summaries"][0]["pass_rate"] == 0.5
    assert payload["gate"]["met"] is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outcomes.jsonl", "results.jsonl", "summary.json"]


def test_junit_xml_carries_each_rows_status_score_reason_variant_scores_and_error_type(
    pytester: pytest.Pytester, make_suite: Any, chat_row: Any
) -> None:
    import xml.etree.ElementTree as ET

    make_suite([chat_row("ok", "1", "1"), chat_row("bad", "2", "3"), chat_row("none", None, "3")])
    pytester.runpytest("suite", "--junitxml", "junit.xml", "--rk-output", "")
    cases = {c.get("name"): c for c in ET.parse(pytester.path / "junit.xml").getroot().iter("testcase")}
    props = {name: {p.get("name"): p.get("value") for p in c.iter("property")} for name, c in cases.items()}
    assert props["ok"]["rewardkit.status"] == "pass" and props["ok"]["rewardkit.score"] == "1"
    assert props["bad"]["rewardkit.status"] == "fail" and props["bad"]["rewardkit.variant_scores"] == "0"
    assert props["bad"]["rewardkit.reason"] == "expected 3, got 2"
    assert "rewardkit.error_type" not in props["bad"]
    assert props["none"]["rewardkit.status"] == "error" and props["none"]["rewardkit.error_type"] == "RowError"
    assert props["none"]["rewardkit.reason"].startswith("row none has no assistant turn to score")
    assert "rewardkit" not in props["bad"]  # the whole outcome never reaches the XML


def test_junit_xml_of_a_replayed_run_carries_tokens_score_reason_variant_scores_and_error_type(
    pytester: pytest.Pytester, make_suite: Any, chat_row: Any
) -> None:
    import xml.etree.ElementTree as ET

    from pytest_rewardkit.testing import FakeChatServer

    make_suite([chat_row(f"r{i}", None, ground_truth="7") for i in range(2)], models={"fake": "acme/fake"})
    table = {f"question r{i}": ["7", "the answer is probably eight"] for i in range(2)}
    args = ["suite", "--rk-model", "fake", "--rk-n", "2", "--rk-output", ""]
    with FakeChatServer(table=table).running() as base_url:
        pytester.runpytest(*args, "--rk-base-url", base_url, "--record-mode=new_episodes").assert_outcomes(failed=2)
    # Replayed offline (the server is gone); r1's cassette is lost, so r1 errors.
    (pytester.path / "cassettes" / "suite" / "fake" / "r1.yaml").unlink()
    pytester.runpytest(*args, "--rk-base-url", base_url, "--junitxml", "junit.xml")
    cases = {c.get("name"): c for c in ET.parse(pytester.path / "junit.xml").getroot().iter("testcase")}
    props = {name: {p.get("name"): p.get("value") for p in c.iter("property")} for name, c in cases.items()}
    replayed, errored = props["r0"], props["r1"]
    # The fake server counts words: the prompt "question r0" is 2 tokens (split over the 2 choices),
    # the completions "7" and "the answer is probably eight" 1 + 5.
    assert (replayed["rewardkit.prompt_tokens"], replayed["rewardkit.completion_tokens"]) == ("2", "6")
    assert (replayed["rewardkit.status"], replayed["rewardkit.score"]) == ("fail", "0.5")
    assert replayed["rewardkit.variant_scores"] == "1,0"
    assert replayed["rewardkit.reason"] == "expected 7, got the answer is probably eight"
    assert "rewardkit.error_type" not in replayed
    assert errored["rewardkit.status"] == "error"
    assert errored["rewardkit.error_type"] == "ReplayMiss"
    assert errored["rewardkit.reason"].startswith("no cassette ") and "r1.yaml" in errored["rewardkit.reason"]


def test_the_summary_table_fits_80_columns_and_is_coloured_where_the_terminal_has_colour(
    pytester: pytest.Pytester, make_suite: Any, chat_row: Any
) -> None:
    from pytest_rewardkit.report import terminal_lines

    make_suite([chat_row(f"q{i}", "1" if i % 3 else "2", "1", level=str(i % 2)) for i in range(9)])
    plain = pytester.runpytest("--rk-k", "1", "--rk-group-by", "level", "--rk-output", "", "--color=no")
    block = plain.stdout.str().split("rewardkit summary", 1)[1].splitlines()[1:8]
    assert block and all(len(line) <= 80 for line in block), block
    assert "\x1b[" not in plain.stdout.str()
    coloured = pytester.runpytest("--rk-output", "", "--color=yes")
    assert "\x1b[1m  pass rate 66.7%" in coloured.stdout.str()
    lines = ["  rows 3  variants 3  passed 1  failed 1  errored 1", "  1 response hit max_tokens", "  regressed: a"]
    assert [markup for _, markup in terminal_lines(lines)] == [{"yellow": True}, {"yellow": True}, {"red": True}]


def test_the_summary_says_what_pass_rate_means_with_several_variants() -> None:
    rows = [outcome("a", [1, 1, 1, 1]), outcome("b", [1, 0, 1, 1])]
    text = "\n".join(format_summary(summarize(rows, ks=[1, 4])))
    assert "  a row passes when the mean of its 4 variants' rewards >= 1:\n" in text
    assert "  every variant must pass, so the pass rate is pass^4, not pass@1\n" in text
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "pass rate 50.0%" in text and "pass^4 0.500" in text and "pass@1 0.875" in text
    single = "\n".join(format_summary(summarize([outcome("a", [1.0])])))
    assert "a row passes" not in single


def test_results_carry_ground_truth_or_its_hash_row_verdict_and_sampling_only_when_generated(tmp_path: Path) -> None:
    writer = ResultsWriter(tmp_path)
    small = outcome("a", [1.0, 0.0], model="qwen3").model_copy(update={"ground_truth": "42"})
    large = outcome("b", [1.0]).model_copy(update={"ground_truth": {"tests": "assert f(1) == 2\n" * 500}})
    writer.write(small)
    writer.write(large)
    lines = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [(r["row_id"], r["ground_truth"], r["row_reward"], r["row_passed"]) for r in lines[:2]] == [
        ("a", "42", 0.5, False),
        ("a", "42", 0.5, False),
    ]
    assert lines[0]["parameters"] == {"n": 2, "temperature": 0.7}
    digest = lines[2]["ground_truth"]
    assert set(digest) == {"sha256", "chars"} and digest["chars"] > 2000
    assert (lines[2]["parameters"], lines[2]["row_passed"]) == (None, True)
