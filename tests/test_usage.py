"""Tokens, finish reasons, latency and cost: from the cassette's recorded exchanges to the summary."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from test_report import outcome

from pytest_rewardkit.config import Price
from pytest_rewardkit.models import ResponseStats
from pytest_rewardkit.recording import Interaction, RowCassette, _apportion
from pytest_rewardkit.report import usage_totals

if TYPE_CHECKING:
    from conftest import ChatRow, MakeSuite

from pytest_rewardkit.testing import FakeChatServer


def exchange(choices: list[tuple[str, str]], usage: dict[str, int] | None, latency: float | None = 0.8) -> Interaction:
    body: dict[str, Any] = {
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
            for i, (text, finish) in enumerate(choices)
        ]
    }
    if usage is not None:
        body["usage"] = usage
    return Interaction("POST", "http://127.0.0.1:1/v1/chat/completions", {}, {"model": "m"}, 200, {}, body, latency)


@pytest.mark.parametrize(
    ("total", "weights", "parts"),
    [
        (10, [1, 1, 1], [4, 3, 3]),
        (7, [1, 3], [2, 5]),
        (0, [5, 5], [0, 0]),
        (100, [1], [100]),
        (None, [1, 2], [None, None]),
    ],
)
def test_apportion_splits_a_total_exactly(total: int | None, weights: list[int], parts: list[int | None]) -> None:
    assert _apportion(total, weights) == parts


def test_a_single_response_request_has_its_exact_usage_finish_reason_and_latency() -> None:
    (stats,) = exchange([("42", "length")], {"prompt_tokens": 30, "completion_tokens": 12}).choice_stats()
    assert stats == ResponseStats(prompt_tokens=30, completion_tokens=12, finish_reason="length", latency_s=0.8)
    assert stats.truncated and not stats.estimated


def test_a_request_with_several_responses_splits_its_usage_and_keeps_the_totals() -> None:
    stats = exchange(
        [("a" * 9, "stop"), ("b" * 29, "stop")], {"prompt_tokens": 31, "completion_tokens": 40}
    ).choice_stats()
    assert [(s.prompt_tokens, s.completion_tokens, s.estimated) for s in stats] == [(16, 10, True), (15, 30, True)]
    assert sum(s.prompt_tokens or 0 for s in stats) == 31


def test_a_response_without_usage_has_no_token_figures() -> None:
    (stats,) = exchange([("x", "stop")], None, latency=None).choice_stats()
    assert (stats.prompt_tokens, stats.completion_tokens, stats.latency_s, stats.estimated) == (None, None, None, False)


def test_latency_survives_a_cassette_round_trip_and_an_old_cassette_has_none(tmp_path: Path) -> None:
    cassette = RowCassette(tmp_path / "row.yaml")
    cassette.append(exchange([("1", "stop")], {"prompt_tokens": 1, "completion_tokens": 1}, latency=1.234))
    cassette.append(exchange([("2", "stop")], {"prompt_tokens": 1, "completion_tokens": 1}, latency=None))
    cassette.save([])
    loaded = RowCassette.load(cassette.path)
    assert [i.latency_s for i in loaded.interactions] == [1.234, None]
    assert loaded.recorded_stats(loaded.interactions[0].key)[0].latency_s == 1.234


def test_price_per_million_tokens() -> None:
    price = Price(prompt=0.5, completion=2.0)
    assert price.cost(ResponseStats(prompt_tokens=2_000_000, completion_tokens=500_000)) == pytest.approx(2.0)
    assert price.cost(ResponseStats()) is None


def test_totals_are_exact_and_do_not_depend_on_row_order() -> None:
    rows = [outcome(f"r{i}", [1.0]) for i in range(3)]
    for i, row in enumerate(rows):
        row.variants[0].stats = ResponseStats(
            prompt_tokens=10, completion_tokens=i, finish_reason="length" if i == 2 else "stop", latency_s=0.1 * (i + 1)
        )
        row.variants[0].stats.cost = 0.1
    totals = usage_totals(rows)
    assert totals is not None
    assert (totals.responses, totals.prompt_tokens, totals.completion_tokens, totals.truncated) == (3, 30, 3, 1)
    assert totals.cost == pytest.approx(0.3)
    assert totals.latency_p95_s == pytest.approx(0.3)
    assert usage_totals(rows[::-1]) == totals
    assert usage_totals([outcome("plain", [1.0])]) is None


def test_the_mean_latency_of_equal_latencies_is_that_latency_not_a_rounding_above_it() -> None:
    rows = [outcome(f"r{i}", [1.0]) for i in range(3)]
    for row in rows:
        row.variants[0].stats = ResponseStats(latency_s=0.003)
    assert math.fsum([0.003] * 3) / 3 > 0.003  # what dividing the exact sum gives
    totals = usage_totals(rows)
    assert totals is not None and totals.latency_mean_s == totals.latency_p95_s == 0.003


def test_a_recorded_run_reports_tokens_cost_latency_and_truncation(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    rows = [chat_row(f"r{i}", None, ground_truth="7") for i in range(3)]
    make_suite(
        rows,
        models={"fake": "acme/fake-model-v1"},
        prices={"fake": {"prompt": 1000.0, "completion": 2000.0}},
        generation={"max_tokens": 8},
    )
    table = {f"question r{i}": ["7", "the answer is probably eight"] for i in range(3)}
    with FakeChatServer(table=table).running() as base_url:
        recorded = pytester.runpytest(
            "suite", "--rk-model", "fake", "--rk-n", "2", "--rk-base-url", base_url, "--record-mode=new_episodes"
        )
    recorded.assert_outcomes(failed=3)
    # What a real endpoint says when a response is cut off: edit one recorded choice.
    cassette = pytester.path / "cassettes" / "suite" / "fake" / "r1.yaml"
    text = cassette.read_text(encoding="utf-8")
    cassette.write_text(text.replace('"finish_reason": "stop"', '"finish_reason": "length"', 1), encoding="utf-8")
    result = pytester.runpytest(
        "suite", "--rk-model", "fake", "--rk-n", "2", "--rk-base-url", base_url, "--rk-output", "out"
    )
    result.assert_outcomes(failed=3)
    summary = json.loads((pytester.path / "out" / "summary.json").read_text(encoding="utf-8"))["summaries"][0]
    usage = summary["usage"]
    # The fake server counts words: prompt "question rI" = 2 tokens, once per request.
    assert (usage["responses"], usage["prompt_tokens"], usage["truncated"]) == (6, 6, 1)
    assert usage["completion_tokens"] == 3 * (1 + 5)
    assert usage["cost"] == pytest.approx((6 * 1000 + 18 * 2000) / 1e6)
    assert usage["latency_mean_s"] > 0 and usage["latency_p95_s"] >= usage["latency_mean_s"]
    result.stdout.fnmatch_lines(
        [
            "  tokens 6 prompt + 18 completion",
            "  cost 0.0420  latency mean *s p95 *s",
            "  1 response hit max_tokens (finish_reason 'length'): raise max_tokens",
        ]
    )
    lines = [json.loads(line) for line in (pytester.path / "out" / "results.jsonl").read_text().splitlines()]
    first = lines[0]["stats"]
    assert (first["prompt_tokens"], first["estimated"], first["finish_reason"]) == (1, True, "stop")
    assert first["cost"] == pytest.approx((1 * 1000 + first["completion_tokens"] * 2000) / 1e6)
