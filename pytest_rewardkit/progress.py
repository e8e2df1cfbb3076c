"""Recording progress on the terminal: rows done of the run, responses recorded, errors, rate and
time left, serial and under xdist.

Each process counts what its generator did; a snapshot rides on every row's teardown report (the
one channel from xdist workers to the controller, as the row outcomes do), and the controller adds
up the latest snapshot of each process. A serial run also reports while a row waits (retries can
take minutes), with pytest's capture suspended the way live logging does it, so the line reaches
the terminal instead of the row's captured output.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import pytest

from pytest_rewardkit.state import GENERATOR_KEY, PROGRESS_PROPERTY

SHOW_EVERY = 5.0  # seconds between progress lines

_DONE_KEY = pytest.StashKey[int]()
_TOTAL_KEY = pytest.StashKey[int]()


def snapshot(config: pytest.Config) -> dict[str, Any] | None:
    """This process's counters, or None when it has not recorded anything (replay only)."""
    generator = config.stash.get(GENERATOR_KEY, None)
    if generator is None or not generator.records:
        return None
    progress = generator.progress
    return {
        "process": getattr(config, "workerinput", {}).get("workerid", "main"),
        "total": config.stash.get(_TOTAL_KEY, 0),
        "done": config.stash.get(_DONE_KEY, 0),
        "recorded": progress.recorded,
        "errors": progress.errors,
    }


def count_rows(session: pytest.Session) -> None:
    """The rows of the whole run that have a model, once collected (every xdist worker collects all)."""
    from pytest_rewardkit.collection import row_of

    rows = (row_of(item) for item in session.items)
    session.config.stash[_TOTAL_KEY] = sum(1 for row in rows if row is not None and row[0].model is not None)


def row_finished(item: pytest.Item) -> None:
    """Count a finished row of this process."""
    item.config.stash[_DONE_KEY] = item.config.stash.get(_DONE_KEY, 0) + 1


def format_line(processes: list[dict[str, Any]], elapsed: float) -> str:
    total = max(p["total"] for p in processes)
    done = sum(p["done"] for p in processes)
    recorded = sum(p["recorded"] for p in processes)
    errors = sum(p["errors"] for p in processes)
    rate = done / elapsed if elapsed > 0 else 0.0
    line = f"rewardkit: {done}/{total} rows, {recorded} responses recorded, {errors} errors, {rate:.1f} rows/s"
    if 0 < done < total and rate > 0:
        line += f", about {_duration((total - done) / rate)} left"
    return line


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


class ProgressReporter:
    """Controller-side plugin (registered only while recording and not under -q)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.processes: dict[str, dict[str, Any]] = {}
        self.started = time.monotonic()
        self.shown = 0.0
        self.last_line: str | None = None

    def update(self, state: dict[str, Any], force: bool = False, waiting: bool = False) -> None:
        self.processes[state["process"]] = state
        # Quiet while only replaying: a row counts once it recorded or failed, or kept us waiting.
        active = waiting or any(p["recorded"] or p["errors"] for p in self.processes.values())
        now = time.monotonic()
        if not active or (not force and now - self.shown < SHOW_EVERY):
            return
        line = format_line(list(self.processes.values()), now - self.started)
        if line == self.last_line:
            return
        self.shown, self.last_line = now, line
        self._write(line)

    def _write(self, line: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            # On a line of its own: the progress dots before it stay on theirs, and those after it
            # start a new line with their file name again.
            if reporter._tw.width_of_current_line:
                reporter._tw.line()
            reporter.write_line(line)
            reporter.currentfspath = None

    def tick(self) -> None:
        """While this (serial) process waits for a row: report what it has done so far."""
        state = snapshot(self.config)
        if state is not None:
            self.update(state, waiting=True)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        ours: list[Any] = [value for name, value in report.user_properties if name == PROGRESS_PROPERTY]
        if not ours:
            return
        report.user_properties = [(n, v) for n, v in report.user_properties if n != PROGRESS_PROPERTY]
        self.update(ours[-1])

    def pytest_sessionfinish(self) -> None:
        if self.processes and self.last_line is not None:
            # The final figures, unless the last line already showed them.
            self.update(next(iter(self.processes.values())), force=True)
