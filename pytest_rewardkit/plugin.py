"""pytest hooks. Each stays thin: the work is in plain modules that are tested on their own."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from pytest_rewardkit.collection import (
    OPTIONS_KEY,
    PROPERTY,
    BoundCase,
    SuiteFile,
    bind_case,
    close_generator,
    marker_cases,
    prefetch_upcoming,
)
from pytest_rewardkit.config import CONFIG_NAMES, ConfigError, Options, parse_options
from pytest_rewardkit.evaluation import RowOutcome
from pytest_rewardkit.report import GateVerdict, ResultsWriter, format_summary, gate, summarize


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rewardkit", "reward evaluation over datasets (pytest-rewardkit)")
    group.addoption("--rk-model", help="model alias or full name to generate responses with")
    group.addoption("--rk-n", type=int, help="responses (variants) per row; needs --rk-model")
    group.addoption("--rk-threshold", type=float, help="reward a row needs to pass, in [0, 1]")
    group.addoption(
        "--rk-min-pass-rate",
        type=float,
        help="gate: exit 0 only when every (dataset, model) pass rate reaches this, in [0, 1]",
    )
    group.addoption("--rk-k", help="comma-separated k values for pass@k and pass^k, e.g. 1,4")
    group.addoption("--rk-limit", type=int, help="only the first N rows of each dataset")
    group.addoption(
        "--rk-output",
        default="rewardkit-results",
        help="directory for results.jsonl and summary.json (default: %(default)s; '' disables)",
    )
    group.addoption("--rk-group-by", action="append", help="break the pass rate down by a row field")
    group.addoption("--rk-base-url", help="OpenAI-compatible endpoint (default: Fireworks)")
    group.addoption("--rk-concurrency", type=int, help="model requests in flight per process (default 16)")
    group.addoption("--rk-cassette-dir", help="where cassettes live (default: <rootdir>/cassettes)")
    group.addoption("--rk-api-key-env", help="environment variable that holds the API key (default FIREWORKS_API_KEY)")
    group.addoption("--rk-request-timeout", type=float, help="seconds to wait for a model response (default 120)")
    if importlib.util.find_spec("pytest_recording") is None:
        # pytest-recording owns --record-mode when installed; we read the same option.
        group.addoption(
            "--record-mode",
            dest="record_mode",
            choices=["none", "once", "new_episodes", "all"],
            default="none",
            help="cassette record mode: none (replay only, default), once, new_episodes, all",
        )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "rewardkit(suite): run this test once per row of the suite's dataset (fixture rk_case)"
    )
    raw = {
        "model": config.getoption("rk_model"),
        "n": config.getoption("rk_n"),
        "threshold": config.getoption("rk_threshold"),
        "min_pass_rate": config.getoption("rk_min_pass_rate"),
        "k": config.getoption("rk_k"),
        "limit": config.getoption("rk_limit"),
        "output": config.getoption("rk_output") or None,
        "group_by": config.getoption("rk_group_by"),
        "base_url": config.getoption("rk_base_url"),
        "concurrency": config.getoption("rk_concurrency"),
        "cassette_dir": config.getoption("rk_cassette_dir"),
        "api_key_env": config.getoption("rk_api_key_env"),
        "request_timeout": config.getoption("rk_request_timeout"),
        # pytest-recording's "rewrite" re-records everything, which is our "all".
        "record_mode": {"rewrite": "all"}.get(config.getoption("record_mode"), config.getoption("record_mode")),
    }
    try:
        options = parse_options(raw)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from exc
    config.stash[OPTIONS_KEY] = options
    if not hasattr(config, "workerinput"):
        output = options.output
        if output is not None and not output.is_absolute():
            output = config.rootpath / output
        config.pluginmanager.register(RunRecorder(options, output), "rewardkit-recorder")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.name in CONFIG_NAMES:
        return SuiteFile.from_parent(parent, path=file_path)
    return None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("rewardkit")
    if marker is None or "rk_case" not in metafunc.fixturenames:
        return
    if not marker.args:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: @pytest.mark.rewardkit needs a suite folder")
    try:
        params, ids = marker_cases(metafunc.config, metafunc.definition.path, str(marker.args[0]))
    except ConfigError as exc:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: {exc}") from exc
    metafunc.parametrize("rk_case", params, ids=ids, indirect=True)


def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    prefetch_upcoming(item)


def pytest_sessionfinish(session: pytest.Session) -> None:
    close_generator(session.config)


@pytest.fixture
def rk_case(request: pytest.FixtureRequest) -> BoundCase:
    """The current dataset row of a test marked `@pytest.mark.rewardkit('<suite>')`."""
    return bind_case(request)


class RunRecorder:
    """The controller's view of the run: every row outcome, the result files, the gate."""

    def __init__(self, options: Options, output: Path | None) -> None:
        self.options = options
        self.output = output
        self.outcomes: list[RowOutcome] = []
        self.writer: ResultsWriter | None = None
        self.verdict: GateVerdict | None = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        ours = [value for name, value in report.user_properties if name == PROPERTY]
        if not ours:
            return
        # Taken off the report so that junitxml and friends do not print whole conversations.
        report.user_properties = [(n, v) for n, v in report.user_properties if n != PROPERTY]
        if report.when != "teardown":
            return
        for value in ours:
            outcome = RowOutcome.model_validate(value)
            self.outcomes.append(outcome)
            if self.output is not None:
                if self.writer is None:
                    self.writer = ResultsWriter(self.output)
                self.writer.write(outcome)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        summaries = summarize(self.outcomes, self.options.k)
        gated = self.options.min_pass_rate is not None
        if gated and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            assert self.options.min_pass_rate is not None
            self.verdict = gate(summaries, self.options.min_pass_rate)
            session.exitstatus = pytest.ExitCode.OK if self.verdict.met else pytest.ExitCode.TESTS_FAILED
        if self.writer is not None:
            self.writer.finish(summaries, self.verdict)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.outcomes:
            terminalreporter.write_sep("=", "rewardkit summary")
            for line in format_summary(summarize(self.outcomes, self.options.k)):
                terminalreporter.write_line(line)
            if self.writer is not None:
                terminalreporter.write_line(f"results: {self.writer.directory}")
        if self.verdict is not None:
            ok = self.verdict.met
            terminalreporter.write_line(self.verdict.line, green=ok, red=not ok, bold=True)
