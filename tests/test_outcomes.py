"""outcomes.jsonl, the one per-row record: results.jsonl and summary.json derive from it, errors are
typed, and a record of a version this package cannot read is refused by name."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_rewardkit.outcomes import (
    OUTCOMES_VERSION,
    OutcomesError,
    derive_results,
    encode,
    read_outcomes,
    results_records,
)
from pytest_rewardkit.report import RunFacts, annotate, summarize
from pytest_rewardkit.testing import FakeChatServer, Fault

if TYPE_CHECKING:
    from conftest import ChatRow, MakeSuite

ROOT = Path(__file__).resolve().parent.parent
MATH = (
    str(ROOT / "examples" / "math"),
    *("--rk-model", "gpt3-gsm8k-solutions", "--rk-cassette-dir", str(ROOT / "cassettes"), "-p", "no:cacheprovider"),
)


def rederived(folder: Path) -> None:
    """results.jsonl and summary.json's figures, computed again from outcomes.jsonl alone (and the
    run's facts), are what the run wrote."""
    outcomes = read_outcomes(folder)
    written = (folder / "results.jsonl").read_text(encoding="utf-8")
    assert derive_results(outcomes) == written
    # The writer encodes what the records share once; the bytes are still those of each record dumped whole.
    assert b"".join(encode(r) + b"\n" for o in outcomes for r in results_records(o)).decode() == written
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    facts = RunFacts.model_validate(summary["facts"])
    figures = annotate(summarize(outcomes, summary["facts"]["k"]), facts)
    assert [s.model_dump(mode="json") for s in figures] == summary["summaries"]


def records(folder: Path, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / name).read_text(encoding="utf-8").split("\n") if line]


