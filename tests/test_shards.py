"""--rk-shard i/n and `python -m pytest_rewardkit merge`: shards merged equal one run."""

from __future__ import annotations

import collections
import contextlib
import io
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_rewardkit.__main__ import main
from pytest_rewardkit.config import ConfigError, parse_options
from pytest_rewardkit.shards import ShardSpec, shard_of

if TYPE_CHECKING:
    from conftest import ChatRow, MakeSuite

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_MATH = ROOT / "examples" / "math"
MATH_RUN = (
    str(EXAMPLES_MATH),
    *("--rk-model", "gpt3-gsm8k-solutions", "--rk-n", "4", "--rk-limit", "400"),
    *("--rk-cassette-dir", str(ROOT / "cassettes"), "--rk-group-by", "nonexistent", "-p", "no:cacheprovider"),
)


def test_shard_spec_parses_i_of_n_and_refuses_the_rest() -> None:
    assert ShardSpec.parse("2/4") == ShardSpec(index=2, count=4)
    assert str(ShardSpec.parse(" 1 / 1 ")) == "1/1"
    for bad in ("0/4", "5/4", "2", "a/b", "-1/3"):
        with pytest.raises(ValueError, match="expected i/n with 1 <= i <= n"):
            ShardSpec.parse(bad)
    with pytest.raises(ConfigError, match=r"--rk-shard: expected i/n"):
        parse_options({"shard": "3/2"})


def test_every_row_is_in_exactly_one_shard_and_shards_are_balanced() -> None:
    ids = [f"gsm8k-test-{i:04d}" for i in range(1319)]
    counts = collections.Counter(shard_of(row_id, 4) for row_id in ids)
    assert sorted(counts) == [0, 1, 2, 3]
    assert max(counts.values()) - min(counts.values()) <= 60  # 1,319 / 4 = 330 each, +-2 sd
    specs = [ShardSpec(index=i, count=4) for i in range(1, 5)]
    assert all(sum(spec.holds(row_id) for spec in specs) == 1 for row_id in ids)


def test_a_row_keeps_its_shard_when_rows_are_inserted_before_it() -> None:
    before = {row_id: shard_of(row_id, 3) for row_id in ("a", "b", "c", "d")}
    after = {row_id: shard_of(row_id, 3) for row_id in ("new-0", "a", "new-1", "b", "c", "d")}
    assert {k: after[k] for k in before} == before


def test_shard_selects_a_share_of_every_suite_rows_at_collection(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    make_suite([chat_row(f"q{i}", "1", "1") for i in range(12)])
    make_suite([chat_row(f"p{i}", "1", "1") for i in range(5)], folder="other")
    seen: list[str] = []
    for i in (1, 2, 3):
        result = pytester.runpytest("--co", "-q", "--rk-shard", f"{i}/3")
        seen += [line.split("::")[1] for line in result.stdout.lines if "::" in line]
    assert sorted(seen) == sorted([f"q{i}" for i in range(12)] + [f"p{i}" for i in range(5)])


def read(directory: Path) -> tuple[dict[str, Any], bytes, bytes]:
    """summary.json, and outcomes.jsonl and results.jsonl byte for byte."""
    summary = json.loads((directory / "summary.json").read_text(encoding="utf-8"))
    return summary, (directory / "outcomes.jsonl").read_bytes(), (directory / "results.jsonl").read_bytes()


@pytest.mark.parametrize(("min_pass_rate", "status"), [("0.1", 0), ("0.2", 1)])
def test_four_shards_of_examples_math_merged_equal_one_run(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str], min_pass_rate: str, status: int
) -> None:
    gate = ("--rk-min-pass-rate", min_pass_rate)
    out = pytester.path  # absolute: the rootdir of a run of examples/math is this repository
    single = pytester.runpytest(*MATH_RUN, *gate, "--rk-output", out / "single", "--rk-html", out / "single.html")
    assert single.ret == status
    for i in range(1, 5):
        shard = pytester.runpytest(*MATH_RUN, "--rk-shard", f"{i}/4", "--rk-output", out / f"shard{i}")
        assert shard.ret in (0, 1)
    folders = [str(pytester.path / f"shard{i}") for i in range(1, 5)]
    merged = pytester.path / "merged"
    code = main(["merge", *folders, "--output", str(merged), "--html", str(pytester.path / "merged.html")])
    assert code == 1  # no gate given to merge: pytest's status, some rows failed
    capsys.readouterr()
    html = str(pytester.path / "merged.html")
    code = main(["merge", *folders, "--output", str(merged), "--html", html, "--min-pass-rate", min_pass_rate])
    printed = capsys.readouterr().out
    assert code == single.ret == status
    assert read(merged) == read(pytester.path / "single")
    assert (pytester.path / "merged.html").read_bytes() == (pytester.path / "single.html").read_bytes()
    summary, *_ = read(merged)
    assert summary["summaries"][0]["rows"] == summary["summaries"][0]["selected"] == 400
    assert summary["gate"]["line"] in printed
    # The terminal summary merge prints is the run's, line for line.
    block = single.stdout.str().split("rewardkit summary", 1)[1]
    for line in printed.splitlines()[:6]:
        assert line in block


