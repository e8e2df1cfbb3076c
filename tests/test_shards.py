"""--rk-shard i/n and `python -m pytest_rewardkit merge`: shards merged equal one run."""

from __future__ import annotations

import collections
import json
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


def read(directory: Path) -> tuple[dict[str, Any], list[str]]:
    summary = json.loads((directory / "summary.json").read_text(encoding="utf-8"))
    outcomes = sorted((directory / "outcomes.jsonl").read_text(encoding="utf-8").splitlines())
    return summary, outcomes


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
    summary, _ = read(merged)
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
