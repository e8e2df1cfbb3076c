"""The HTML report: escaping, the payload, the file a run writes, and the page in a real headless chromium."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from test_report import outcome

from pytest_rewardkit import EvaluateResult, Message
from pytest_rewardkit.baseline import compare
from pytest_rewardkit.evaluation import RowOutcome, VariantResult
from pytest_rewardkit.html_report import embed_json, histogram, render_html, report_payload, write_html
from pytest_rewardkit.models import Trajectory, TurnRecord
from pytest_rewardkit.report import summarize
from pytest_rewardkit.testing import FakeChatServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_MATH = ROOT / "examples" / "math"
CASSETTES = ROOT / "cassettes"
ALIAS = "gpt3-gsm8k-solutions"
CHROMIUM = Path("/usr/bin/chromium")
# What a headless, offline chromium needs: no sandbox as root, nothing phoning home.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
INJECTED = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"></pre></td>&amp;'


def embedded(page_html: str) -> Any:
    match = re.search(r'<script type="application/json" id="rk-data">(.*?)</script>', page_html, re.S)
    assert match is not None
    return json.loads(match.group(1))


def test_embedded_json_cannot_close_the_script_element_and_reads_back_exactly() -> None:
    value = {"response": INJECTED, "</script>": "<!--", "u2028": "\u2028"}
    text = embed_json(value)
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == value


def test_histogram_puts_a_perfect_score_in_the_last_bin() -> None:
    assert histogram([0.0, 0.05, 0.1, 0.55, 0.99, 1.0, 1.0]) == [2, 1, 0, 0, 0, 1, 0, 0, 0, 3]


def test_payload_orders_rows_by_suite_model_and_id_whatever_the_finishing_order() -> None:
    rows = [
        outcome("b", [1.0, 0.0]),
        outcome("a", [1.0, 1.0]),
        outcome("c", [], error="boom"),
        outcome("z", [1], suite="code"),
    ]
    payload = report_payload(summarize(rows), rows)
    assert [(r["combo"], r["id"], r["status"]) for r in payload["rows"]] == [
        (0, "z", "pass"),
        (1, "a", "pass"),
        (1, "b", "fail"),
        (1, "c", "error"),
    ]
    assert payload == report_payload(summarize(rows[::-1]), rows[::-1])
    math = payload["summaries"][1]
    assert math["histogram"] == [1, 0, 0, 0, 0, 0, 0, 0, 0, 3]
    assert math["pass_rate"] == pytest.approx(1 / 3)
    first = payload["rows"][1]["variants"][0]
    assert first["response"] == {"role": "assistant", "content": "answer 1.0"}
    assert first["metrics"] == {"format": {"score": 1.0, "reason": ""}}


def test_status_tells_an_error_from_a_low_score() -> None:
    assert [outcome("a", [1]).status, outcome("b", [0]).status, outcome("c", [], error="x").status] == [
        "pass",
        "fail",
        "error",
    ]


def test_the_page_allows_only_its_own_script_and_no_network() -> None:
    rows = [outcome("a", [1.0])]
    page = render_html(report_payload(summarize(rows), rows, title="<b>title</b>"))
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert csp is not None
    assert csp.group(1).startswith("default-src 'none'; script-src 'sha256-")
    assert "<title>&lt;b&gt;title&lt;/b&gt;</title>" in page
    assert page.count("<script") == 2  # the data (not executable) and the page's script


MATH_ROWS = 60


@pytest.fixture
def report_run(quiet_pytester: pytest.Pytester) -> Path:
    """examples/math (its first rows, with the 4 recorded GPT-3 responses each) plus rows whose
    response and id try to inject markup, recorded through the fake server, in one --rk-html run."""
    pytester = quiet_pytester
    suite = pytester.mkdir("math")
    shutil.copy(EXAMPLES_MATH / "rewardkit.yaml", suite / "rewardkit.yaml")
    lines = (EXAMPLES_MATH / "dataset.jsonl").read_text(encoding="utf-8").splitlines()[:MATH_ROWS]
    hostile = [
        ("inject", "1", None),
        ("<img src=y onerror=window.__pwned=3>", "7", "hard"),
        ("plain", "2", "easy"),
    ]
    for row_id, answer, level in hostile:
        row: dict[str, Any] = {"id": row_id, "messages": [{"role": "user", "content": f"question {row_id}"}]}
        row |= {"ground_truth": answer} | ({"level": level} if level else {})
        lines.append(json.dumps(row))
    (suite / "dataset.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    recorded = pytester.path / "cassettes" / "math" / ALIAS
    recorded.mkdir(parents=True)
    for path in sorted((CASSETTES / "math" / ALIAS).iterdir())[:MATH_ROWS]:
        shutil.copy(path, recorded / path.name)
    table = {
        "question inject": [INJECTED],
        "question <img src=y onerror=window.__pwned=3>": ["\\boxed{7}", "7", "</script>", "\\boxed{8}"],
        "question plain": ["\\boxed{2}"],
    }
    with FakeChatServer(table=table).running() as base_url:
        result = pytester.runpytest(
            "math",
            *("--rk-model", ALIAS, "--rk-n", "4", "--rk-group-by", "level"),
            *("--rk-base-url", base_url.removesuffix("/v1") + "/inference/v1", "--record-mode=new_episodes"),
            *("--rk-html", "out/report.html", "--rk-output", "", "-p", "no:cacheprovider"),
        )
    result.stdout.fnmatch_lines([f"report: {pytester.path / 'out' / 'report.html'}"])
    result.assert_outcomes(passed=5, failed=58)  # threshold 1: all 4 recorded answers must be right
    return pytester.path / "out" / "report.html"


def test_a_run_writes_the_report_with_every_row_and_figure(report_run: Path) -> None:
    data = embedded(report_run.read_text(encoding="utf-8"))
    (summary,) = data["summaries"]
    assert (summary["suite"], summary["model"], summary["rows"]) == ("math", ALIAS, MATH_ROWS + 3)
    assert len(data["rows"]) == MATH_ROWS + 3
    assert all(len(r["variants"]) == 4 for r in data["rows"])
    assert sum(summary["histogram"]) == 4 * (MATH_ROWS + 3)
    assert data["groups"] == ["level"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: `apt-get install chromium` (Debian); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@contextlib.contextmanager
def opened(browser: Browser, report: Path) -> Iterator[Page]:
    """`report` in a fresh page, ready; no script error may happen while it is open."""
    context = browser.new_context(offline=True)  # the report must need no network
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(report.as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=20_000)
    yield page
    assert errors == []
    context.close()


@pytest.fixture
def page(browser: Browser, report_run: Path) -> Iterator[Page]:
    with opened(browser, report_run) as page:
        yield page


def visible_ids(page: Page) -> list[str]:
    return page.locator("#rk-rows tr.row").evaluate_all("rows => rows.map(r => r.dataset.row)")


def test_the_report_renders_in_chromium(page: Page) -> None:
    assert page.title() == "rewardkit report"
    card = page.locator(".card")
    assert card.count() == 1
    text = card.inner_text()
    assert f"math [{ALIAS}]" in text
    assert "pass rate (95% CI" in text and "pass@4" in text and "by level" in text
    assert page.locator(".card svg.hist rect").count() == 10
    assert page.locator("#rk-count").inner_text() == "63 of 63 rows"
    assert len(visible_ids(page)) == 63  # one page holds up to 100 rows


def test_filters_and_search_narrow_the_table(page: Page) -> None:
    page.select_option("select[data-group='level']", "easy")
    assert visible_ids(page) == ["plain"]
    page.select_option("select[data-group='level']", "")
    page.select_option("#rk-status", "pass")
    passing = visible_ids(page)
    assert len(passing) == 5
    assert page.locator("#rk-rows td:first-child").all_inner_texts() == ["pass"] * 5
    page.select_option("#rk-status", "")
    page.fill("#rk-search", "gsm8k-test-0042")
    assert visible_ids(page) == ["gsm8k-test-0042"]
    page.fill("#rk-search", "janet’s ducks")  # searches the prompt too
    assert visible_ids(page) == ["gsm8k-test-0000"]
    page.fill("#rk-search", "")
    page.click("th[data-sort='reward']")
    page.click("th[data-sort='reward']")  # descending: the passing rows first
    assert set(visible_ids(page)[:5]) == set(passing)


def test_a_row_opens_to_show_the_conversation_responses_and_metrics(page: Page) -> None:
    page.fill("#rk-search", "gsm8k-test-0000")
    page.click("#rk-rows tr.row")
    detail = page.locator("#rk-rows tr.detail")
    text = detail.inner_text()
    assert "Janet’s ducks lay 16 eggs per day" in text  # the prompt
    assert "Solve the problem step by step" in text  # the system prompt
    assert detail.locator(".variant").count() == 4
    assert "A: 18" in detail.locator(".variant").nth(3).inner_text()
    assert "reason:" in text
    page.click("#rk-rows tr.row")
    assert page.locator("#rk-rows tr.detail").count() == 0


def test_a_script_in_a_response_or_id_is_shown_as_text_and_never_runs(page: Page) -> None:
    page.fill("#rk-search", "inject")
    page.click("#rk-rows tr.row")
    response = page.locator("#rk-rows tr.detail .variant .msg.assistant pre").first
    assert response.inner_text() == INJECTED
    page.fill("#rk-search", "onerror=window")
    assert visible_ids(page) == ["<img src=y onerror=window.__pwned=3>"]
    page.click("#rk-rows tr.row")
    page.wait_for_timeout(200)
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#rk-rows img, #rk-rows script").count() == 0


def test_a_directory_as_the_report_file_is_a_usage_error(quiet_pytester: pytest.Pytester) -> None:
    quiet_pytester.mkdir("reports")
    result = quiet_pytester.runpytest("--rk-html", "reports")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--rk-html: " in result.stderr.str()
    assert "is a directory; name the report file, e.g. report.html" in result.stderr.str()


def multi_turn_outcome(row_id: str) -> RowOutcome:
    """A multi_turn row (BFCL file system): the model lists the folder, reads the tool's result, answers."""
    prompt = [Message(role="user", content="I am alex. List everything in the current directory.")]
    call = {"id": "call_ls_1", "type": "function", "function": {"name": "ls", "arguments": '{"a": true}'}}
    answer = Message(role="assistant", content="The directory holds workspace and .hidden_file.")
    conversation = [
        *prompt,
        Message(role="assistant", content=None, tool_calls=[call]),
        Message(
            role="tool",
            name="ls",
            tool_call_id="call_ls_1",
            content='{"current_directory_content": ["<b>workspace</b>", ".hidden_file"]}',
        ),
        answer,
    ]
    trajectory = Trajectory(messages=conversation, turns=[TurnRecord(index=0, steps=2, tool_calls=1)], final_state={})
    variant = VariantResult(
        index=0,
        response=answer,
        result=EvaluateResult(score=1.0, reason="state and calls match"),
        passed=True,
        trajectory=trajectory,
    )
    return RowOutcome(
        suite="multi_turn", dataset="multi_turn/dataset.jsonl", row_id=row_id, model="fake", parameters={},
        prompt=prompt, threshold=1.0, aggregate="mean", variants=[variant], reward=1.0, passed=True,
    )  # fmt: skip


