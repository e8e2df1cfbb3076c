"""Reading a suite's `dataset.jsonl` into rows, one problem per line, never all-or-nothing."""

from __future__ import annotations

import argparse
import codecs
import hashlib
import json
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pytest_rewardkit.config import describe_validation_error
from pytest_rewardkit.errors import DatasetError
from pytest_rewardkit.files import write_atomically
from pytest_rewardkit.models import Row

__all__ = ["DatasetEntry", "DatasetError", "content_id", "read_dataset", "write_dataset"]


@dataclass(frozen=True)
class DatasetEntry:
    """One line of a dataset: a valid row, or the reason it is not one."""

    row_id: str
    line: int
    row: Row | None
    problem: str | None = None


def content_id(raw: str) -> str:
    """A row id from its content: stable across runs and reordering of the file."""
    try:
        canonical = json.dumps(json.loads(raw), sort_keys=True, ensure_ascii=False)
    except ValueError:
        canonical = raw.strip()
    return "row-" + hashlib.sha256(canonical.encode()).hexdigest()[:12]


def read_dataset(path: Path, limit: int | None = None) -> list[DatasetEntry]:
    """Every non-blank line of `path` as an entry; a malformed line becomes an entry with a
    `problem` (so it is reported as its own failed item) and the other lines still load."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read dataset {path}: {exc.strerror or exc}") from exc
    # Decoded line by line: one stray byte is that row's problem, not the whole file's. Split on
    # bytes, so that only \n, \r\n and \r end a line (str.splitlines also splits inside a JSON
    # string holding U+2028 or a form feed).
    lines = data.removeprefix(codecs.BOM_UTF8).splitlines()
    entries: list[DatasetEntry] = []
    seen: dict[str, int] = {}
    for number, encoded in enumerate(lines, start=1):
        if not encoded.strip():
            continue
        if limit is not None and len(entries) >= limit:
            break
        try:
            raw = encoded.decode("utf-8")
        except UnicodeDecodeError as exc:
            problem = (
                f"{path}:{number}: not UTF-8 text (byte 0x{encoded[exc.start]:02x} at column {exc.start + 1}); "
                "save the file as UTF-8"
            )
            entries.append(DatasetEntry(f"line{number}", number, None, problem))
            continue
        entry = _parse_line(path, number, raw)
        if entry.row_id in seen:
            entry = DatasetEntry(
                row_id=f"{entry.row_id}@line{number}",
                line=number,
                row=None,
                problem=f"{path}:{number}: duplicate row id {entry.row_id!r} (first on line "
                f"{seen[entry.row_id]}); ids must be unique",
            )
        else:
            seen[entry.row_id] = number
        entries.append(entry)
    if not entries:
        raise DatasetError(f"{path} has no rows: write one JSON object per line, e.g. {_EXAMPLE_ROW}")
    return entries


_EXAMPLE_ROW = '{"id": "q1", "messages": [{"role": "user", "content": "..."}], "ground_truth": "..."}'


def _parse_line(path: Path, number: int, raw: str) -> DatasetEntry:
    where = f"{path}:{number}"
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        return DatasetEntry(f"line{number}", number, None, f"{where}: invalid JSON: {exc.msg} (col {exc.colno})")
    if not isinstance(data, dict):
        return DatasetEntry(f"line{number}", number, None, f"{where}: a row must be a JSON object")
    raw_id = data.get("id")
    row_id = str(raw_id) if isinstance(raw_id, (str, int)) and str(raw_id) else content_id(raw)
    try:
        row = Row.model_validate(data)
    except ValidationError as exc:
        return DatasetEntry(row_id, number, None, describe_validation_error(exc, where, "row"))
    return DatasetEntry(row_id, number, row)


def write_dataset(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write rows as JSONL, one object a line, keys in a stable order so diffs stay small."""
    ids = [row.get("id") for row in rows]
    duplicates = {i for i in ids if i is not None and ids.count(i) > 1}
    if duplicates:
        raise DatasetError(f"duplicate row ids: {sorted(duplicates)[:5]}")
    for row in rows:
        Row.model_validate(row)
    write_atomically(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def prepare_main(
    build_rows: Callable[[list[str]], list[dict[str, Any]]],
    *,
    description: str,
    source_url: str,
    out: Path,
    argv: list[str] | None = None,
) -> None:
    """The command line of an example's `prepare_data.py` whose source is one JSONL file: read a
    local copy (`--source`) or fetch it (`--download`, needs network), build the rows, write them."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--source", type=Path, help="a local copy of the source file")
    where.add_argument("--download", action="store_true", help=f"fetch {source_url}")
    parser.add_argument("--out", type=Path, default=out)
    args = parser.parse_args(argv)
    if args.download:
        with urllib.request.urlopen(source_url, timeout=60) as response:
            text = response.read().decode("utf-8")
    else:
        text = args.source.read_text(encoding="utf-8")
    rows = build_rows(text.splitlines())
    write_dataset(args.out, rows)
    print(f"wrote {len(rows)} rows to {args.out}")
