"""Recording progress on the terminal: rows done of the run, responses recorded, errors, rate and
time left, serial and under xdist.

Each process counts what its generator did; a snapshot rides on every row's teardown report (the
one channel from xdist workers to the controller, as the row outcomes do), and the controller adds
up the latest snapshot of each process. A row that keeps its process waiting (retries can take
minutes) is reported too: a serial run writes the line itself, with pytest's capture suspended the
way live logging does it, so the line reaches the terminal instead of the row's captured output;
an xdist worker, whose next report only comes when the row finishes, writes its snapshot to a file
in a directory the controller hands it (`pytest_configure_node`), which a controller thread reads.
A waiting snapshot says how long its process has waited for the row, measured there: the line then
changes, and shows, every SHOW_EVERY seconds of a long wait instead of once.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_rewardkit.state import GENERATOR_KEY, PROGRESS_PROPERTY

SHOW_EVERY = 5.0  # seconds between progress lines
WATCH_EVERY = 0.5  # seconds between the controller's looks at what waiting workers write (every WAIT_TICK)
WAITING_DIR_INPUT = "rewardkit_progress_dir"  # the workerinput key naming the directory they write to

_DONE_KEY = pytest.StashKey[int]()
_TOTAL_KEY = pytest.StashKey[int]()
_SEQ_KEY = pytest.StashKey[int]()
_NUMBERS = ("total", "done", "recorded", "errors", "seq")


def snapshot(config: pytest.Config, waiting: float = 0.0) -> dict[str, Any] | None:
    """This process's counters and the seconds it has waited for its current row (0: none), or None
    when it has not recorded anything (replay only)."""
    generator = config.stash.get(GENERATOR_KEY, None)
    if generator is None or not generator.records:
        return None
    progress = generator.progress
    # Numbers the snapshots of this process: the controller gets them by two channels (reports and
    # waiting files) and must not let a file read late undo a report.
    seq = config.stash[_SEQ_KEY] = config.stash.get(_SEQ_KEY, 0) + 1
    return {
        "process": getattr(config, "workerinput", {}).get("workerid", "main"),
        "total": config.stash.get(_TOTAL_KEY, 0),
        "done": config.stash.get(_DONE_KEY, 0),
        "recorded": progress.recorded,
        "errors": progress.errors,
        "seq": seq,
        # An elapsed duration, not a point in time: monotonic clocks of two processes do not compare.
        "waiting": round(waiting, 1),
    }


def count_rows(session: pytest.Session) -> None:
    """The rows of the whole run that have a model, once collected (every xdist worker collects all)."""
    from pytest_rewardkit.collection import row_of

    rows = (row_of(item) for item in session.items)
    session.config.stash[_TOTAL_KEY] = sum(1 for row in rows if row is not None and row[0].model is not None)


def row_finished(item: pytest.Item) -> None:
    """Count a finished row of this process."""
    item.config.stash[_DONE_KEY] = item.config.stash.get(_DONE_KEY, 0) + 1


def waiting_writer(config: pytest.Config) -> Callable[[float], None] | None:
    """What an xdist worker calls while a row waits (every WAIT_TICK, a second): its snapshot,
    written for the controller. None when the controller shows no progress (replay, -q) and so
    handed no directory."""
    directory = getattr(config, "workerinput", {}).get(WAITING_DIR_INPUT)
    if directory is None:
        return None

    def write(waiting: float) -> None:
        state = snapshot(config, waiting)
        if state is not None:
            # Progress never fails a run: the directory is gone once the controller finished, and on
            # another machine for a remote (--tx ssh=) worker.
            with contextlib.suppress(OSError):
                write_waiting(Path(directory), state)

    return write


def write_waiting(directory: Path, state: dict[str, Any]) -> None:
    """One file per process, replaced whole: the controller never reads half of one."""
    partial = directory / f".{state['process']}.partial"  # not *.json: read_waiting skips it
    partial.write_text(json.dumps(state), encoding="utf-8")
    os.replace(partial, directory / f"{state['process']}.json")


def read_waiting(directory: Path) -> list[dict[str, Any]]:
    """The snapshots in `directory`, skipping any file that is not one (a progress line is not
    worth a traceback)."""
    found = []
    for path in sorted(directory.glob("*.json")):
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if (
            isinstance(state, dict)
            and isinstance(state.get("process"), str)
            and all(type(state.get(name)) is int and state[name] >= 0 for name in _NUMBERS)
            and type(state.get("waiting")) in (int, float)
            and math.isfinite(state["waiting"])
            and state["waiting"] >= 0
        ):
            found.append(state)
    return found


def format_line(processes: list[dict[str, Any]], elapsed: float) -> str:
    total = max(p["total"] for p in processes)
    done = sum(p["done"] for p in processes)
    recorded = sum(p["recorded"] for p in processes)
    errors = sum(p["errors"] for p in processes)
    rate = done / elapsed if elapsed > 0 else 0.0
    line = f"rewardkit: {done}/{total} rows, {recorded} responses recorded, {errors} errors, {rate:.1f} rows/s"
    if 0 < done < total and rate > 0:
        line += f", about {_duration((total - done) / rate)} left"
    waits = [p["waiting"] for p in processes if p["waiting"] > 0]
    if len(waits) == 1:
        line += f", 1 row waiting {_duration(waits[0])}"
    elif waits:
        line += f", {len(waits)} rows waiting, longest {_duration(max(waits))}"
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
        # Under xdist, the thread watching waiting workers writes to the terminal too: it takes this
        # lock, which the main thread holds while a report is shown.
        self.lock = threading.RLock()
        self.directory: Path | None = None
        self.watcher: threading.Thread | None = None
        self.stopping = threading.Event()

    def update(self, state: dict[str, Any], force: bool = False) -> None:
        with self.lock:
            self._update(state, force)

    def _update(self, state: dict[str, Any], force: bool) -> None:
        self.processes[state["process"]] = state
        self._show(force)

    def _show(self, force: bool) -> None:
        # Quiet while only replaying: a row counts once it recorded or failed, or keeps us waiting.
        active = any(p["recorded"] or p["errors"] or p["waiting"] for p in self.processes.values())
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

    def tick(self, waiting: float) -> None:
        """While this (serial) process waits for a row: report what it has done so far, and how long
        it has waited."""
        state = snapshot(self.config, waiting)
        if state is not None:
            self.update(state)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist's hook, before each worker starts: where it writes while a row keeps it waiting."""
        if self.directory is None:
            try:
                self.directory = Path(tempfile.mkdtemp(prefix="rewardkit-progress-"))
            except OSError:
                return  # no usable temporary directory: the rows' reports still show progress
            self.watcher = threading.Thread(
                target=self._watch, args=(self.directory,), name="rewardkit-progress", daemon=True
            )
            self.watcher.start()
            # Also when the session never finishes (a crash in another plugin's hook).
            self.config.add_cleanup(self._stop_watching)
        node.workerinput[WAITING_DIR_INPUT] = str(self.directory)

    def _watch(self, directory: Path) -> None:
        while not self.stopping.wait(WATCH_EVERY):
            self.read_waiting_workers(directory)

    def read_waiting_workers(self, directory: Path) -> None:
        """Show what the workers that wait for a row wrote there since their last report."""
        states = read_waiting(directory)
        with self.lock:
            changed = False
            for state in states:
                # Skipped: a file not rewritten since, or older than the report that followed it.
                current = self.processes.get(state["process"])
                if current is None or state["seq"] > current["seq"]:
                    self.processes[state["process"]] = state
                    changed = True
            if changed:
                # One line for all of them: the waiting workers are counted together.
                self._show(force=False)

    def _stop_watching(self) -> None:
        if self.watcher is None or self.directory is None:
            return
        self.stopping.set()
        # Bounded: it wakes at once, unless a write to the terminal blocks (a full pipe).
        self.watcher.join(timeout=5.0)
        shutil.rmtree(self.directory, ignore_errors=True)
        self.watcher = None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> Any:
        with self.lock:
            ours: list[Any] = [value for name, value in report.user_properties if name == PROGRESS_PROPERTY]
            if ours:
                report.user_properties = [(n, v) for n, v in report.user_properties if n != PROGRESS_PROPERTY]
                self._update(ours[-1], force=False)
            # Held while the terminal shows the report too: no line from the watcher in its middle.
            return (yield)

    def pytest_sessionfinish(self) -> None:
        self._stop_watching()
        with self.lock:
            if self.last_line is not None:
                # The final figures, unless the last line already showed them. No row waits any more,
                # also when the run was interrupted while one did.
                self.processes = {name: {**p, "waiting": 0.0} for name, p in self.processes.items()}
                self._show(force=True)
