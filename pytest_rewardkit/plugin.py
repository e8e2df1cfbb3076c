"""pytest hooks. Each stays thin: the work is in plain modules that are tested on their own.

This module loads in every pytest run of a project that has the plugin installed, so it imports
nothing heavy: the rest of the package is imported when a suite or an --rk-* option shows up.
"""

from __future__ import annotations

import gc
import importlib.util
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import pytest

from pytest_rewardkit.options import add_options, read_options
from pytest_rewardkit.state import (
    CONFIG_NAMES,
    DESELECTED_KEY,
    FROZEN_KEY,
    GENERATOR_KEY,
    OUTCOME_KEY,
    PROGRESS_PLUGIN,
    PROGRESS_PROPERTY,
    PROPERTY,
    RAW_OPTIONS_KEY,
    SELECTIONS_KEY,
    SELECTIONS_OUTPUT,
    SUITE_CONFIGS_KEY,
    SUITE_CONFIGS_OUTPUT,
    WARMED_KEY,
    options,
)

if TYPE_CHECKING:
    from pytest_rewardkit.baseline import Comparison
    from pytest_rewardkit.collection import BoundCase
    from pytest_rewardkit.evaluation import RowOutcome
    from pytest_rewardkit.evaluators.run import RunPreview
    from pytest_rewardkit.outcomes import ResultsWriter
    from pytest_rewardkit.report import GateVerdict, ScoredTwice, Selection, SuiteSummary
    from pytest_rewardkit.testing import FakeChatServer


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rewardkit", "reward evaluation over datasets (pytest-rewardkit)")
    add_options(group, installed=lambda name: importlib.util.find_spec(name) is not None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "rewardkit(suite): run this test once per row of the suite's dataset (fixture rk_case)"
    )
    raw, explicit = read_options(config)
    config.stash[RAW_OPTIONS_KEY] = raw
    # Registered before pytest's own plugins register theirs (this hook runs first), so it runs
    # after them: pytest's garbage collections at the end of the run still skip what was frozen.
    config.add_cleanup(lambda: _unfreeze(config))
    if explicit:
        options(config)  # an explicit --rk-* value is checked now: a bad one is a usage error at start-up
    if not hasattr(config, "workerinput"):
        output = raw["output"]  # absolute (see the option's normalizer)
        config.pluginmanager.register(RunRecorder(config, Path(output) if output else None), "rewardkit-recorder")
        if raw["record_mode"] != "none" and config.option.verbose >= 0:
            from pytest_rewardkit.progress import ProgressReporter

            config.pluginmanager.register(ProgressReporter(config), PROGRESS_PLUGIN)


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
    from pytest_rewardkit.errors import ConfigError

    # A CollectError is reported as its message alone: one error for the test, no pytest frames.
    if not marker.args:
        raise pytest.Collector.CollectError(
            f"{metafunc.definition.nodeid}: @pytest.mark.rewardkit needs a suite folder"
        )
    try:
        params, ids = marker_cases(metafunc.config, metafunc.definition.path, str(marker.args[0]))
    except ConfigError as exc:
        raise pytest.Collector.CollectError(f"{metafunc.definition.nodeid}: {exc}") from None
    metafunc.parametrize("rk_case", params, ids=ids, indirect=True)


def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    # The raw value: validating the options imports pydantic, a cost to every test of the project.
    if item.config.stash[RAW_OPTIONS_KEY]["record_mode"] != "none":
        from pytest_rewardkit.collection import prefetch_upcoming

        prefetch_upcoming(item, nextitem)


