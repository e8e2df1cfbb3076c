"""pytest hooks. Each stays thin: the work is in plain modules that are tested on their own.

This module loads in every pytest run of a project that has the plugin installed, so it imports
nothing heavy: the rest of the package is imported when a suite or an --rk-* option shows up.
"""

from __future__ import annotations

import gc
import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_rewardkit.state import CONFIG_NAMES, GENERATOR_KEY, OUTCOME_KEY, PROPERTY, RAW_OPTIONS_KEY, options

if TYPE_CHECKING:
    from pytest_rewardkit.collection import BoundCase
    from pytest_rewardkit.evaluation import RowOutcome
    from pytest_rewardkit.report import GateVerdict, ResultsWriter, SuiteSummary

DEFAULT_OUTPUT = "rewardkit-results"


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
        default=DEFAULT_OUTPUT,
        help="directory for results.jsonl and summary.json (default: %(default)s; '' disables)",
    )
    group.addoption("--rk-html", help="write a self-contained HTML report of the run to this file")
    group.addoption("--rk-group-by", action="append", help="break the pass rate down by a row field")
    group.addoption("--rk-base-url", help="OpenAI-compatible endpoint (default: Fireworks)")
    group.addoption("--rk-concurrency", type=int, help="model requests in flight per process (default 16)")
    group.addoption("--rk-cassette-dir", help="where cassettes live (default: <rootdir>/cassettes)")
    group.addoption("--rk-api-key-env", help="environment variable that holds the API key (default FIREWORKS_API_KEY)")
    group.addoption("--rk-request-timeout", type=float, help="seconds to wait for a model response (default 120)")
    group.addoption("--rk-temperature", type=float, help="sampling temperature (overrides the suite's)")
    group.addoption("--rk-top-p", type=float, help="nucleus sampling top_p (overrides the suite's)")
    group.addoption("--rk-max-tokens", type=int, help="maximum tokens per response (overrides the suite's)")
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
    record_mode = config.getoption("record_mode", "none")
    raw: dict[str, Any] = {
        "model": config.getoption("rk_model"),
        "n": config.getoption("rk_n"),
        "threshold": config.getoption("rk_threshold"),
        "min_pass_rate": config.getoption("rk_min_pass_rate"),
        "k": config.getoption("rk_k"),
        "limit": config.getoption("rk_limit"),
        "group_by": config.getoption("rk_group_by"),
        "base_url": config.getoption("rk_base_url"),
        "concurrency": config.getoption("rk_concurrency"),
        "cassette_dir": config.getoption("rk_cassette_dir"),
        "api_key_env": config.getoption("rk_api_key_env"),
        "request_timeout": config.getoption("rk_request_timeout"),
        "temperature": config.getoption("rk_temperature"),
        "top_p": config.getoption("rk_top_p"),
        "max_tokens": config.getoption("rk_max_tokens"),
        # pytest-recording's "rewrite" re-records everything, which is our "all".
        "record_mode": "all" if record_mode == "rewrite" else record_mode,
    }
    output = config.getoption("rk_output")
    html = config.getoption("rk_html")
    # Like --junitxml, the report path is relative to where pytest was started.
    raw["html"] = str(config.invocation_params.dir / html) if html else None
    config.stash[RAW_OPTIONS_KEY] = {**raw, "output": output or None}
    if any(v is not None for k, v in raw.items() if k != "record_mode") or output != DEFAULT_OUTPUT:
        options(config)  # an explicit --rk-* value is checked now: a bad one is a usage error at start-up
    if not hasattr(config, "workerinput"):
        target = Path(output) if output else None
        if target is not None and not target.is_absolute():
            target = config.rootpath / target
        config.pluginmanager.register(RunRecorder(config, target), "rewardkit-recorder")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.name in CONFIG_NAMES:
        from pytest_rewardkit.collection import SuiteFile

        return SuiteFile.from_parent(parent, path=file_path)
    return None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("rewardkit")
    if marker is None or "rk_case" not in metafunc.fixturenames:
        return
    from pytest_rewardkit.collection import marker_cases
    from pytest_rewardkit.config import ConfigError

    if not marker.args:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: @pytest.mark.rewardkit needs a suite folder")
    try:
        params, ids = marker_cases(metafunc.config, metafunc.definition.path, str(marker.args[0]))
    except ConfigError as exc:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: {exc}") from exc
    metafunc.parametrize("rk_case", params, ids=ids, indirect=True)


