"""The progress line while rows wait, and the channel by which xdist workers that wait for a row report progress to
the controller: snapshot files in a directory the controller hands them, read by a controller thread. The whole run
is in test_generation.py."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_rewardkit import progress
from pytest_rewardkit.progress import WAITING_DIR_INPUT, ProgressReporter, format_line, read_waiting, write_waiting


def state(
    process: str, seq: int, done: int = 0, recorded: int = 0, errors: int = 0, waiting: float = 0.0
) -> dict[str, Any]:
    return {
        "process": process,
        "total": 10,
        "done": done,
        "recorded": recorded,
        "errors": errors,
        "seq": seq,
        "waiting": waiting,
    }


def test_a_waiting_row_is_named_last_with_how_long_it_waited() -> None:
    assert format_line([state("main", 1, waiting=35.2)], 36.0) == (
        "rewardkit: 0/10 rows, 0 responses recorded, 0 errors, 0.0 rows/s, 1 row waiting 35s"
    )
    assert format_line([state("main", 5, done=4, recorded=4, waiting=12.0)], 8.0) == (
        "rewardkit: 4/10 rows, 4 responses recorded, 0 errors, 0.5 rows/s, about 12s left, 1 row waiting 12s"
    )


def test_several_waiting_rows_are_counted_with_the_longest_wait() -> None:
    workers = [state("gw0", 3, waiting=65.4), state("gw1", 2, waiting=3.0), state("gw2", 4, done=1, recorded=1)]
    assert format_line(workers, 70.0) == (
        "rewardkit: 1/10 rows, 1 responses recorded, 0 errors, 0.0 rows/s, about 10m 30s left, "
        "2 rows waiting, longest 1m 05s"
    )


def test_no_waiting_row_no_waiting_part() -> None:
    assert format_line([state("gw0", 3, done=2, recorded=2), state("gw1", 2)], 4.0) == (
        "rewardkit: 2/10 rows, 2 responses recorded, 0 errors, 0.5 rows/s, about 16s left"
    )


def test_a_written_snapshot_reads_back_and_replaces_the_previous_one(tmp_path: Path) -> None:
    write_waiting(tmp_path, state("gw0", 1))
    write_waiting(tmp_path, state("gw1", 1, done=2, recorded=2))
    write_waiting(tmp_path, state("gw0", 2, recorded=1))
    assert read_waiting(tmp_path) == [state("gw0", 2, recorded=1), state("gw1", 1, done=2, recorded=2)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gw0.json", "gw1.json"]


@pytest.mark.parametrize(
    "content",
    [
        b'{"process": "gw2", "total": 10, "do',  # half written (a writer that did not replace)
        b"not json at all",
        b"\xff\xfe\x00garbage",
        b"[1, 2, 3]",
        b'{"process": "gw2", "total": 10, "done": "3", "recorded": 0, "errors": 0, "seq": 1}',
        b'{"process": "gw2", "total": 10, "done": 3, "recorded": 0, "errors": 0}',
        b'{"process": 2, "total": 10, "done": 3, "recorded": 0, "errors": 0, "seq": 1}',
        b'{"process": "gw2", "total": 10, "done": -1, "recorded": 0, "errors": 0, "seq": 1}',
        b'{"process": "gw2", "total": 10, "done": true, "recorded": 0, "errors": 0, "seq": 1}',
        b'{"process": "gw2", "total": 10, "done": 3, "recorded": 0, "errors": 0, "seq": 1}',
        b'{"process": "gw2", "total": 10, "done": 3, "recorded": 0, "errors": 0, "seq": 1, "waiting": "3"}',
        b'{"process": "gw2", "total": 10, "done": 3, "recorded": 0, "errors": 0, "seq": 1, "waiting": -2.5}',
        b'{"process": "gw2", "total": 10, "done": 3, "recorded": 0, "errors": 0, "seq": 1, "waiting": NaN}',
        b'{"process": "gw2", "total": 10, "done": 3, "recorded": 0, "errors": 0, "seq": 1, "waiting": Infinity}',
        b'{"process": "gw2", "total": 10, "done": 3, "recorded": 0, "errors": 0, "seq": 1, "waiting": true}',
    ],
    ids=[
        "half-written",
        "not-json",
        "not-utf8",
        "not-an-object",
        "string-count",
        "no-seq",
        "bad-process",
        "negative",
        "bool",
        "no-waiting",
        "string-waiting",
        "negative-waiting",
        "nan-waiting",
        "infinite-waiting",
        "bool-waiting",
    ],
)
def test_a_file_that_is_not_a_snapshot_is_skipped(tmp_path: Path, content: bytes) -> None:
    write_waiting(tmp_path, state("gw0", 1))
    (tmp_path / "gw2.json").write_bytes(content)
    (tmp_path / "gw3.json").mkdir()
    (tmp_path / ".gw4.partial").write_text(json.dumps(state("gw4", 1)), encoding="utf-8")
    assert read_waiting(tmp_path) == [state("gw0", 1)]


def test_a_missing_directory_reads_as_no_snapshot(tmp_path: Path) -> None:
    assert read_waiting(tmp_path / "gone") == []


class Shown(ProgressReporter):
    """A controller's reporter that keeps its lines instead of writing them to the terminal."""

    def __init__(self, config: pytest.Config) -> None:
        super().__init__(config)
        self.lines: list[str] = []

    def _write(self, line: str) -> None:
        self.lines.append(line)


