"""The plugin end to end (pytester): suite folders become items, the summary, the gate, result files."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_rewardkit.dataset import content_id

if TYPE_CHECKING:
    from conftest import ChatRow, MakeSuite

EXAMPLES_MATH = Path(__file__).resolve().parent.parent / "examples" / "math"
SUMMARY_HEADER = "*= rewardkit summary =*"


@pytest.fixture
def mixed_suite(make_suite: MakeSuite, chat_row: ChatRow) -> list[dict[str, Any]]:
    """Four rows: three right (one without an id), one wrong; returns the rows."""
    rows = [
        chat_row("alpha", "1", "1"),
        chat_row("beta", "2", "3"),
        chat_row("gamma", "3", "3"),
        chat_row(None, "4", "4"),
    ]
    make_suite(rows)
    return rows


def read_results(directory: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    lines = (directory / "results.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines], json.loads((directory / "summary.json").read_text(encoding="utf-8"))


def summary_block(stdout: str) -> list[str]:
    """The rewardkit summary lines, without the results path (which differs between runs) and without
    pytest's short test summary that follows (in completion order, and untruncated when CI is set)."""
    block = stdout.split("rewardkit summary", 1)[1].split("short test summary info", 1)[0]
    lines = block.splitlines()[1:]
    return [line for line in lines if line.startswith(("  ", "suite [")) and "results:" not in line]


def test_one_item_per_row_with_the_row_id_in_the_node_id(
    pytester: pytest.Pytester, mixed_suite: list[dict[str, Any]]
) -> None:
    hashed = content_id(json.dumps(mixed_suite[3]))
    result = pytester.runpytest("--co", "-q")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "suite/rewardkit.yaml::alpha",
            "suite/rewardkit.yaml::beta",
            "suite/rewardkit.yaml::gamma",
            f"suite/rewardkit.yaml::{hashed}",
            "4 tests collected*",
        ]
    )


def test_collect_only_scores_nothing_and_writes_nothing(
    pytester: pytest.Pytester, mixed_suite: list[dict[str, Any]]
) -> None:
    result = pytester.runpytest("--co", "--rk-output", "out")
    assert "rewardkit summary" not in result.stdout.str()
    assert not (pytester.path / "out").exists()


def test_collect_only_is_not_gated(pytester: pytest.Pytester, mixed_suite: list[dict[str, Any]]) -> None:
    result = pytester.runpytest("--co", "--rk-min-pass-rate", "0.5")
    assert result.ret == pytest.ExitCode.OK


def test_each_row_is_scored_and_the_wrong_one_fails_with_its_verdict(
    pytester: pytest.Pytester, mixed_suite: list[dict[str, Any]]
) -> None:
    result = pytester.runpytest("-rA", "--rk-output", "")
    result.assert_outcomes(passed=3, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*row beta: reward 0.000 < threshold 1 (mean of 1 variant(s))",
            "  [0] score 0.000: expected 3, got 2",
            "      response: 2",
            SUMMARY_HEADER,
            "suite [dataset]  suite/dataset.jsonl",
            "  rows 4  variants 4  passed 3  failed 1  errored 0",
            "  pass rate 75.0%  (95% CI 30.1%-95.4%)  mean reward 0.750",
            "  pass@1 0.750  |  pass^1 0.750",
            "FAILED suite/rewardkit.yaml::beta*",
        ]
    )
    assert "rewardkit gate" not in result.stdout.str()


def test_k_selects_rows_by_id(pytester: pytest.Pytester, mixed_suite: list[dict[str, Any]]) -> None:
    result = pytester.runpytest("-v", "-k", "gamma or beta", "--rk-output", "")
    result.assert_outcomes(passed=1, failed=1, deselected=2)
    result.stdout.fnmatch_lines(["*::beta FAILED*", "*::gamma PASSED*", "  rows 2  variants 2  passed 1  failed 1*"])


def test_x_stops_at_the_first_failing_row(pytester: pytest.Pytester, mixed_suite: list[dict[str, Any]]) -> None:
    result = pytester.runpytest("-x", "--rk-output", "")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["  rows 2  variants 2  passed 1  failed 1  errored 0"])