def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if options(item.config).record_mode != "none":
        from pytest_rewardkit.collection import prefetch_upcoming

        prefetch_upcoming(item)


def pytest_runtest_teardown(item: pytest.Item) -> None:
    # The outcome rides on the teardown report only: the one channel from xdist workers to the
    # controller, where the summary is computed, and sent once rather than with every phase.
    outcome = item.stash.get(OUTCOME_KEY, None)
    if outcome is not None:
        item.user_properties.append((PROPERTY, outcome.model_dump(mode="json")))
        # The controller keeps its own copy: the item's would hold every response twice until exit.
        del item.stash[OUTCOME_KEY]


def pytest_collection_finish(session: pytest.Session) -> None:
    # Rows, settings and the reward's caches live until the end of the run: frozen, they are not
    # re-scanned by every garbage collection the row loop triggers (a third of replay time).
    # Only in runs that hold suites, so that other test suites keep pytest's usual behaviour.
    collection = sys.modules.get("pytest_rewardkit.collection")
    if collection is not None and any(isinstance(item, collection.RowItem) for item in session.items):
        gc.freeze()


def pytest_sessionfinish(session: pytest.Session) -> None:
    generator = session.config.stash.get(GENERATOR_KEY, None)
    if generator is not None:
        generator.close()


@pytest.fixture
def rk_case(request: pytest.FixtureRequest) -> BoundCase:
    """The current dataset row of a test marked `@pytest.mark.rewardkit('<suite>')`."""
    from pytest_rewardkit.collection import bind_case

    return bind_case(request)


class RunRecorder:
    """The controller's view of the run: every row outcome, the result files, the gate."""

    def __init__(self, config: pytest.Config, output: Path | None) -> None:
        self.config = config
        self.output = output
        self.outcomes: list[RowOutcome] = []
        self.writer: ResultsWriter | None = None
        self.verdict: GateVerdict | None = None
        self.summaries: list[SuiteSummary] = []
        self.html: Path | None = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        ours = [value for name, value in report.user_properties if name == PROPERTY]
        if not ours:
            return
        # Taken off the report so that junitxml and friends do not print whole conversations.
        report.user_properties = [(n, v) for n, v in report.user_properties if n != PROPERTY]
        if report.when != "teardown":
            return
        from pytest_rewardkit.evaluation import RowOutcome
        from pytest_rewardkit.report import ResultsWriter

        for value in ours:
            outcome = RowOutcome.model_validate(value)
            self.outcomes.append(outcome)
            if self.output is not None:
                if self.writer is None:
                    self.writer = ResultsWriter(self.output)
                self.writer.write(outcome)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        raw = self.config.stash[RAW_OPTIONS_KEY]
        gated = raw.get("min_pass_rate") is not None and not session.config.option.collectonly
        if not self.outcomes and not gated and raw.get("html") is None:
            return  # no suite ran and nothing asked for: nothing to say
        from pytest_rewardkit.report import gate, summarize

        opts = options(self.config)
        # Computed once here; the terminal summary, printed after this hook, shows the same figures.
        self.summaries = summarize(self.outcomes, opts.k)
        if (
            gated
            and opts.min_pass_rate is not None
            and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
        ):
            self.verdict = gate(self.summaries, opts.min_pass_rate)
            session.exitstatus = pytest.ExitCode.OK if self.verdict.met else pytest.ExitCode.TESTS_FAILED
        if self.writer is not None:
            self.writer.finish(self.summaries, self.verdict)
        if opts.html is not None and not session.config.option.collectonly:
            from pytest_rewardkit.html_report import report_payload, write_html

            write_html(opts.html, report_payload(self.summaries, self.outcomes, self.verdict))
            self.html = opts.html

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.summaries:
            from pytest_rewardkit.report import format_summary

            terminalreporter.write_sep("=", "rewardkit summary")
            for line in format_summary(self.summaries):
                terminalreporter.write_line(line)
            if self.writer is not None:
                terminalreporter.write_line(f"results: {self.writer.directory}")
        if self.html is not None:
            terminalreporter.write_line(f"report: {self.html}")

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        # The gate's verdict is the run's last line, after pytest's own counts, since it alone
        # decides the exit status.
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if self.verdict is not None and reporter is not None:
            ok = self.verdict.met
            reporter.write_line(self.verdict.line, green=ok, red=not ok, bold=True)