@pytest.fixture
def reporter(pytestconfig: pytest.Config) -> Shown:
    """With no thread: the test reads the waiting workers' directory itself."""
    return Shown(pytestconfig)


def test_the_controller_adds_waiting_workers_to_what_reports_said_without_counting_twice(
    reporter: Shown, tmp_path: Path
) -> None:
    reporter.update(state("gw0", 5, done=3, recorded=3))
    # gw0's file was written before its last report (gw0 waited, then finished the row); gw1 waits now.
    write_waiting(tmp_path, state("gw0", 4, done=2, recorded=2))
    write_waiting(tmp_path, state("gw1", 2, done=1, recorded=1))
    reporter.shown = 0.0
    reporter.read_waiting_workers(tmp_path)
    assert reporter.lines[-1].startswith("rewardkit: 4/10 rows, 4 responses recorded, 0 errors, ")
    # Read again unchanged: nothing new to show, however long ago the last line was.
    reporter.shown = 0.0
    reporter.read_waiting_workers(tmp_path)
    assert len(reporter.lines) == 2
    # gw1 still waits and says so again (an error on the way): shown.
    write_waiting(tmp_path, state("gw1", 3, done=1, recorded=1, errors=1))
    reporter.shown = 0.0
    reporter.read_waiting_workers(tmp_path)
    assert reporter.lines[-1].startswith("rewardkit: 4/10 rows, 4 responses recorded, 1 errors, ")


def test_a_waiting_worker_is_shown_even_before_anything_was_recorded(reporter: Shown, tmp_path: Path) -> None:
    write_waiting(tmp_path, state("gw0", 1, waiting=1.2))
    reporter.read_waiting_workers(tmp_path)
    assert reporter.lines == ["rewardkit: 0/10 rows, 0 responses recorded, 0 errors, 0.0 rows/s, 1 row waiting 1s"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_a_long_wait_shows_a_line_every_show_every_seconds_though_nothing_finishes(
    pytestconfig: pytest.Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    monkeypatch.setattr(progress, "time", clock)
    reporter = Shown(pytestconfig)
    # A serial run waiting 12 s for its first row, reporting every second (WAIT_TICK).
    for second in range(1, 13):
        clock.now += 1.0
        reporter.update(state("main", second, waiting=float(second)))
    assert [line.rsplit(", ", 1)[1] for line in reporter.lines] == [
        "1 row waiting 1s",
        f"1 row waiting {1 + progress.SHOW_EVERY:.0f}s",
        f"1 row waiting {1 + 2 * progress.SHOW_EVERY:.0f}s",
    ]


def test_a_worker_that_finished_its_row_no_longer_counts_as_waiting(reporter: Shown, tmp_path: Path) -> None:
    write_waiting(tmp_path, state("gw0", 3, waiting=40.0))
    write_waiting(tmp_path, state("gw1", 2, waiting=10.0))
    reporter.read_waiting_workers(tmp_path)
    assert reporter.lines[-1].endswith(", 0.0 rows/s, 2 rows waiting, longest 40s")
    # gw0's row finished: its report replaces what its file said; gw1 still waits.
    reporter.shown = 0.0
    reporter.update(state("gw0", 4, done=1, recorded=1))
    assert reporter.lines[-1].startswith("rewardkit: 1/10 rows, 1 responses recorded, 0 errors, ")
    assert reporter.lines[-1].endswith(" left, 1 row waiting 10s")
    # Its old file, read again, does not bring the wait back.
    reporter.shown = 0.0
    reporter.read_waiting_workers(tmp_path)
    assert len(reporter.lines) == 2


def test_the_final_line_says_nothing_of_waiting_even_when_the_run_stopped_during_a_wait(reporter: Shown) -> None:
    reporter.update(state("main", 1, done=1, recorded=2))
    reporter.shown = 0.0
    reporter.update(state("main", 2, done=1, recorded=2, waiting=7.0))
    assert reporter.lines[-1].endswith(", 1 row waiting 7s")
    reporter.pytest_sessionfinish()
    assert reporter.lines[-1].startswith("rewardkit: 1/10 rows, 2 responses recorded, 0 errors, ")
    assert "waiting" not in reporter.lines[-1]


def test_the_watcher_starts_with_the_first_worker_and_is_gone_with_its_directory_at_the_end(
    pytester: pytest.Pytester,
) -> None:
    reporter = ProgressReporter(pytester.parseconfig())
    nodes = [SimpleNamespace(workerinput={"workerid": f"gw{i}"}) for i in range(2)]
    for node in nodes:
        reporter.pytest_configure_node(node)
    directory = Path(nodes[0].workerinput[WAITING_DIR_INPUT])
    assert nodes[1].workerinput[WAITING_DIR_INPUT] == str(directory)
    assert directory.is_dir()
    watcher = reporter.watcher
    assert watcher is not None and watcher.is_alive()
    reporter.pytest_sessionfinish()
    assert not watcher.is_alive()
    assert not directory.exists()


def test_without_a_usable_temporary_directory_workers_start_without_one(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(**kwargs: Any) -> str:
        raise PermissionError(13, "Permission denied", "/tmp/rewardkit-progress-x")

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    reporter = ProgressReporter(pytester.parseconfig())
    node = SimpleNamespace(workerinput={"workerid": "gw0"})
    reporter.pytest_configure_node(node)
    assert node.workerinput == {"workerid": "gw0"}
    assert reporter.watcher is None