def test_lf_reruns_only_the_rows_that_failed(pytester: pytest.Pytester, mixed_suite: list[dict[str, Any]]) -> None:
    pytester.runpytest("--rk-output", "").assert_outcomes(passed=3, failed=1)
    result = pytester.runpytest("--lf", "-v", "--rk-output", "")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["run-last-failure: rerun previous 1 failure*", "*::beta FAILED*"])


def test_lf_reruns_failed_rows_whose_ids_contain_node_id_syntax(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    make_suite([chat_row("gsm8k::7", "1", "2"), chat_row("q[1]", "1", "2"), chat_row("plain", "1", "2")])
    pytester.runpytest("--rk-output", "").assert_outcomes(failed=3)
    result = pytester.runpytest("--lf", "--rk-output", "")
    result.assert_outcomes(failed=3)


def test_rk_limit_keeps_the_first_rows(pytester: pytest.Pytester, mixed_suite: list[dict[str, Any]]) -> None:
    result = pytester.runpytest("--rk-limit", "2", "--co", "-q")
    result.stdout.fnmatch_lines(["suite/rewardkit.yaml::alpha", "suite/rewardkit.yaml::beta", "2 tests collected*"])


def test_malformed_rows_are_reported_with_file_and_line_while_the_others_pass(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    rows = [chat_row("a", "1", "1"), chat_row("b", "2", "2"), chat_row("c", "3", "3")]
    suite = make_suite(rows, bad_lines={1: '{"id": "broken", ', 3: '{"id": "empty", "messages": []}', 4: "[1, 2]"})
    result = pytester.runpytest("-rE", "--rk-output", "")
    result.assert_outcomes(passed=3, errors=3)
    dataset = suite / "dataset.jsonl"
    result.stdout.fnmatch_lines_random(
        [
            f"*row line2: {dataset}:2: invalid JSON*",
            f"*row empty: {dataset}:4: invalid row",
            "*messages: give at least one message*",
            f"*row line5: {dataset}:5: a row must be a JSON object*",
            "  rows 6  variants 3  passed 3  failed 0  errored 3",
        ]
    )


def test_a_broken_reward_is_an_error_counted_apart_from_failures(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    make_suite([chat_row("a", "1", "1")], folder="ok")
    make_suite([chat_row("b", "1", "1")], folder="raising", reward="rk_rewards:raises")
    make_suite([chat_row("c", "1", "1")], folder="refusing", reward="rk_rewards:invalid")
    make_suite([chat_row("d", None, "1")], folder="unanswered")
    result = pytester.runpytest("--rk-output", "")
    result.assert_outcomes(passed=1, errors=3)
    stdout = result.stdout.str()
    assert "  [0] error: reward 'raises' raised RuntimeError: grader exploded" in stdout
    assert "  [0] error: reward 'invalid' returned an invalid score: ground truth unreadable" in stdout
    assert "row d has no assistant turn to score and no model to generate one" in stdout
    assert result.stdout.str().count("rows 1  variants 1  passed 0  failed 0  errored 1") == 2
    assert "rows 1  variants 0  passed 0  failed 0  errored 1" in result.stdout.str()


def test_params_extra_fields_and_system_prompt_reach_a_custom_async_reward(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    rows = [chat_row("hard", "x", level="hard"), chat_row("easy", "x", level="easy")]
    make_suite(rows, reward={"name": "rk_rewards:sees_kwargs", "params": {"want": "hard"}}, system_prompt="Be brief.")
    result = pytester.runpytest("--rk-output", "")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*score 0.000: want=hard level=easy*"])


def test_gate_met_exits_0_even_with_failed_items(pytester: pytest.Pytester, mixed_suite: list[dict[str, Any]]) -> None:
    result = pytester.runpytest("--rk-min-pass-rate", "0.75", "--rk-output", "")
    result.assert_outcomes(passed=3, failed=1)
    assert result.ret == pytest.ExitCode.OK
    assert (
        result.stdout.lines.count("rewardkit gate: PASSED (every pass rate >= 75.0%, error rate <= 0.0%) -> exit 0")
        == 1
    )


def test_gate_not_met_exits_1(pytester: pytest.Pytester, mixed_suite: list[dict[str, Any]]) -> None:
    result = pytester.runpytest("--rk-min-pass-rate", "0.8", "--rk-output", "")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["rewardkit gate: FAILED (min pass rate 80.0%; below: suite/dataset 75.0%) -> exit 1"])


def test_gate_not_met_even_when_every_item_passed(pytester: pytest.Pytester, mixed_suite: list[dict[str, Any]]) -> None:
    result = pytester.runpytest("-k", "not beta", "--rk-min-pass-rate", "1", "--rk-output", "")
    assert result.ret == pytest.ExitCode.OK
    result = pytester.runpytest("--rk-min-pass-rate", "1", "--rk-output", "")
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_gate_with_no_rows_is_not_met(quiet_pytester: pytest.Pytester) -> None:
    quiet_pytester.makepyfile("def test_plain(): pass")
    result = quiet_pytester.runpytest("--rk-min-pass-rate", "0")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["rewardkit gate: FAILED (no rows were evaluated) -> exit 1"])


def test_gate_counts_every_dataset_on_its_own(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    make_suite([chat_row("a", "1", "1"), chat_row("b", "1", "1")], folder="good")
    make_suite([chat_row("c", "1", "1"), chat_row("d", "1", "2")], folder="half")
    result = pytester.runpytest("--rk-min-pass-rate", "0.6", "--rk-output", "")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*below: half/dataset 50.0%) -> exit 1"])


def test_results_files(pytester: pytest.Pytester, mixed_suite: list[dict[str, Any]]) -> None:
    pytester.runpytest("--rk-output", "out", "--rk-min-pass-rate", "0.5")
    results, summary = read_results(pytester.path / "out")
    assert [r["row_id"] for r in results][:3] == ["alpha", "beta", "gamma"]
    assert len(results) == 4
    beta = results[1]
    assert beta["variant"] == 0
    assert beta["messages"] == [{"role": "user", "content": "question beta"}]
    assert beta["response"] == {"role": "assistant", "content": "2"}
    assert (beta["score"], beta["reason"], beta["passed"], beta["error"]) == (0.0, "expected 3, got 2", False, None)
    assert beta["metrics"] == {"exact": {"score": 0.0, "reason": "", "is_score_valid": True}}
    assert (beta["model"], beta["parameters"]) == ("dataset", None)  # nothing was generated
    assert (beta["ground_truth"], beta["row_reward"], beta["row_passed"], beta["row_error"]) == ("3", 0.0, False, None)
    (figures,) = summary["summaries"]
    assert (figures["rows"], figures["passed"], figures["failed"], figures["errored"]) == (4, 3, 1, 0)
    assert figures["pass_rate"] == 0.75
    assert summary["gate"]["met"] is True


def test_results_go_to_the_default_directory_under_the_rootdir(
    pytester: pytest.Pytester, mixed_suite: list[dict[str, Any]]
) -> None:
    sub = pytester.mkdir("elsewhere")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(sub)
        result = pytester.runpytest(str(pytester.path), f"--rootdir={pytester.path}")
    result.stdout.fnmatch_lines([f"results: {pytester.path / 'rewardkit-results'}"])
    assert len(read_results(pytester.path / "rewardkit-results")[0]) == 4


def test_xdist_gives_the_same_figures_and_result_files(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    rows = [chat_row(f"q{i:02d}", str(i), str(i if i % 3 else -1)) for i in range(24)]
    make_suite(rows, bad_lines={5: "{oops"})
    make_suite(
        [chat_row("z1", "0.5"), chat_row("z2", "0.9")], folder="graded", reward="rk_rewards:graded", threshold=0.6
    )
    serial = pytester.runpytest("--rk-output", "serial", "--rk-min-pass-rate", "0.6")
    parallel = pytester.runpytest_subprocess("-n", "2", "--rk-output", "parallel", "--rk-min-pass-rate", "0.6")
    counts = ("passed", "failed", "errors")
    assert [parallel.parseoutcomes()[c] for c in counts] == [serial.parseoutcomes()[c] for c in counts] == [17, 9, 1]
    assert parallel.ret == serial.ret == pytest.ExitCode.TESTS_FAILED
    assert summary_block(parallel.stdout.str()) == summary_block(serial.stdout.str())
    serial_results, serial_summary = read_results(pytester.path / "serial")
    parallel_results, parallel_summary = read_results(pytester.path / "parallel")
    assert parallel_summary == serial_summary
    key = json.dumps  # rows finish in any order across workers; each line must be the same
    assert sorted(map(key, parallel_results)) == sorted(map(key, serial_results))
    assert len(serial_results) == 27


def test_xdist_gate_met_exits_0(pytester: pytest.Pytester, mixed_suite: list[dict[str, Any]]) -> None:
    result = pytester.runpytest_subprocess("-n", "2", "--rk-min-pass-rate", "0.7", "--rk-output", "")
    result.assert_outcomes(passed=3, failed=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["rewardkit gate: PASSED*-> exit 0"])


MARKED_TEST = """
import pytest

@pytest.fixture
def tolerance():
    return "fixture value"

@pytest.mark.rewardkit("suite")
def test_rows(rk_case, tolerance):
    assert tolerance == "fixture value"
    assert rk_case.row_id == rk_case.row.id or rk_case.row_id.startswith("row-")
    rk_case.evaluate()
"""


def test_a_marked_python_test_runs_once_per_row_with_fixtures(
    pytester: pytest.Pytester, mixed_suite: list[dict[str, Any]]
) -> None:
    pytester.makepyfile(test_marked=MARKED_TEST)
    result = pytester.runpytest("test_marked.py", "-v", "--rk-output", "")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.re_match_lines(
        [
            r"test_marked\.py::test_rows\[alpha\] PASSED",
            r"test_marked\.py::test_rows\[beta\] FAILED",
            r"test_marked\.py::test_rows\[gamma\] PASSED",
            r"test_marked\.py::test_rows\[row-[0-9a-f]{12}\] PASSED",
            r".*RewardFailure: row beta: reward 0\.000 < threshold 1",
        ]
    )


def test_the_marked_test_and_the_yaml_suite_share_one_implementation(
    pytester: pytest.Pytester, mixed_suite: list[dict[str, Any]]
) -> None:
    pytester.makepyfile(test_marked=MARKED_TEST)
    from_yaml = pytester.runpytest("suite", "--rk-output", "yaml", "--rk-min-pass-rate", "0.7")
    from_python = pytester.runpytest("test_marked.py", "--rk-output", "python", "--rk-min-pass-rate", "0.7")
    assert from_yaml.ret == from_python.ret == pytest.ExitCode.OK
    assert summary_block(from_python.stdout.str()) == summary_block(from_yaml.stdout.str())
    assert read_results(pytester.path / "python") == read_results(pytester.path / "yaml")


def test_a_marked_test_can_score_with_its_own_reward_and_inspect_the_outcome(
    pytester: pytest.Pytester, mixed_suite: list[dict[str, Any]]
) -> None:
    pytester.makepyfile(
        test_own="""
        import pytest
        from pytest_rewardkit import EvaluateResult, reward_function

        @reward_function
        def lenient(messages, ground_truth=None, **kwargs):
            return EvaluateResult(score=0.5, reason="half credit")

        @pytest.mark.rewardkit("suite")
        def test_rows(rk_case):
            outcome = rk_case.evaluate(reward=lenient, check=False)
            assert outcome.reward == 0.5 and not outcome.passed
        """
    )
    result = pytester.runpytest("test_own.py", "--rk-output", "")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["  rows 4  variants 4  passed 0  failed 4  errored 0"])


def test_a_marked_test_reports_a_malformed_row_with_file_and_line(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    make_suite([chat_row("a", "1", "1")], bad_lines={0: "nope"})
    pytester.makepyfile(test_marked=MARKED_TEST)
    result = pytester.runpytest("test_marked.py", "-v", "--rk-output", "")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*row line1: *suite/dataset.jsonl:1: invalid JSON*"])


def test_rk_case_without_the_marker_is_a_clear_error(quiet_pytester: pytest.Pytester) -> None:
    quiet_pytester.makepyfile("def test_unmarked(rk_case):\n    pass\n")
    result = quiet_pytester.runpytest()
    assert "needs @pytest.mark.rewardkit('<suite folder>')" in result.stdout.str()
    assert result.ret != pytest.ExitCode.OK


def test_a_marker_without_a_suite_is_a_usage_error(quiet_pytester: pytest.Pytester) -> None:
    quiet_pytester.makepyfile(
        textwrap.dedent(
            """
            import pytest

            @pytest.mark.rewardkit
            def test_rows(rk_case):
                pass
            """
        )
    )
    result = quiet_pytester.runpytest()
    assert "@pytest.mark.rewardkit needs a suite folder" in result.stdout.str() + result.stderr.str()
    assert result.ret != pytest.ExitCode.OK


def test_the_math_example_passes_every_reference_solution(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(str(EXAMPLES_MATH), "-p", "no:cacheprovider", "--rk-output", str(pytester.path / "out"))
    result.assert_outcomes(passed=1319)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["  rows 1319  variants 1319  passed 1319  failed 0  errored 0"])
    results, summary = read_results(pytester.path / "out")
    assert len(results) == 1319 and all(r["passed"] for r in results)
    assert re.fullmatch(r"gsm8k-test-\d{4}", results[-1]["row_id"])
    assert summary["summaries"][0]["pass_rate"] == 1.0


def test_the_look_ahead_is_the_next_rows_in_order_and_under_xdist_only_pytests_nextitem(
    pytester: pytest.Pytester, mixed_suite: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_rewardkit.collection import upcoming_items

    items = pytester.getitems(pytester.path / "suite" / "rewardkit.yaml")
    assert len(items) == 4
    items[0].session.items = items  # what a run's collection leaves there
    assert upcoming_items(items[1], items[2], window=2) == items[1:3]
    assert upcoming_items(items[2], items[3], window=8) == items[2:]
    # An xdist worker: no private queue is read, only what pytest itself says runs next.
    monkeypatch.setattr(items[0].config, "workerinput", {"workerid": "gw0"}, raising=False)
    assert upcoming_items(items[0], items[3], window=8) == [items[0], items[3]]
    assert upcoming_items(items[3], None, window=8) == [items[3]]


def test_a_run_in_this_process_leaves_no_objects_frozen(
    pytester: pytest.Pytester, mixed_suite: list[dict[str, Any]]
) -> None:
    import gc

    before = gc.get_freeze_count()
    pytester.runpytest("--rk-output", "").assert_outcomes(passed=3, failed=1)
    assert gc.get_freeze_count() == before


FREEZE_PROBE = """
import atexit, gc, sys

def pytest_configure(config):
    atexit.register(lambda: sys.__stdout__.write(f"frozen at exit: {gc.get_freeze_count()}\\n"))

def pytest_runtest_call(item):
    print(f"frozen at {item.name}: {gc.get_freeze_count()}")
"""


def test_a_command_line_run_freezes_again_after_a_suites_first_row_and_exits_frozen(
    pytester: pytest.Pytester, mixed_suite: list[dict[str, Any]]
) -> None:
    pytester.makeconftest(FREEZE_PROBE)
    result = pytester.runpytest_subprocess("-s", "--rk-output", "")
    result.assert_outcomes(passed=3, failed=1)
    during = [int(n) for n in re.findall(r"frozen at (?!exit)[^:]+: (\d+)", result.stdout.str())]
    assert len(during) == 4
    # Frozen once collected, again after the first row (what its reward imported), then not again
    # (frozen objects still go when nothing refers to them).
    assert 0 < during[0] < during[1]
    assert max(during[2:]) <= during[1]
    # pytest's command line exits with the run: collecting the frozen objects there is wasted.
    (at_exit,) = (int(n) for n in re.findall(r"frozen at exit: (\d+)", result.stdout.str()))
    assert at_exit > 0


def test_a_project_s_other_tests_do_not_import_what_suites_need(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    pytester.makeconftest(
        "import atexit, sys\n"
        "heavy = ('pydantic', 'yaml', 'sympy', 'aiohttp', 'pytest_rewardkit.config')\n"
        "atexit.register(lambda: sys.__stdout__.write(f'imported: {[m for m in heavy if m in sys.modules]}\\n'))\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["imported: []"])


def test_the_fake_server_fixture_serves_on_localhost_for_one_test(quiet_pytester: pytest.Pytester) -> None:
    quiet_pytester.makepyfile(
        """
        import json
        import urllib.request


        def test_echo(rk_fake_server):
            assert rk_fake_server.base_url.startswith("http://127.0.0.1:")
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
            request = urllib.request.Request(
                rk_fake_server.base_url + "/chat/completions",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                answer = json.load(response)
            assert answer["choices"][0]["message"]["content"] == "echo: hi"
            assert len(rk_fake_server.requests) == 1
        """
    )
    quiet_pytester.runpytest().assert_outcomes(passed=1)