def pytest_runtest_teardown(item: pytest.Item) -> None:
    # The outcome rides on the teardown report only: the one channel from xdist workers to the
    # controller, where the summary is computed, and sent once rather than with every phase.
    outcome = item.stash.get(OUTCOME_KEY, None)
    if outcome is not None:
        # Only a report that crosses from an xdist worker needs plain data; in-process, the
        # recorder takes the object itself instead of validating a dump of it again.
        value = outcome.model_dump(mode="json") if hasattr(item.config, "workerinput") else outcome
        item.user_properties.append((PROPERTY, value))
        # The controller keeps its own copy: the item's would hold every response twice until exit.
        del item.stash[OUTCOME_KEY]
        workeroutput = getattr(item.config, "workeroutput", None)
        if workeroutput is not None and SELECTIONS_OUTPUT in workeroutput:
            # workeroutput reaches the controller only when the worker ends cleanly: a run interrupted
            # under xdist would not know how many rows it was meant to score.
            item.user_properties.append((SELECTIONS_OUTPUT, workeroutput.pop(SELECTIONS_OUTPUT)))
        if item.config.stash.get(FROZEN_KEY, False):
            _freeze_after_first_row(item.config, outcome.suite)
        if GENERATOR_KEY in item.config.stash:
            from pytest_rewardkit.progress import row_finished, snapshot

            row_finished(item)
            progress = snapshot(item.config)
            if progress is not None:
                item.user_properties.append((PROGRESS_PROPERTY, progress))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report: pytest.TestReport = yield
    if call.when == "teardown" and item.user_properties:
        # The teardown report has its own copy of the outcome now: the item, alive until the end of
        # the run, must not keep every row's responses as well.
        carried = (PROPERTY, PROGRESS_PROPERTY, SELECTIONS_OUTPUT)
        item.user_properties[:] = [(n, v) for n, v in item.user_properties if n not in carried]
    collection = sys.modules.get("pytest_rewardkit.collection")
    if collection is None:
        return report
    # Marks on the report (which crosses from xdist workers as is) what the controller's gate
    # needs: which failures are a row's own verdict, the only ones it may judge, and which
    # skipped items were rows.
    # The verdict carries its suite: a gate forgives only the rows of the suites it gates.
    if report.failed and call.excinfo is not None and collection.is_verdict(call.excinfo.value):
        report.rewardkit_verdict = collection.suite_of(item)  # type: ignore[attr-defined]
    elif report.skipped and (suite := collection.suite_of(item)):
        report.rewardkit_skipped = suite  # type: ignore[attr-defined]
    return report


def pytest_deselected(items: list[pytest.Item]) -> None:
    collection = sys.modules.get("pytest_rewardkit.collection")
    if collection is None:
        return
    from pytest_rewardkit.evaluation import suite_key

    rows = items[0].config.stash.setdefault(DESELECTED_KEY, {}) if items else {}
    for item in items:
        if (row := collection.row_of(item)) is not None:
            rows.setdefault(suite_key(row[0]), set()).add(row[1])


def pytest_collection_finish(session: pytest.Session) -> None:
    collection = sys.modules.get("pytest_rewardkit.collection")
    if collection is None:
        return
    # What each (suite, model) should score, for the gate's completeness check; an xdist worker
    # sends it to the controller with its final report.
    found = collection.selections(session.items, session.config.stash.get(DESELECTED_KEY, {}))
    if hasattr(session.config, "workerinput"):
        session.config.workeroutput[SELECTIONS_OUTPUT] = [s.model_dump() for s in found]  # type: ignore[attr-defined]
    else:
        session.config.stash[SELECTIONS_KEY] = found
    if session.config.stash[RAW_OPTIONS_KEY]["evaluator"] is not None:
        from pytest_rewardkit.evaluators.run import suite_configs

        rows = [row for item in session.items if (row := collection.row_of(item)) is not None]
        if hasattr(session.config, "workerinput"):
            session.config.workeroutput[SUITE_CONFIGS_OUTPUT] = suite_configs(rows)  # type: ignore[attr-defined]
        else:
            session.config.stash[SUITE_CONFIGS_KEY] = suite_configs(rows)
    # Rows, settings and the reward's caches live until the end of the run: frozen, they are not
    # re-scanned by every garbage collection the row loop triggers (a third of replay time).
    # Only in runs that hold suites, so that other test suites keep pytest's usual behaviour.
    if any(isinstance(item, collection.RowItem) for item in session.items):
        gc.freeze()
        session.config.stash[FROZEN_KEY] = True
    if session.config.stash[RAW_OPTIONS_KEY]["record_mode"] != "none":
        from pytest_rewardkit.progress import count_rows

        count_rows(session)


def pytest_sessionfinish(session: pytest.Session) -> None:
    generator = session.config.stash.get(GENERATOR_KEY, None)
    if generator is not None:
        generator.close()


