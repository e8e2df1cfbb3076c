"""Reading dataset.jsonl: row ids, and one problem per malformed line while the rest loads."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_rewardkit.dataset import DatasetError, content_id, read_dataset, write_dataset

if TYPE_CHECKING:
    from conftest import ChatRow


def write_lines(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "dataset.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def as_line(row: dict[str, Any]) -> str:
    return json.dumps(row)


def test_rows_keep_their_ids_and_line_numbers(tmp_path: Path, chat_row: ChatRow) -> None:
    path = write_lines(tmp_path, as_line(chat_row("q1", "4", "4")), "", as_line({**chat_row(None, "5"), "id": 7}))
    entries = read_dataset(path)
    assert [(e.row_id, e.line, e.problem) for e in entries] == [("q1", 1, None), ("7", 3, None)]
    assert entries[0].row is not None and entries[0].row.ground_truth == "4"


def test_extra_fields_are_kept_on_the_row(tmp_path: Path, chat_row: ChatRow) -> None:
    path = write_lines(tmp_path, as_line(chat_row("q1", "4", level="easy", tags=["a"])))
    (entry,) = read_dataset(path)
    assert entry.row is not None and entry.row.extra == {"level": "easy", "tags": ["a"]}


def test_a_row_without_id_gets_a_content_hash_id(tmp_path: Path, chat_row: ChatRow) -> None:
    row = chat_row(None, "4", "4")
    (entry,) = read_dataset(write_lines(tmp_path, as_line(row)))
    assert re.fullmatch(r"row-[0-9a-f]{12}", entry.row_id)
    assert entry.row_id == content_id(json.dumps(row))
    assert entry.row_id != content_id(json.dumps(chat_row(None, "4", "5")))


def test_content_hash_ids_are_stable_across_reordering_and_key_order(tmp_path: Path, chat_row: ChatRow) -> None:
    rows = [chat_row(None, str(i), str(i)) for i in range(5)]
    forward = {e.line: e.row_id for e in read_dataset(write_lines(tmp_path, *map(as_line, rows)))}
    backward = {e.line: e.row_id for e in read_dataset(write_lines(tmp_path, *map(as_line, reversed(rows))))}
    assert [forward[i] for i in range(1, 6)] == [backward[i] for i in range(5, 0, -1)]
    reordered_keys = json.dumps(dict(reversed(list(rows[0].items()))))
    assert content_id(reordered_keys) == forward[1]


def test_a_duplicate_id_is_a_problem_on_its_second_line(tmp_path: Path, chat_row: ChatRow) -> None:
    path = write_lines(
        tmp_path, as_line(chat_row("q1", "a")), as_line(chat_row("q2", "b")), as_line(chat_row("q1", "c"))
    )
    first, second, duplicate = read_dataset(path)
    assert first.row is not None and second.row is not None
    assert duplicate.row is None
    assert duplicate.row_id == "q1@line3"
    assert duplicate.problem == f"{path}:3: duplicate row id 'q1' (first on line 1); ids must be unique"


def test_two_identical_rows_without_ids_are_duplicates(tmp_path: Path, chat_row: ChatRow) -> None:
    line = as_line(chat_row(None, "4"))
    first, second = read_dataset(write_lines(tmp_path, line, line))
    assert first.row is not None
    assert second.problem is not None and "duplicate row id" in second.problem


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"id": "x", "messages": [', "invalid JSON"),
        ("not json at all", "invalid JSON: Expecting value (col 1)"),
        ('["a", "list"]', "a row must be a JSON object"),
        ("42", "a row must be a JSON object"),
        ('{"id": "x", "ground_truth": 1}', "messages: give at least one message"),
        ('{"id": "x", "messages": []}', "messages: give at least one message"),
        ('{"id": "x", "messages": "hello"}', "messages: Input should be a valid list"),
        ('{"id": "x", "messages": [{"role": "robot", "content": "x"}]}', "messages.0.role: "),
        ('{"id": "x", "messages": [{"role": "user", "content": 5}]}', "messages.0.content"),
        ('{"id": ["x"], "messages": [{"role": "user", "content": "q"}]}', "id: Input should be a valid string"),
    ],
)
def test_a_malformed_line_is_reported_with_file_and_line_and_the_others_still_load(
    tmp_path: Path, chat_row: ChatRow, line: str, problem: str
) -> None:
    path = write_lines(tmp_path, as_line(chat_row("ok1", "1")), line, as_line(chat_row("ok2", "2")))
    ok1, bad, ok2 = read_dataset(path)
    assert ok1.row is not None and ok2.row is not None
    assert (ok1.row_id, ok2.row_id) == ("ok1", "ok2")
    assert bad.row is None and bad.line == 2
    assert bad.problem is not None
    assert bad.problem.startswith(f"{path}:2: ")
    assert problem in bad.problem


def test_a_line_that_is_not_json_is_named_by_its_line(tmp_path: Path) -> None:
    (entry,) = read_dataset(write_lines(tmp_path, "", "oops"))
    assert (entry.row_id, entry.line) == ("line2", 2)


@pytest.mark.parametrize("limit", [1, 3])
def test_limit_keeps_the_first_rows(tmp_path: Path, chat_row: ChatRow, limit: int) -> None:
    path = write_lines(tmp_path, *(as_line(chat_row(f"q{i}", "x")) for i in range(5)))
    assert [e.row_id for e in read_dataset(path, limit=limit)] == [f"q{i}" for i in range(limit)]
    assert len(read_dataset(path)) == 5


def test_a_missing_file_is_a_dataset_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"cannot read dataset .*missing\.jsonl"):
        read_dataset(tmp_path / "missing.jsonl")


def test_write_dataset_round_trips(tmp_path: Path, chat_row: ChatRow) -> None:
    rows = [chat_row("a", "1", 1, level=2), chat_row(None, "x")]
    path = tmp_path / "nested" / "dataset.jsonl"
    write_dataset(path, rows)
    assert [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] == rows
    assert [e.problem for e in read_dataset(path)] == [None, None]


def test_write_dataset_refuses_duplicates_and_invalid_rows(tmp_path: Path, chat_row: ChatRow) -> None:
    path = tmp_path / "dataset.jsonl"
    with pytest.raises(DatasetError, match="duplicate row ids: \\['a'\\]"):
        write_dataset(path, [chat_row("a", "1"), chat_row("a", "2")])
    with pytest.raises(ValueError, match="messages"):
        write_dataset(path, [{"id": "b", "messages": []}])
    assert not path.exists()


def test_a_non_utf8_byte_is_that_rows_error_naming_file_and_line(tmp_path: Path, chat_row: ChatRow) -> None:
    path = tmp_path / "dataset.jsonl"
    good = as_line(chat_row("a", "1", "1")).encode()
    bad = b'{"id": "b", "messages": [{"role": "user", "content": "caf\xe9"}]}'
    path.write_bytes(good + b"\n" + bad + b"\n" + as_line(chat_row("c", "1", "1")).encode() + b"\n")
    first, broken, last = read_dataset(path)
    assert first.row is not None and last.row is not None and last.line == 3
    assert broken.row is None and broken.line == 2
    assert broken.problem == f"{path}:2: not UTF-8 text (byte 0xe9 at column 58); save the file as UTF-8"


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path, chat_row: ChatRow) -> None:
    path = tmp_path / "dataset.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + as_line(chat_row("a", "1", "1")).encode() + b"\n")
    (entry,) = read_dataset(path)
    assert entry.row is not None and entry.row_id == "a"


@pytest.mark.parametrize("content", ["", "\n  \n"])
def test_an_empty_dataset_is_an_error_naming_the_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "dataset.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError, match=f"{re.escape(str(path))} has no rows"):
        read_dataset(path)


def test_a_row_that_fails_validation_is_headed_invalid_row(tmp_path: Path) -> None:
    path = write_lines(tmp_path, '{"id": "x", "messages": []}')
    (entry,) = read_dataset(path)
    assert entry.problem is not None and entry.problem.startswith(f"{path}:1: invalid row\n")
    assert "invalid settings" not in entry.problem
