"""The gate as CI sees it: the whole run's exit status, serial and under xdist.

The matrix below is the contract written down in the README's "Gate" section; a change to an
expected status here must change the README too.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import ChatRow, MakeSuite

OK, FAILED, INTERRUPTED = pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.INTERRUPTED

FAILING_TEST = "def test_unit():\n    assert 1 + 1 == 3\n"
BROKEN_TEST = "def test_broken(:\n"
INTERRUPTING_TEST = "def test_interrupted():\n    raise KeyboardInterrupt\n"


@pytest.fixture
def low_suite(make_suite: MakeSuite, chat_row: ChatRow) -> None:
    """Three rows, one of which scores below the threshold: a pass rate of 2/3."""
    make_suite([chat_row("a", "1", "1"), chat_row("b", "2", "3"), chat_row("c", "3", "3")])


def run(pytester: pytest.Pytester, xdist: bool, *args: str) -> pytest.RunResult:
    if xdist:
        return pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider", "--rk-output", "", *args)
    # no_reraise_ctrlc: an inner run's KeyboardInterrupt is its exit status, not this session's.
    return pytester.runpytest("-p", "no:cacheprovider", "--rk-output", "", *args, no_reraise_ctrlc=True)


@pytest.fixture(params=[False, True], ids=["serial", "xdist"])
def xdist(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


# --- the exit-status matrix (README, "Gate") -------------------------------------------------


def test_matrix_low_rows_only(pytester: pytest.Pytester, low_suite: None, xdist: bool) -> None:
    assert run(pytester, xdist).ret == FAILED  # no gate: a low row fails like any test
    met = run(pytester, xdist, "--rk-min-pass-rate", "0.6")
    assert met.ret == OK
    met.stdout.fnmatch_lines(["rewardkit gate: PASSED*-> exit 0"])
    missed = run(pytester, xdist, "--rk-min-pass-rate", "0.7")
    assert missed.ret == FAILED
    missed.stdout.fnmatch_lines(["rewardkit gate: FAILED*below: suite/dataset 66.7%*-> exit 1"])


def test_matrix_plus_a_failing_ordinary_test(pytester: pytest.Pytester, low_suite: None, xdist: bool) -> None:
    pytester.makepyfile(test_unit=FAILING_TEST)
    result = run(pytester, xdist, "--rk-min-pass-rate", "0.5")
    assert result.ret == FAILED
    result.stdout.fnmatch_lines(
        ["rewardkit gate: PASSED*; exit 1: 1 failure outside the gate (test_unit.py::test_unit)"]
    )


def test_matrix_plus_a_collection_error(pytester: pytest.Pytester, low_suite: None, xdist: bool) -> None:
    pytester.makepyfile(test_broken=BROKEN_TEST)
    # pytest stops before running anything; pytest-xdist runs what collected and exits 1.
    assert run(pytester, xdist, "--rk-min-pass-rate", "0.5").ret == (FAILED if xdist else INTERRUPTED)
    result = run(pytester, xdist, "--rk-min-pass-rate", "0.5", "--continue-on-collection-errors")
    assert result.ret == FAILED
    result.stdout.fnmatch_lines(["rewardkit gate: PASSED*; exit 1: 1 collection error (test_broken.py)"])


def test_matrix_plus_x(pytester: pytest.Pytester, low_suite: None, xdist: bool) -> None:
    result = run(pytester, xdist, "-x", "--rk-min-pass-rate", "0.5")
    if xdist:  # pytest-xdist ends a run stopped by -x as interrupted
        assert result.ret == INTERRUPTED
        result.stdout.fnmatch_lines(["rewardkit gate: not applied (run interrupted) -> exit 2"])
    else:
        assert result.ret == FAILED
        result.stdout.fnmatch_lines(["rewardkit gate: FAILED (stopped early*-> exit 1"])


def test_matrix_plus_keyboard_interrupt(pytester: pytest.Pytester, low_suite: None, xdist: bool) -> None:
    pytester.makepyfile(test_zz_interrupt=INTERRUPTING_TEST)
    result = run(pytester, xdist, "--rk-min-pass-rate", "0.5")
    assert result.ret == INTERRUPTED


def test_matrix_plus_errored_rows(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow, xdist: bool
) -> None:
    rows = [chat_row("a", "1", "1"), chat_row("b", "2", "3"), chat_row("c", "3", "3")]
    make_suite(rows, bad_lines={3: "{oops"})
    result = run(pytester, xdist, "--rk-min-pass-rate", "0.5")
    assert result.ret == FAILED
    result.stdout.fnmatch_lines(
        ["rewardkit gate: FAILED*errored: suite/dataset 1 of 4 rows (25.0%) > max 0.0%*-> exit 1"]
    )
    tolerated = run(pytester, xdist, "--rk-min-pass-rate", "0.5", "--rk-max-error-rate", "0.25")
    assert tolerated.ret == OK


# --- item 1: the gate decides only about rewardkit rows --------------------------------------


def test_a_failing_ordinary_test_keeps_exit_1_when_the_gate_is_met(pytester: pytest.Pytester, low_suite: None) -> None:
    pytester.makepyfile(test_unit=FAILING_TEST)
    result = pytester.runpytest("suite", "test_unit.py", "--rk-min-pass-rate", "0.5", "--rk-output", "")
    result.assert_outcomes(passed=2, failed=2)
    assert result.ret == FAILED


def test_an_erroring_fixture_of_an_ordinary_test_keeps_exit_1(pytester: pytest.Pytester, low_suite: None) -> None:
    pytester.makepyfile(
        test_unit="""
        import pytest

        @pytest.fixture
        def broken():
            raise RuntimeError("fixture broke")

        def test_unit(broken):
            pass
        """
    )
    result = pytester.runpytest("--rk-min-pass-rate", "0.5", "--rk-output", "")
    result.assert_outcomes(passed=2, failed=1, errors=1)
    assert result.ret == FAILED


def test_a_marked_test_failing_its_own_assertion_is_not_the_gates_to_forgive(
    pytester: pytest.Pytester, low_suite: None
) -> None:
    pytester.makepyfile(
        test_marked="""
        import pytest

        @pytest.mark.rewardkit("suite")
        def test_rows(rk_case):
            rk_case.evaluate(check=False)
            assert rk_case.row_id != "c", "the test's own check"
        """
    )
    result = pytester.runpytest("test_marked.py", "--rk-min-pass-rate", "0.5", "--rk-output", "")
    result.assert_outcomes(passed=2, failed=1)
    assert result.ret == FAILED
    # A low reward raised by the row's own check is the gate's to judge.
    pytester.makepyfile(
        test_marked="""
        import pytest

        @pytest.mark.rewardkit("suite")
        def test_rows(rk_case):
            rk_case.evaluate()
        """
    )
    assert pytester.runpytest("test_marked.py", "--rk-min-pass-rate", "0.5", "--rk-output", "").ret == OK


def test_an_interrupted_run_says_the_gate_was_not_applied(pytester: pytest.Pytester, low_suite: None) -> None:
    pytester.makepyfile(test_zz_interrupt=INTERRUPTING_TEST)
    result = pytester.runpytest("--rk-min-pass-rate", "0.5", "--rk-output", "", no_reraise_ctrlc=True)
    assert result.ret == INTERRUPTED
    result.stdout.fnmatch_lines(["rewardkit gate: not applied (run interrupted) -> exit 2"])


# --- item 2: incomplete runs ------------------------------------------------------------------


def test_x_stopping_after_2_of_3_rows_is_incomplete(pytester: pytest.Pytester, low_suite: None) -> None:
    result = pytester.runpytest("-x", "--rk-min-pass-rate", "0.5", "--rk-output", "")
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == FAILED
    result.stdout.fnmatch_lines(
        [
            "  incomplete: 2 of 3 rows ran",
            "rewardkit gate: FAILED (stopped early: stopping after 1 failures; "
            "incomplete: suite/dataset 2 of 3 rows ran) -> exit 1",
        ]
    )


def test_maxfail_stopping_early_is_incomplete(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    make_suite([chat_row(f"r{i}", "0" if i < 2 else "1", "1") for i in range(6)])
    result = pytester.runpytest("--maxfail", "2", "--rk-min-pass-rate", "0.1", "--rk-output", "")
    assert result.ret == FAILED
    result.stdout.fnmatch_lines(["*incomplete: suite/dataset 2 of 6 rows ran*"])


def test_a_suite_that_failed_to_collect_fails_the_gate(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    make_suite([chat_row("a", "1", "1")], folder="good")
    broken = make_suite([chat_row("b", "1", "1")], folder="broken")
    (broken / "rewardkit.yaml").write_text("reward: [unclosed\n", encoding="utf-8")
    result = pytester.runpytest("--continue-on-collection-errors", "--rk-min-pass-rate", "0.5", "--rk-output", "")
    result.assert_outcomes(passed=1, errors=1)
    assert result.ret == FAILED
    result.stdout.fnmatch_lines(["rewardkit gate: PASSED*; exit 1: 1 collection error (broken/rewardkit.yaml)"])


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["-k", "not b"], "  selected 2 of 3 rows (deselected 1: -k)"),
        (["--deselect", "suite/rewardkit.yaml::b"], "  selected 2 of 3 rows (deselected 1: --deselect)"),
        (["--rk-limit", "2"], "  selected the first 2 rows (--rk-limit 2)"),
    ],
)
def test_an_intended_selection_is_gated_on_what_was_selected_and_said(
    pytester: pytest.Pytester, low_suite: None, args: list[str], said: str
) -> None:
    result = pytester.runpytest(*args, "--rk-min-pass-rate", "0.5", "--rk-output", "")
    assert result.ret == OK
    result.stdout.fnmatch_lines([said, "rewardkit gate: PASSED*-> exit 0"])
    assert "incomplete" not in result.stdout.str()


def test_lf_is_an_intended_selection(pytester: pytest.Pytester, low_suite: None) -> None:
    pytester.runpytest("--rk-output", "")
    result = pytester.runpytest("--lf", "--rk-min-pass-rate", "0", "--rk-output", "")
    result.assert_outcomes(failed=1)
    assert result.ret == OK
    result.stdout.fnmatch_lines(["  selected 1 row (--lf)"])


def test_a_skipped_marked_row_is_said_and_not_incomplete(pytester: pytest.Pytester, low_suite: None) -> None:
    pytester.makepyfile(
        test_marked="""
        import pytest

        @pytest.mark.rewardkit("suite")
        def test_rows(rk_case):
            if rk_case.row_id == "b":
                pytest.skip("not today")
            rk_case.evaluate()
        """
    )
    result = pytester.runpytest("test_marked.py", "--rk-min-pass-rate", "1", "--rk-output", "")
    result.assert_outcomes(passed=2, skipped=1)
    assert result.ret == OK
    result.stdout.fnmatch_lines(["  skipped 1 row"])


# --- item 3: errored rows count against the gate ----------------------------------------------


def test_errored_rows_fail_the_gate_by_default_and_show_beside_the_pass_rate(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    rows = [chat_row(f"r{i}", "1", "1") for i in range(9)]
    make_suite(rows, bad_lines={0: "{oops"})
    result = pytester.runpytest("--rk-min-pass-rate", "0.5", "--rk-output", "")
    assert result.ret == FAILED
    result.stdout.fnmatch_lines(
        [
            "  pass rate 90.0%  (95% CI *)  errored 10.0%  mean reward 1.000",
            "rewardkit gate: FAILED (errored: suite/dataset 1 of 10 rows (10.0%) > max 0.0%) -> exit 1",
        ]
    )
    result = pytester.runpytest("--rk-min-pass-rate", "0.5", "--rk-max-error-rate", "0.1", "--rk-output", "")
    assert result.ret == OK
    result.stdout.fnmatch_lines(["rewardkit gate: PASSED (every pass rate >= 50.0%, error rate <= 10.0%) -> exit 0"])


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan"])
def test_max_error_rate_is_checked_at_start_up(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow, value: str
) -> None:
    # With --rk-min-pass-rate given, the flag is well formed: only its value can be wrong.
    scored = pytester.path / "scored.txt"
    (pytester.path / "rk_marker.py").write_text(
        "from pytest_rewardkit import EvaluateResult, reward_function\n\n\n"
        "@reward_function\n"
        "def touch(messages, **kwargs):\n"
        f"    open({str(scored)!r}, 'a').write('scored\\n')\n"
        "    return EvaluateResult(score=1.0, reason='ok')\n",
        encoding="utf-8",
    )
    make_suite([chat_row("a", "1", "1")], reward="rk_marker:touch")
    assert pytester.runpytest("--rk-min-pass-rate", "0.5", "--rk-output", "").ret == OK and scored.is_file()
    scored.unlink()
    result = pytester.runpytest("--rk-min-pass-rate", "0.5", "--rk-max-error-rate", value, "--rk-output", "")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--rk-max-error-rate: expected a number from 0 to 1" in result.stderr.str()
    assert not scored.exists(), "a row ran before the option was rejected"


def test_max_error_rate_alone_is_a_usage_error(quiet_pytester: pytest.Pytester) -> None:
    result = quiet_pytester.runpytest("--rk-max-error-rate", "0.1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--rk-max-error-rate" in result.stderr.str() and "--rk-min-pass-rate" in result.stderr.str()


def test_a_generation_error_counts_as_errored(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    make_suite([chat_row("a", "1", "1"), chat_row("b", None, "1")])
    result = pytester.runpytest("--rk-min-pass-rate", "0.5", "--rk-output", "")
    assert result.ret == FAILED
    result.stdout.fnmatch_lines(["*errored: suite/dataset 1 of 2 rows (50.0%)*"])


# --- items 6 and 7: suites are isolated, rows counted once -------------------------------------


def capitals(make_suite: MakeSuite, chat_row: ChatRow, parent: str, answer: str) -> None:
    """A suite folder `<parent>/capitals` whose one row asks about `parent` (same row id in both)."""
    make_suite(
        [{"id": "r0", "messages": [{"role": "user", "content": f"capital of {parent}?"}], "ground_truth": answer}],
        folder=f"{parent}/capitals",
        models={"fake": "acme/fake"},
    )


def test_same_named_suite_folders_keep_separate_cassettes(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    from pytest_rewardkit.testing import FakeChatServer

    capitals(make_suite, chat_row, "a", "Paris")
    capitals(make_suite, chat_row, "b", "Rome")
    server = FakeChatServer(table={"capital of a?": ["Paris"], "capital of b?": ["Rome"]})
    base_url = server.start_in_thread()
    try:
        common = ["--rk-model", "fake", "--rk-base-url", base_url, "--rk-output", ""]
        pytester.runpytest("a", "b", *common, "--record-mode=new_episodes").assert_outcomes(passed=2)
        assert (pytester.path / "cassettes/a/capitals/fake/r0.yaml").is_file()
        assert (pytester.path / "cassettes/b/capitals/fake/r0.yaml").is_file()
        # Re-recording one suite from scratch leaves the other's recordings alone.
        pytester.runpytest("a", *common, "--record-mode=all").assert_outcomes(passed=1)
    finally:
        server.stop()
    replay = pytester.runpytest("a", "b", "--rk-model", "fake", "--rk-output", "")
    replay.assert_outcomes(passed=2)


def test_two_suites_resolving_to_one_cassette_folder_are_refused_naming_both(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    make_suite([chat_row("a", "1", "1")], folder="one", name="capitals")
    make_suite([chat_row("b", "1", "1")], folder="two", name="capitals")
    result = pytester.runpytest("--rk-output", "")
    assert result.ret == INTERRUPTED
    result.stdout.fnmatch_lines(
        ["*two/rewardkit.yaml and *one/rewardkit.yaml are both suite 'capitals'*give one a distinct `name:`*"]
    )


def test_a_yaml_and_a_yml_in_one_folder_are_refused_naming_both(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    folder = make_suite([chat_row("a", "1", "1")])
    (folder / "rewardkit.yml").write_text((folder / "rewardkit.yaml").read_text())
    result = pytester.runpytest("--rk-output", "", "--rk-min-pass-rate", "1")
    assert result.ret != OK
    result.stdout.fnmatch_lines(["*suite/rewardkit.yml and *suite/rewardkit.yaml: one suite file per folder*"])


def test_a_suite_scored_by_its_yaml_and_a_marked_test_counts_each_row_once(
    pytester: pytest.Pytester, low_suite: None
) -> None:
    pytester.makepyfile(
        test_marked="""
        import pytest

        @pytest.mark.rewardkit("suite")
        def test_rows(rk_case):
            rk_case.evaluate()
        """
    )
    result = pytester.runpytest("--rk-min-pass-rate", "0.6", "--rk-output", "")
    result.assert_outcomes(passed=4, failed=2)
    assert result.ret == OK
    result.stdout.fnmatch_lines(
        [
            "  scored twice: 3 rows (by suite/rewardkit.yaml::* and test_marked.py::test_rows*); counted once",
            "  rows 3  variants 3  passed 2  failed 1  errored 0",
        ]
    )


def test_a_row_scored_twice_with_different_verdicts_fails_the_gate(pytester: pytest.Pytester, low_suite: None) -> None:
    pytester.makepyfile(
        test_marked="""
        import pytest
        from pytest_rewardkit import EvaluateResult, reward_function

        @reward_function
        def lenient(messages, ground_truth=None, **kwargs):
            return EvaluateResult(score=1.0, reason="always")

        @pytest.mark.rewardkit("suite")
        def test_rows(rk_case):
            rk_case.evaluate(reward=lenient)
        """
    )
    result = pytester.runpytest("suite", "test_marked.py", "--rk-min-pass-rate", "0.6", "--rk-output", "")
    assert result.ret == FAILED
    result.stdout.fnmatch_lines(["rewardkit gate: FAILED (conflicting verdicts: suite/dataset row b (*)) -> exit 1"])


# --- item 10: datasets -------------------------------------------------------------------------


def test_an_empty_dataset_is_a_collection_error_naming_the_file(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    folder = make_suite([chat_row("a", "1", "1")])
    (folder / "dataset.jsonl").write_text("", encoding="utf-8")
    result = pytester.runpytest("--rk-output", "", "--rk-min-pass-rate", "0.5")
    assert result.ret == INTERRUPTED
    result.stdout.fnmatch_lines([f"*{folder / 'dataset.jsonl'} has no rows*"])


def test_one_non_utf8_row_loses_only_itself(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    folder = make_suite([chat_row("a", "1", "1"), chat_row("b", "2", "2")])
    dataset = folder / "dataset.jsonl"
    dataset.write_bytes(dataset.read_bytes() + b'{"id": "c", "messages": [{"role": "user", "content": "\xff"}]}\n')
    result = pytester.runpytest("--rk-output", "")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines([f"*{dataset}:3: not UTF-8 text*"])


# --- item 5: a suite's own reward module is its own ------------------------------------------


def own_reward_suite(pytester: pytest.Pytester, parent: str, score: float) -> None:
    folder = pytester.path / parent / "capitals"
    folder.mkdir(parents=True)
    (folder / "my_rewards.py").write_text(
        "from pytest_rewardkit import EvaluateResult, reward_function\n\n\n"
        "@reward_function\n"
        "def score(messages, ground_truth=None, **kwargs):\n"
        f"    return EvaluateResult(score={score}, reason='from {parent}')\n",
        encoding="utf-8",
    )
    (folder / "rewardkit.yaml").write_text("reward: my_rewards:score\n", encoding="utf-8")
    row = '{"id": "r0", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n'
    (folder / "dataset.jsonl").write_text(row, encoding="utf-8")


@pytest.mark.parametrize("order", [("a", "b"), ("b", "a")])
def test_same_named_reward_modules_of_two_suites_stay_apart(
    quiet_pytester: pytest.Pytester, order: tuple[str, str]
) -> None:
    own_reward_suite(quiet_pytester, "a", 1.0)
    own_reward_suite(quiet_pytester, "b", 0.0)
    result = quiet_pytester.runpytest(*order, "-v", "--rk-output", "")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines_random(
        ["a/capitals/rewardkit.yaml::r0 PASSED*", "b/capitals/rewardkit.yaml::r0 FAILED*"]
    )
    result.stdout.fnmatch_lines(["*score 0.000: from b"])


# --- item 8: reward problems are one collection error ------------------------------------------


def broken_reward_suite(pytester: pytest.Pytester, module: str, reward: str = "rk_broken:score") -> Path:
    folder = pytester.path / "suite"
    folder.mkdir()
    (folder / "rk_broken.py").write_text(module, encoding="utf-8")
    (folder / "rewardkit.yaml").write_text(f"reward: {reward}\n", encoding="utf-8")
    rows = "".join(
        f'{{"id": "r{i}", "messages": [{{"role": "user", "content": "q"}}, {{"role": "assistant", "content": "a"}}]}}\n'
        for i in range(6)
    )
    (folder / "dataset.jsonl").write_text(rows, encoding="utf-8")
    return folder


GOOD_REWARD = (
    "from pytest_rewardkit import EvaluateResult, reward_function\n\n\n"
    "@reward_function\n"
    "def score(messages, ground_truth=None, **kwargs):\n"
    "    return EvaluateResult(score=1.0)\n"
)


@pytest.mark.parametrize(
    ("module", "reward", "said"),
    [
        (GOOD_REWARD, "no_such_reward", "*reward 'no_such_reward': unknown reward 'no_such_reward': use a built-in*"),
        (GOOD_REWARD, "rk_broken:missing", "*reward 'rk_broken:missing': *has no attribute 'missing'*"),
        ("def score(:\n", "rk_broken:score", "*reward 'rk_broken:score': SyntaxError: * (*suite/rk_broken.py:1)*"),
        (
            "import os\nraise RuntimeError('no config')\n",
            "rk_broken:score",
            "*reward 'rk_broken:score': RuntimeError: no config (*suite/rk_broken.py:2)*",
        ),
        (
            "from pytest_rewardkit import reward_function\n\n\n@reward_function\ndef score(messages):\n    pass\n",
            "rk_broken:score",
            "*reward 'rk_broken:score': *must accept **kwargs* (*suite/rk_broken.py:4)*",
        ),
    ],
    ids=["unknown", "missing-function", "syntax-error", "import-raises", "refused-signature"],
)
def test_a_reward_problem_is_one_collection_error_naming_yaml_reward_and_cause(
    quiet_pytester: pytest.Pytester, module: str, reward: str, said: str
) -> None:
    folder = broken_reward_suite(quiet_pytester, module, reward)
    quiet = ("-W", "ignore::pytest.PytestAssertRewriteWarning")  # an inline run's own warning
    collected = quiet_pytester.runpytest("--co", "-q", *quiet)
    assert collected.ret == INTERRUPTED
    result = quiet_pytester.runpytest("--rk-output", "", *quiet)
    assert result.ret == INTERRUPTED
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*{folder / 'rewardkit.yaml'}: {said[1:]}"])
    output = result.stdout.str()
    assert "_pytest" not in output and "pytest_rewardkit/" not in output
    assert len(result.stdout.lines) < 30, output


def test_a_marked_test_over_a_suite_with_a_broken_reward_is_one_error(quiet_pytester: pytest.Pytester) -> None:
    broken_reward_suite(quiet_pytester, "raise RuntimeError('no config')\n")
    quiet_pytester.makepyfile(
        test_marked="""
        import pytest

        @pytest.mark.rewardkit("suite")
        def test_rows(rk_case):
            rk_case.evaluate()
        """
    )
    result = quiet_pytester.runpytest(
        "test_marked.py", "--rk-output", "", "-W", "ignore::pytest.PytestAssertRewriteWarning"
    )
    assert result.ret != OK
    output = result.stdout.str() + result.stderr.str()
    body = [line for line in result.stdout.lines if not line.startswith("ERROR ")]  # not the short summary
    assert sum("RuntimeError: no config" in line for line in body) == 1
    assert "_pytest" not in output and len(result.stdout.lines) < 30


# --- item 9: a reward that hangs --------------------------------------------------------------

HANGING_REWARD = """
import time