def _freeze_after_first_row(config: pytest.Config, suite: str) -> None:
    # A reward imports what it grades with on its first row (the math reward: sympy and
    # math-verify, most of the objects alive from then on); frozen too, they stop costing every
    # full collection the following rows trigger. Once per suite, so garbage is not kept.
    warmed = config.stash.setdefault(WARMED_KEY, set())
    if suite not in warmed:
        warmed.add(suite)
        gc.freeze()


def _unfreeze(config: pytest.Config) -> None:
    # The frozen objects go back to the collector: a pytest run inside this process (pytester,
    # an IDE, a notebook) must not leave them immortal for whatever runs next. A process that
    # ends with the run keeps them frozen: its exit would only collect them all again (about a
    # tenth of a replay's time).
    if config.stash.get(FROZEN_KEY, False) and not _process_ends_with_run(config):
        gc.unfreeze()


# pytest's entry points: `pytest`, `python -m pytest` and xdist workers exit when they return.
_ENTRY_POINTS = {"main", "_main", "console_main", "_console_main"}
_COMMAND_LINE = {"console_main", "_console_main"}  # `_console_main` since pytest 9.1


def _process_ends_with_run(config: pytest.Config) -> bool:
    """Whether the process exits once this run returns: an xdist worker, or a run that pytest's
    command line started (its entry point calls this run's `main` directly, not through a
    `pytest.main()` of someone else's, such as pytester's inside an outer pytest)."""
    if hasattr(config, "workerinput"):
        return True
    frame: FrameType | None = sys._getframe()
    entered = False
    while frame is not None:
        is_entry = frame.f_code.co_name in _ENTRY_POINTS and frame.f_globals.get("__name__") == "_pytest.config"
        if is_entry and frame.f_code.co_name in _COMMAND_LINE:
            return True
        if entered and not is_entry:
            return False  # this run's entry frames ended before any command line's
        entered = entered or is_entry
        frame = frame.f_back
    return False