def test_a_multi_turn_row_shows_its_tool_calls_and_tool_results_as_text(browser: Browser, tmp_path: Path) -> None:
    rows = [multi_turn_outcome("multi_turn_base_1")]
    report = tmp_path / "report.html"
    write_html(report, report_payload(summarize(rows), rows))
    with opened(browser, report) as page:
        page.click("#rk-rows tr.row")
        variant = page.locator("#rk-rows tr.detail .variant")
        assert variant.locator(".msg.assistant pre.muted").all_inner_texts() == ['tool call call_ls_1: ls({"a": true})']
        result = variant.locator(".msg.tool")
        assert result.locator(".role").text_content() == "tool (ls) → result of call_ls_1"
        assert (
            result.locator("pre").inner_text() == '{"current_directory_content": ["<b>workspace</b>", ".hidden_file"]}'
        )
        assert page.locator("#rk-rows b").count() == 0  # the tool's output is text, never markup
        assert "The directory holds workspace and .hidden_file." in variant.inner_text()


def test_a_report_against_a_baseline_lists_the_regression(browser: Browser, tmp_path: Path) -> None:
    before = [outcome("a", [1.0]), outcome("b", [1.0]), outcome("c", [0.0])]
    now = [outcome("a", [1.0]), outcome("b", [0.0]), outcome("c", [0.0]), outcome("d", [1.0])]
    comparisons = compare(now, before, "baseline-run")
    report = tmp_path / "report.html"
    write_html(report, report_payload(summarize(now), now, comparisons=comparisons))
    with opened(browser, report) as page:
        block = page.locator(".card .comparison")
        assert "against the baseline baseline-run" in block.inner_text()
        assert "pass → fail / fail → pass\t1 / 0" in block.inner_text()
        cells = page.locator("#rk-rows tr.row").evaluate_all(
            "rows => rows.map(r => Array.from(r.cells, c => c.textContent))"
        )
        keys = page.locator("#rk-head th").evaluate_all("cells => cells.map(c => c.dataset.sort)")
        by_id = {row[keys.index("id")]: row for row in cells}
        assert [by_id[i][keys.index("change")] for i in "abcd"] == ["same", "regressed", "same", "new"]
        assert by_id["b"][keys.index("delta")].startswith("-1")
        page.select_option("#rk-change", "regressed")
        assert visible_ids(page) == ["b"]
        page.click("#rk-rows tr.row")
        detail = page.locator("#rk-rows tr.detail").inner_text()
        assert "baseline pass 1.000" in detail and "score 0.000 (baseline 1.000)" in detail
        page.select_option("#rk-change", "new")
        assert visible_ids(page) == ["d"]