def test_results_and_summary_derive_from_outcomes_alone(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    # A line separator and a script in a response: JSON leaves U+2028 unescaped, so a reader that
    # splits at every line boundary (str.splitlines) would cut the record in two.
    responses = ["1", "0", "x", "0.5\u2028<script>alert(1)</script>", "1"]
    make_suite([chat_row(f"q{i}", r) for i, r in enumerate(responses)], reward="rk_rewards:graded", threshold=0.5)
    pytester.runpytest("--rk-output", "out", "--rk-group-by", "level")
    rederived(pytester.path / "out")
    assert [r["version"] for r in records(pytester.path / "out", "outcomes.jsonl")] == [OUTCOMES_VERSION] * 5


def test_replayed_variants_with_their_cost_derive_from_outcomes_alone(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*MATH, "--rk-n", "4", "--rk-limit", "30", "--rk-k", "1,2", "--rk-output", "out")
    assert result.ret in (0, 1)
    rederived(pytester.path / "out")
    assert all(line["stats"] is not None for line in records(pytester.path / "out", "results.jsonl"))


def test_errors_carry_their_type_in_outcomes_and_results(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    rows = [chat_row("raises", "x"), chat_row("no-answer", None), chat_row("fine", "1")]
    make_suite(rows, reward="rk_rewards:graded", bad_lines={1: "{not json"})
    make_suite([chat_row("refused", "1")], folder="invalid", reward="rk_rewards:invalid")
    pytester.runpytest("--rk-output", "out")
    out = pytester.path / "out"
    rows_by_id = {r["row_id"]: r for r in records(out, "outcomes.jsonl")}
    types = {row_id: (r["error"] or {}).get("type") for row_id, r in rows_by_id.items()}
    assert types == {
        "raises": "ValueError",  # what the reward raised
        "no-answer": "RowError",
        "line2": "MalformedRow",
        "fine": None,
        "refused": "InvalidScore",
    }
    raised = rows_by_id["raises"]
    assert raised["error"]["message"] == "1 of 1 variant(s) could not be scored"
    assert raised["variants"][0]["error"]["type"] == "ValueError"
    assert "reward 'graded' raised ValueError" in raised["variants"][0]["error"]["message"]
    results = {r["row_id"]: r for r in records(out, "results.jsonl")}
    assert results["raises"]["error"]["type"] == results["raises"]["row_error"]["type"] == "ValueError"
    assert results["no-answer"]["error"] == results["no-answer"]["row_error"] == rows_by_id["no-answer"]["error"]
    assert results["fine"]["error"] is None and results["fine"]["row_error"] is None


def test_a_request_missing_from_the_cassette_is_a_replay_miss(pytester: pytest.Pytester) -> None:
    # Four responses are recorded per row; eight cannot be replayed, and record mode none may not add them.
    result = pytester.runpytest(*MATH, "--rk-n", "8", "--rk-limit", "2", "--rk-output", "out")
    result.assert_outcomes(errors=2)
    for record in records(pytester.path / "out", "outcomes.jsonl"):
        assert record["error"]["type"] == "ReplayMiss"
        assert "4 of 8 variants recorded" in record["error"]["message"]


def test_an_outcome_record_of_an_unknown_version_is_refused_naming_the_file_and_version(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    make_suite([chat_row("a", "1", "1"), chat_row("b", "2", "1")])
    pytester.runpytest("--rk-output", "out")
    path = pytester.path / "out" / "outcomes.jsonl"
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[1] = lines[1].replace(f'"version":{OUTCOMES_VERSION}', '"version":99')
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(
        OutcomesError, match=r"outcomes.jsonl:2: outcome record version 99; this .* reads versions 1 and 2"
    ):
        read_outcomes(pytester.path / "out")
    # --rk-baseline reads the same records: one usage error naming the file, not a traceback.
    result = pytester.runpytest("--rk-baseline", "out")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "outcomes.jsonl:2: outcome record version 99" in result.stderr.str()


def test_version_1_records_with_plain_string_errors_are_still_read(tmp_path: Path) -> None:
    """A baseline folder written before errors were typed still compares: its errors read as RowError."""
    record = {
        "version": 1,
        **{"suite": "s", "dataset": "s/dataset.jsonl", "row_id": "r1", "model": "m", "parameters": {"n": 1}},
        **{"prompt": [], "threshold": 1.0, "aggregate": "mean", "reward": None, "passed": False},
        "variants": [{"index": 0, "response": None, "result": None, "error": "reward 'x' raised KeyError: 'k'"}],
        "error": "1 of 1 variant(s) could not be scored",
    }
    (tmp_path / "outcomes.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
    (outcome,) = read_outcomes(tmp_path)
    assert outcome.error is not None and (outcome.error.type, outcome.error.message) == (
        "RowError",
        "1 of 1 variant(s) could not be scored",
    )
    assert outcome.variants[0].error is not None and outcome.variants[0].error.type == "RowError"
    assert outcome.status == "error"


def test_a_failed_model_call_is_typed_by_the_generation_error(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    make_suite([chat_row("r0", None, "1")], models={"fake": "acme/fake-model-v1"})
    server = FakeChatServer(table={"question r0": ["1"]})
    base_url = server.start_in_thread()
    try:
        server.script(*[Fault.status(503, retry_after=0)] * 10)
        pytester.runpytest(
            *("--rk-model", "fake", "--rk-base-url", base_url, "--record-mode=new_episodes"),
            *("--rk-cassette-dir", "cassettes", "--rk-output", "out"),
        )
    finally:
        server.stop()
    (record,) = records(pytester.path / "out", "outcomes.jsonl")
    assert record["error"]["type"] == "ServerError"
    assert "answered 503" in record["error"]["message"]


def test_a_line_reads_back_as_the_record_it_encodes_whatever_json_python_writes() -> None:
    record = {"big": 10**30, "nan": float("nan"), "tiny": 1e-7, "text": "é\u2028\x00</", "none": None, "list": [1.5]}
    line = encode(record)
    assert b"\n" not in line
    back = json.loads(line)
    assert math.isnan(back.pop("nan"))
    assert back == {k: v for k, v in record.items() if k != "nan"}