@pytest.fixture
def rk_fake_server() -> Iterator[FakeChatServer]:
    """A `pytest_rewardkit.testing.FakeChatServer` serving on 127.0.0.1 for this test (echoes by
    default): point `--rk-base-url`-style settings at `.base_url`; `.script()` queues faults,
    `.requests` holds what it received, `.table` may be set before the first request."""
    from pytest_rewardkit.testing import FakeChatServer

    server = FakeChatServer()
    with server.running():
        yield server


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
        self.comparisons: list[Comparison] = []
        self.worker_selections: list[Selection] | None = None
        self.previews: list[RunPreview] | None = None  # --rk-evaluator's verdicts
        self.skipped: dict[str, int] = {}
        self.verdict_failures: dict[str, int] = {}  # by "suite/dataset/model"
        self.outside_failures: list[str] = []
        self.collection_errors: list[str] = []
        self.scored: dict[tuple[str, ...], tuple[str, int]] = {}  # row -> (node id, index in outcomes)
        self.scored_twice: list[ScoredTwice] = []
        self.interrupted: str | None = None  # why the run was cut short (Ctrl-C, a rewardkit stop)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            if (suite := getattr(report, "rewardkit_verdict", None)) is not None:
                self.verdict_failures[suite] = self.verdict_failures.get(suite, 0) + 1
            elif report.nodeid not in self.outside_failures:
                self.outside_failures.append(report.nodeid)
        elif report.skipped and (key := getattr(report, "rewardkit_skipped", None)):
            self.skipped[key] = self.skipped.get(key, 0) + 1
        ours = [value for name, value in report.user_properties if name == PROPERTY]
        if not ours:
            return
        for name, value in report.user_properties:
            if name == SELECTIONS_OUTPUT:
                self._take_worker_selections(value)
        # Taken off the report so that junitxml and friends do not print whole conversations.
        report.user_properties = [(n, v) for n, v in report.user_properties if n not in (PROPERTY, SELECTIONS_OUTPUT)]
        if report.when != "teardown":
            return
        from pytest_rewardkit.evaluation import RowOutcome
        from pytest_rewardkit.interrupts import sigint_held
        from pytest_rewardkit.outcomes import ResultsWriter
        from pytest_rewardkit.report import junit_properties

        # Only the HTML report shows conversations after the run; the summary needs the figures.
        # --rk-evaluator sends the responses the run scored.
        raw = self.config.stash[RAW_OPTIONS_KEY]
        keep_texts = raw.get("html") is not None or raw.get("evaluator") is not None
        for value in ours:
            outcome = value if isinstance(value, RowOutcome) else RowOutcome.model_validate(value)
            kept = outcome if keep_texts else outcome.without_texts()
            # Counted and written in one step: a Ctrl-C in between would leave summary.json's
            # rows_finished and the result files disagreeing.
            with sigint_held():
                if not self._count_once(kept, report.nodeid):
                    continue
                self.outcomes.append(kept)
                if self.output is not None:
                    if self.writer is None:
                        self.writer = ResultsWriter(self.output)
                    self.writer.write(outcome)
            report.user_properties.extend(junit_properties(outcome))

    def _count_once(self, outcome: RowOutcome, nodeid: str) -> bool:
        """Whether the outcome is counted: a row scored again by another item in the same run (its
        YAML item and a marked test) is not, and is noted; the same item again (a rerun) replaces it."""
        row = (outcome.suite, outcome.dataset, outcome.model, outcome.row_id)
        first = self.scored.get(row)
        if first is None:
            self.scored[row] = (nodeid, len(self.outcomes))
            return True
        earlier = self.outcomes[first[1]]
        if first[0] == nodeid:
            self.outcomes[first[1]] = outcome
            return False
        from pytest_rewardkit.report import ScoredTwice

        conflicting = (earlier.passed, earlier.error is None) != (outcome.passed, outcome.error is None)
        self.scored_twice.append(
            ScoredTwice(
                suite=outcome.suite,
                dataset=outcome.dataset,
                model=outcome.model,
                row_id=outcome.row_id,
                first=first[0],
                second=nodeid,
                conflicting=conflicting,
            )
        )
        return False

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_errors.append(report.nodeid or "(session)")

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        found = getattr(node, "workeroutput", {}).get(SELECTIONS_OUTPUT)
        if found is not None:
            self._take_worker_selections(found)
        configs = getattr(node, "workeroutput", {}).get(SUITE_CONFIGS_OUTPUT)
        if configs is not None:
            self.config.stash.setdefault(SUITE_CONFIGS_KEY, []).extend(configs)

    def _take_worker_selections(self, found: Any) -> None:
        # Every xdist worker collects the same items; the first report of what they hold is kept.
        if self.worker_selections is None:
            from pytest_rewardkit.report import Selection

            self.worker_selections = [Selection.model_validate(s) for s in found]

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        # Ctrl-C, and also a session stopped early (serial or by the xdist controller).
        self.interrupted = str(excinfo.value) or excinfo.typename

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        # Decided on the raw values: a project's other test runs end here without validating the
        # options, which imports pydantic.
        raw = self.config.stash[RAW_OPTIONS_KEY]
        collect_only = session.config.option.collectonly
        selections = self._selections()
        gated = (
            raw["min_pass_rate"] is not None
            or raw["max_regressions"] is not None
            or any(s.gate is not None for s in selections)
        ) and not collect_only
        asked = raw["html"] is not None or raw["shard"] is not None or raw["baseline"] is not None
        if not self.outcomes and not gated and not asked:
            return  # no suite ran and nothing asked for: nothing to say
        opts = options(self.config)
        from pytest_rewardkit.outcomes import OutcomesError, ResultsWriter
        from pytest_rewardkit.report import annotate, run_verdict, summarize

        facts = self._facts(session, selections)
        # Computed once here; the terminal summary, printed after this hook, shows the same figures.
        self.summaries = annotate(summarize(self.outcomes, opts.k), facts)
        regressions: list[str] = []
        if opts.baseline is not None and not collect_only:
            from pytest_rewardkit.baseline import compare, load_baseline, regression_reasons

            try:
                baseline, label = load_baseline(opts.baseline)
            except OutcomesError as exc:
                raise pytest.UsageError(f"--rk-baseline: {exc}") from exc
            self.comparisons = compare(self.outcomes, baseline, label)
            if opts.max_regressions is not None:
                regressions = regression_reasons(self.comparisons, opts.max_regressions)
        if gated:
            # The same judgement merge makes of the shards' folders (report.run_verdict).
            self.verdict = run_verdict(self.summaries, facts, int(exitstatus), regressions)
            if self.verdict is not None:
                session.exitstatus = self.verdict.exit_status
        if opts.evaluator is not None and self.outcomes and not collect_only:
            from pytest_rewardkit.evaluators.run import preview_session

            configs: list[list[str]] = self.config.stash.get(SUITE_CONFIGS_KEY, [])
            self.previews = preview_session(self.config, self.outcomes, configs)
            if not all(p.ok for p in self.previews) and session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if self.writer is None and self.output is not None and not collect_only:
            self.writer = ResultsWriter(self.output)  # a shard without rows still reports what it selected
        if self.writer is not None:
            from pytest_rewardkit.report import RunStatus

            run = RunStatus(
                interrupted=self.interrupted is not None or exitstatus == pytest.ExitCode.INTERRUPTED,
                reason=self.interrupted,
                rows_finished=len(self.outcomes),
                # Rows, not pytest's items: ordinary tests are collected again by every shard.
                rows_collected=sum(s.selected + s.deselected for s in selections),
            )
            previews = [p.model_dump() for p in self.previews] if self.previews is not None else None
            self.writer.finish(self.summaries, self.verdict, run, facts, opts.k, previews)
        if opts.html is not None and not collect_only:
            from pytest_rewardkit.html_report import report_payload, write_html

            payload = report_payload(self.summaries, self.outcomes, self.verdict, comparisons=self.comparisons)
            write_html(opts.html, payload)
            self.html = opts.html

    def _selections(self) -> list[Selection]:
        """What each (suite, model) was meant to score and its gate, from this process or, under
        xdist, from a worker's report (the controller collects nothing)."""
        if self.worker_selections is not None:
            return self.worker_selections
        selections: list[Selection] = self.config.stash.get(SELECTIONS_KEY, [])
        return selections

    def _facts(self, session: pytest.Session, selections: list[Selection]) -> Any:
        from pytest_rewardkit.report import GateOptions, RunFacts

        # pytest's count of failures (reports and collection errors) also covers any that were
        # not seen as reports here; whatever is not a row's verdict is outside the gate.
        verdicts = sum(self.verdict_failures.values())
        outside = max(session.testsfailed - verdicts - len(self.collection_errors), 0)
        return RunFacts(
            gate_options=GateOptions.given(options(self.config)),
            selections=selections,
            verdict_failures=self.verdict_failures,
            skipped=self.skipped,
            deselected_by=_deselecting_options(self.config),
            stopped=str(session.shouldfail or session.shouldstop) if session.shouldfail or session.shouldstop else None,
            outside_failures=self.outside_failures,
            outside_failure_count=max(outside, len(self.outside_failures)),
            collection_errors=self.collection_errors,
            scored_twice=self.scored_twice,
        )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.summaries:
            from pytest_rewardkit.report import format_summary, terminal_lines

            terminalreporter.write_sep("=", "rewardkit summary")
            lines = format_summary(self.summaries, _deselecting_options(self.config))
            for comparison in self.comparisons:
                lines += [f"{comparison.suite} [{comparison.model}]", *comparison.lines()]
            for text, markup in terminal_lines(lines):
                terminalreporter.write_line(text, **markup)
            if self.writer is not None:
                terminalreporter.write_line(f"results: {self.writer.directory}")
        if self.html is not None:
            terminalreporter.write_line(f"report: {self.html}")
        for preview in self.previews or []:
            terminalreporter.write_line(preview.line(), green=preview.ok, red=not preview.ok)
            for problem in preview.problems:
                terminalreporter.write_line(f"  {problem}", red=True)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        # The gate's verdict is the run's last line, after pytest's own counts, since it alone
        # decides the exit status.
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if self.verdict is not None and reporter is not None:
            ok = self.verdict.exit_status == 0
            reporter.write_line(self.verdict.line, green=ok, red=not ok, bold=True)
        if self.previews and reporter is not None:
            from pytest_rewardkit.evaluators.run import failure_line

            line = failure_line(self.previews)
            if line is not None:
                reporter.write_line(line, red=True, bold=True)


def _deselecting_options(config: pytest.Config) -> list[str]:
    """The options given that narrow the run on the user's purpose."""
    given = {
        "-k": config.getoption("keyword", ""),
        "-m": config.getoption("markexpr", ""),
        "--deselect": config.getoption("deselect", None),
        "--lf": config.getoption("lf", False),
        "--sw": config.getoption("stepwise", False),
    }
    return [flag for flag, value in given.items() if value]