def test_merge_refuses_a_folder_given_twice_and_a_folder_that_is_not_a_run(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow, capsys: pytest.CaptureFixture[str]
) -> None:
    make_suite([chat_row(f"q{i}", "1", "1") for i in range(6)])
    pytester.runpytest("--rk-shard", "1/2", "--rk-output", "one")
    one = str(pytester.path / "one")
    assert main(["merge", one, one, "--output", str(pytester.path / "m")]) == 4
    assert "is in both" in capsys.readouterr().err
    assert main(["merge", str(pytester.path), "--output", str(pytester.path / "m")]) == 4
    assert "no summary.json: did that run finish?" in capsys.readouterr().err
    assert main(["merge", one, "--max-error-rate", "0.1"]) == 4
    assert "--rk-max-error-rate is the gate's tolerance" in capsys.readouterr().err


def test_a_shard_that_holds_no_row_of_a_suite_still_writes_its_results(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    make_suite([chat_row("only", "1", "1")])
    empty = next(i for i in (1, 2) if not ShardSpec(index=i, count=2).holds("only"))
    pytester.runpytest("--rk-shard", f"{empty}/2", "--rk-output", "out")
    summary = json.loads((pytester.path / "out" / "summary.json").read_text())
    assert summary["summaries"] == [] and (pytester.path / "out" / "outcomes.jsonl").read_text() == ""


def run_and_merge(
    pytester: pytest.Pytester, shards: int, *args: str, merge_args: tuple[str, ...] = ()
) -> tuple[pytest.RunResult, int, str]:
    """One run over every row (into `single`), the same run in `shards` shards merged (into
    `merged`): the single run's result, merge's exit status and what merge printed."""
    single = pytester.runpytest(*args, "--rk-output", "single")
    for i in range(1, shards + 1):
        pytester.runpytest(*args, "--rk-shard", f"{i}/{shards}", "--rk-output", f"shard{i}")
    folders = [str(pytester.path / f"shard{i}") for i in range(1, shards + 1)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["merge", *folders, "--output", str(pytester.path / "merged"), *merge_args])
    return single, code, out.getvalue()


def same_files(pytester: pytest.Pytester) -> None:
    for name in ("summary.json", "outcomes.jsonl", "results.jsonl"):
        merged = (pytester.path / "merged" / name).read_bytes()
        assert merged == (pytester.path / "single" / name).read_bytes(), name


GRADED = ["1"] * 9 + ["0"] * 2 + ["x"]  # 9 pass, 2 fail, 1 errored (the reward cannot read "x")


@pytest.mark.parametrize(
    ("gate", "args", "shards", "status", "verdict"),
    [
        ({"min_pass_rate": 0.5, "max_error_rate": 0.1}, (), 2, 0, "rewardkit gate: PASSED (every pass rate >= 50.0%*"),
        ({"min_pass_rate": 0.9}, (), 3, 1, "rewardkit gate: FAILED (min pass rate 90.0%; below: suite/dataset 75.0%*"),
        (
            {"min_pass_rate": 0.5},
            (),
            4,
            1,
            "rewardkit gate: FAILED (errored: suite/dataset 1 of 12 rows (8.3%) > max 0.0%)*",
        ),
        (
            {"min_pass_rate": 0.7, "on": "lower_bound"},
            (),
            4,
            1,
            "rewardkit gate: FAILED (below: suite/dataset 95% CI 46.8%-91.1% (pass rate 75.0%) not all >= 70.0%*",
        ),
        (None, ("--rk-min-pass-rate", "0.5", "--rk-max-error-rate", "0.1"), 3, 0, "rewardkit gate: PASSED*"),
        (None, ("--rk-min-pass-rate", "0.8", "--rk-max-error-rate", "0.1"), 2, 1, "rewardkit gate: FAILED*"),
    ],
    ids=["yaml-gate-met", "yaml-gate-missed", "errored-row", "yaml-lower-bound", "shards-cli-met", "shards-cli-missed"],
)
def test_shards_merged_without_gate_options_are_judged_as_the_single_run(
    pytester: pytest.Pytester,
    make_suite: MakeSuite,
    chat_row: ChatRow,
    gate: dict[str, Any] | None,
    args: tuple[str, ...],
    shards: int,
    status: int,
    verdict: str,
) -> None:
    """The gates the shards ran with (each suite's YAML `gate:`, the --rk-* gate options) travel in
    their summary.json; merge applies them exactly as one run over every row does."""
    rows = [chat_row(f"q{i:02d}", response) for i, response in enumerate(GRADED)]
    make_suite(rows, reward="rk_rewards:graded", **({"gate": gate} if gate else {}))
    single, code, printed = run_and_merge(pytester, shards, *args)
    assert single.ret == code == status
    single.stdout.fnmatch_lines([verdict])
    line = json.loads((pytester.path / "single" / "summary.json").read_text())["gate"]["line"]
    assert line in printed.splitlines() and line in single.stdout.lines
    same_files(pytester)


def test_a_gated_and_an_ungated_suite_merged_keep_the_ungated_rows_failure(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    make_suite([chat_row(f"q{i}", "1", "1") for i in range(6)], gate={"min_pass_rate": 0.5})
    make_suite([chat_row(f"p{i}", "1", "2" if i == 3 else "1") for i in range(6)], folder="ungated")
    single, code, printed = run_and_merge(pytester, 3)
    assert single.ret == code == 1
    single.stdout.fnmatch_lines(["rewardkit gate: PASSED (*); exit 1: low or errored rows of suites without a gate*"])
    assert single.stdout.lines[-1] in printed.splitlines()
    same_files(pytester)


def test_an_ordinary_failing_test_beside_a_gated_suite_is_counted_once_when_merged(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    make_suite([chat_row(f"q{i}", "1", "1") for i in range(8)], gate={"min_pass_rate": 0.5})
    pytester.makepyfile(test_unit="def test_unit():\n    assert False\n\ndef test_fine():\n    pass\n")
    single, code, printed = run_and_merge(pytester, 4)
    assert single.ret == code == 1
    single.stdout.fnmatch_lines(
        ["rewardkit gate: PASSED (*); exit 1: 1 failure outside the gate (test_unit.py::test_unit)"]
    )
    assert single.stdout.lines[-1] in printed.splitlines()
    same_files(pytester)


def test_merges_gate_options_override_the_shards_as_pytests_override_the_yaml(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [chat_row(f"q{i:02d}", response) for i, response in enumerate(GRADED)]
    make_suite(rows, reward="rk_rewards:graded", gate={"min_pass_rate": 0.9})
    _, code, printed = run_and_merge(pytester, 2, merge_args=("--min-pass-rate", "0.5", "--max-error-rate", "0.1"))
    single = pytester.runpytest("--rk-min-pass-rate", "0.5", "--rk-max-error-rate", "0.1", "--rk-output", "single")
    assert single.ret == code == 0
    assert single.stdout.lines[-1] in printed.splitlines()
    same_files(pytester)  # the merged summary records merge's options, as the single run its own
    # Shards given different gate options are not one run.
    pytester.runpytest("--rk-shard", "1/2", "--rk-output", "a", "--rk-min-pass-rate", "0.5")
    pytester.runpytest("--rk-shard", "2/2", "--rk-output", "b")
    assert main(["merge", str(pytester.path / "a"), str(pytester.path / "b"), "--output", "m"]) == 4
    err = capsys.readouterr().err
    assert "ran with gate options (none)" in err and "--rk-min-pass-rate 0.5" in err and "give the gate to merge" in err


def test_a_single_run_under_xdist_writes_the_same_files_as_merged_shards(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    rows = [chat_row(f"q{i:02d}", response) for i, response in enumerate(GRADED * 2)]
    make_suite(rows, reward="rk_rewards:graded", gate={"min_pass_rate": 0.5})
    single = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider", "--rk-output", "single")
    for i in (1, 2):  # the shards under xdist too: their verdicts reach the controller as reports
        pytester.runpytest_subprocess(
            "-n", "2", "-p", "no:cacheprovider", "--rk-shard", f"{i}/2", "--rk-output", f"shard{i}"
        )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["merge", "shard1", "shard2", "--output", str(pytester.path / "merged")])
    assert single.ret == code == 1  # 2 errored rows, no error tolerated
    same_files(pytester)


def test_shards_compared_with_a_baseline_merge_to_the_single_runs_regression_verdict(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow, capsys: pytest.CaptureFixture[str]
) -> None:
    make_suite([chat_row(f"q{i:02d}", "1", "1") for i in range(30)])
    pytester.runpytest("--rk-output", "base")
    # 12 of the 30 rows now fail: a significant regression, more than the 2 tolerated.
    make_suite([chat_row(f"q{i:02d}", "2" if i < 12 else "1", "1") for i in range(30)])
    gate = ("--rk-baseline", str(pytester.path / "base"), "--rk-max-regressions", "2")
    single, code, printed = run_and_merge(pytester, 3, *gate)
    assert single.ret == code == 1
    single.stdout.fnmatch_lines(["rewardkit gate: FAILED (suite/dataset regressed against *: 12 rows pass->fail*"])
    assert single.stdout.lines[-1] in printed.splitlines()
    assert "  30 paired rows: 12 pass->fail, 0 fail->pass (McNemar p=0.000488)" in printed
    same_files(pytester)
    # Where the shards' baseline is not, merge says so rather than judging without it.
    shutil.rmtree(pytester.path / "base")
    folders = [str(pytester.path / f"shard{i}") for i in (1, 2, 3)]
    assert main(["merge", *folders, "--output", str(pytester.path / "m")]) == 4
    assert "the shards compared with --rk-baseline" in capsys.readouterr().err