from pytest_rewardkit import EvaluateResult, reward_function


@reward_function
def sometimes_hangs(messages, ground_truth=None, **kwargs):
    if messages[-1].content == "hang":
        time.sleep(3600)
    if messages[-1].content == "spin":
        while True:
            pass
    return EvaluateResult(score=1.0)
"""


def test_a_hanging_reward_is_that_rows_error_and_the_run_goes_on(quiet_pytester: pytest.Pytester, xdist: bool) -> None:
    folder = quiet_pytester.path / "suite"
    folder.mkdir()
    (folder / "rk_slow.py").write_text(HANGING_REWARD, encoding="utf-8")
    (folder / "rewardkit.yaml").write_text(
        "reward: {name: 'rk_slow:sometimes_hangs', timeout: 0.5}\n", encoding="utf-8"
    )
    rows = [("a", "ok"), ("b", "hang"), ("c", "spin"), ("d", "ok")]
    lines = [
        {"id": i, "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": c}]} for i, c in rows
    ]
    (folder / "dataset.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    started = time.monotonic()
    result = run(quiet_pytester, xdist, "--rk-min-pass-rate", "0.5", "--rk-max-error-rate", "0.5")
    assert time.monotonic() - started < 30
    result.assert_outcomes(passed=2, errors=2)
    assert result.ret == OK
    result.stdout.fnmatch_lines(
        ["*reward 'sometimes_hangs' did not finish within 0.5 s (reward.timeout in rewardkit.yaml)*"]
    )


def test_reward_timeout_is_checked_with_the_suite(quiet_pytester: pytest.Pytester) -> None:
    broken_reward_suite(quiet_pytester, GOOD_REWARD)
    (quiet_pytester.path / "suite" / "rewardkit.yaml").write_text(
        "reward: {name: 'rk_broken:score', timeout: 0}\n", encoding="utf-8"
    )
    result = quiet_pytester.runpytest("--rk-output", "")
    assert result.ret == INTERRUPTED
    result.stdout.fnmatch_lines(["*reward.timeout: Input should be greater than 0*"])


# --- item 16: every runtime dependency is used by the runtime -----------------------------------

IMPORT_NAMES = {"pyyaml": "yaml", "math-verify": "math_verify"}


def test_every_runtime_dependency_is_imported_by_the_package() -> None:
    import re
    import tomllib

    root = Path(__file__).resolve().parent.parent
    dependencies = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    source = "\n".join(p.read_text(encoding="utf-8") for p in (root / "pytest_rewardkit").rglob("*.py"))
    unused = []
    for requirement in dependencies:
        name = re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0].lower()
        module = IMPORT_NAMES.get(name, name.replace("-", "_"))
        if not re.search(rf"^\s*(import|from) {module}\b", source, re.M):
            unused.append(name)
    assert unused == [], f"runtime dependencies the package never imports (move them to the extra that does): {unused}"


# --- item 11: --rk-output -----------------------------------------------------------------------


def test_an_unwritable_output_is_a_usage_error_at_start_up(pytester: pytest.Pytester, low_suite: None) -> None:
    (pytester.path / "taken.txt").write_text("x", encoding="utf-8")
    result = pytester.runpytest("--rk-output", "taken.txt/out")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--rk-output: cannot create" in result.stderr.str() and "taken.txt is a file" in result.stderr.str()
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_output_resolves_against_the_invocation_directory(pytester: pytest.Pytester, low_suite: None) -> None:
    sub = pytester.mkdir("sub")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(sub)
        pytester.runpytest(str(pytester.path / "suite"), f"--rootdir={pytester.path}", "--rk-output", "out")
    assert (sub / "out" / "results.jsonl").is_file()
    assert not (pytester.path / "out").exists()


# --- item 12: messages say the right thing --------------------------------------------------------


def test_a_reward_returning_a_float_points_at_the_users_function(quiet_pytester: pytest.Pytester) -> None:
    folder = broken_reward_suite(
        quiet_pytester,
        "from pytest_rewardkit import reward_function\n\n\n@reward_function\n"
        "def score(messages, ground_truth=None, **kwargs):\n    return 0.5\n",
    )
    result = quiet_pytester.runpytest("--rk-output", "", "--rk-limit", "1")
    result.stdout.fnmatch_lines([f"*reward function 'score' ({folder / 'rk_broken.py'}:4) returned float;*"])
    assert "reward.py" not in result.stdout.str()


def test_rk_k_without_a_model_advises_a_command_that_works(pytester: pytest.Pytester, low_suite: None) -> None:
    result = pytester.runpytest("--rk-k", "2", "--rk-output", "")
    result.stdout.fnmatch_lines(
        [
            "*pass@2 needs at least 2 variants per row, but n is 1; lower --rk-k to 1, or generate 2 responses per row "
            "with --rk-model <model> --rk-n 2*"
        ]
    )


@pytest.mark.parametrize("value", ["nan", "inf", "1.5"])
def test_threshold_out_of_range_says_what_is_allowed(quiet_pytester: pytest.Pytester, value: str) -> None:
    result = quiet_pytester.runpytest("--rk-threshold", value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--rk-threshold: expected a number from 0 to 1" in result.stderr.str()


# --- item 13: truncated cassettes -----------------------------------------------------------------


def test_a_truncated_cassette_is_diagnosed_as_truncated_naming_file_and_line(tmp_path: Path) -> None:
    from pytest_rewardkit.errors import CassetteError
    from pytest_rewardkit.recording import RowCassette

    committed = next((Path(__file__).parent.parent / "cassettes" / "math" / "gpt3-gsm8k-solutions").glob("*.yaml"))
    lines = committed.read_text(encoding="utf-8").splitlines(keepends=True)
    assert RowCassette.load(committed).interactions  # the whole file reads
    cut = tmp_path / "cut.yaml"
    for keep in (len(lines) - 1, len(lines) // 2, 3):
        cut.write_text("".join(lines[:keep]), encoding="utf-8")
        with pytest.raises(CassetteError, match=rf"{cut}:\d+(:\d+)?: truncated cassette") as caught:
            RowCassette.load(cut)
        assert "no recorded request matches" not in str(caught.value)


# --- per-suite gates in YAML (issue 17, item 4) ------------------------------------------------

TWO_OF_THREE = [("a", "1", "1"), ("b", "2", "3"), ("c", "3", "3")]


def two_suites(make_suite: MakeSuite, chat_row: ChatRow, gate_a: dict | None, gate_b: dict | None) -> None:
    """Suites `a` and `b`, each passing 2 of 3 rows, with the given `gate:` (None: no gate)."""
    for folder, gate in (("a", gate_a), ("b", gate_b)):
        config = {"gate": gate} if gate is not None else {}
        make_suite([chat_row(*row) for row in TWO_OF_THREE], folder=folder, **config)


def test_two_suites_with_different_yaml_gates(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow, xdist: bool
) -> None:
    two_suites(make_suite, chat_row, {"min_pass_rate": 0.6}, {"min_pass_rate": 0.9})
    missed = run(pytester, xdist)
    assert missed.ret == FAILED
    missed.stdout.fnmatch_lines(["rewardkit gate: FAILED (below: b/dataset 66.7% < 90.0%) -> exit 1"])
    assert "a/dataset 66.7%" not in missed.stdout.str()
    two_suites(make_suite, chat_row, {"min_pass_rate": 0.6}, {"min_pass_rate": 0.5, "max_error_rate": 0.1})
    met = run(pytester, xdist)
    assert met.ret == OK
    met.stdout.fnmatch_lines(
        [
            "rewardkit gate: PASSED (a/dataset pass rate >= 60.0%, error rate <= 0.0%; "
            "b/dataset pass rate >= 50.0%, error rate <= 10.0%) -> exit 0"
        ]
    )


def test_the_command_line_overrides_every_suites_yaml_gate(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    two_suites(make_suite, chat_row, {"min_pass_rate": 0.9}, {"min_pass_rate": 0.1})
    assert run(pytester, False).ret == FAILED
    lowered = run(pytester, False, "--rk-min-pass-rate", "0.6")
    assert lowered.ret == OK
    lowered.stdout.fnmatch_lines(["rewardkit gate: PASSED (every pass rate >= 60.0%, error rate <= 0.0%) -> exit 0"])
    raised = run(pytester, False, "--rk-min-pass-rate", "0.7")
    assert raised.ret == FAILED
    raised.stdout.fnmatch_lines(["*below: a/dataset 66.7%, b/dataset 66.7%*"])


def test_a_lower_bound_gate_fails_where_the_point_estimate_passes_and_says_it_straddles(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    rows = [chat_row(f"r{i}", "1", "1" if i else "2") for i in range(10)]  # 9 of 10 pass
    make_suite(rows, gate={"min_pass_rate": 0.8})
    assert run(pytester, False).ret == OK
    make_suite(rows, gate={"min_pass_rate": 0.8, "on": "lower_bound"})
    result = run(pytester, False)
    assert result.ret == FAILED
    # 9/10: Wilson 59.6%-98.2%; at 90% the lower bound clears 80% from 62 rows on.
    result.stdout.fnmatch_lines(
        [
            "rewardkit gate: FAILED (below: suite/dataset 95% CI 59.6%-98.2% (pass rate 90.0%) not all >= 80.0%: "
            "the interval straddles the bar, about 62 rows at 90.0% would settle it) -> exit 1"
        ]
    )
    rows = [chat_row(f"r{i}", "1", "1") for i in range(40)]  # 40 of 40: lower bound 91.2%
    make_suite(rows, gate={"min_pass_rate": 0.8, "on": "lower_bound"})
    met = run(pytester, False)
    assert met.ret == OK
    met.stdout.fnmatch_lines(["rewardkit gate: PASSED (suite/dataset pass rate's 95% lower bound >= 80.0%*-> exit 0"])


def test_an_ungated_suites_low_rows_keep_exit_1_when_the_other_suites_gate_is_met(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow, xdist: bool
) -> None:
    two_suites(make_suite, chat_row, {"min_pass_rate": 0.6}, None)
    result = run(pytester, xdist)
    assert result.ret == FAILED
    result.stdout.fnmatch_lines(
        [
            "rewardkit gate: PASSED (a/dataset pass rate >= 60.0%, error rate <= 0.0%); "
            "exit 1: low or errored rows of suites without a gate (b/dataset 1)*"
        ]
    )
    two_suites(make_suite, chat_row, {"min_pass_rate": 0.6}, {"min_pass_rate": 0.6})
    assert run(pytester, xdist).ret == OK


def test_rows_to_settle() -> None:
    from pytest_rewardkit.report import rows_to_settle, wilson_interval

    rows = rows_to_settle(0.9, 0.8)
    assert rows is not None
    assert wilson_interval(0.9 * rows, rows)[0] >= 0.8 > wilson_interval(0.9 * (rows - 1), rows - 1)[0]
    below = rows_to_settle(0.7, 0.8)
    assert below is not None and wilson_interval(0.7 * below, below)[1] < 0.8
    assert rows_to_settle(0.8, 0.8) is None
