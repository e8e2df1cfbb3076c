"""The channel by which xdist workers that wait for a row report progress to the controller: snapshot files in a
directory the controller hands them, read by a controller thread. The whole run is in test_generation.py."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_rewardkit.progress import WAITING_DIR_INPUT, ProgressReporter, read_waiting, write_waiting


def state(process: str, seq: int, done: int = 0, recorded: int = 0, errors: int = 0) -> dict[str, Any]:
    return {"process": process, "total": 10, "done": done, "recorded": recorded, "errors": errors, "seq": seq}


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
    write_waiting(tmp_path, state("gw0", 1))
    reporter.read_waiting_workers(tmp_path)
    assert reporter.lines == ["rewardkit: 0/10 rows, 0 responses recorded, 0 errors, 0.0 rows/s"]


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
