"""Parsed cassettes kept between runs, so that replay does not parse every row's YAML again.

The committed cassette stays the source of truth: an entry is used only when it was made from
exactly the text the cassette holds now (a digest of that text is checked on every read), so an
edited, re-recorded or checked-out cassette is parsed afresh whatever its size or time stamps say.
An entry holds what libyaml's safe loader returned for that text, as JSON, which is several times
quicker to read; everything done with it after (validation, error messages) is unchanged.

Entries live in pytest's cache directory (`.pytest_cache/d/rewardkit-cassettes`, emptied by
`--cache-clear`, absent with `-p no:cacheprovider`), one per cassette file, each replaced atomically:
xdist workers may write the same entry at once and a reader sees a whole entry, old or new. An entry
that cannot be read or does not check out (corrupt, cut short, from another version) is ignored and
written again; a cache that cannot be written (a read-only checkout) only costs the speed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import yaml

from pytest_rewardkit.files import write_atomically

# Bumped when an entry's layout or meaning changes; entries of another format are never used.
FORMAT = "rewardkit-cassette-cache 1"


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=20).hexdigest()


class CassetteCache:
    """What `yaml.load(text, Loader=yaml.CSafeLoader)` returned for each cassette's current text."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._prefix = os.path.join(directory, "")

    def entry(self, path: Path) -> Path:
        """The entry for the cassette at `path` (one per file: an edit replaces it, the cache does not grow)."""
        return Path(self._entry(path))

    def _entry(self, path: Path) -> str:
        return f"{self._prefix}{_digest(os.path.abspath(path).encode('utf-8', 'surrogatepass'))}.json"

    def parse(self, path: Path, text: str) -> Any:
        """The safe-loaded YAML of `text`, the content of the cassette at `path`: from the cache when
        it holds the parse of this very text, else parsed (yaml.YAMLError as yaml.load raises it) and
        kept for the next run."""
        # The loader's version is part of the key: another PyYAML may read the same text differently.
        key = _digest(f"{FORMAT}\0{yaml.__version__}\0{text}".encode("utf-8", "surrogatepass"))
        entry = self._entry(path)
        found = self._read(entry, key)
        if found is not None:
            return found[0]
        data = yaml.load(text, Loader=yaml.CSafeLoader)
        self._write(entry, key, data)
        return data

    def _read(self, entry: str, key: str) -> tuple[Any] | None:
        """The entry's data (in a 1-tuple: the data itself may be None) when it was made from the
        text with digest `key` and arrived whole; None for a missing, stale or damaged entry."""
        try:
            with open(entry, "rb") as file:
                raw = file.read()
        except OSError:
            return None
        header, newline, payload = raw.partition(b"\n")
        if not newline or header.rstrip(b"\r") != f"{FORMAT} {key} {_digest(payload)}".encode():
            return None
        try:
            return (json.loads(payload),)
        except ValueError:
            return None

    def _write(self, entry: str, key: str, data: Any) -> None:
        try:
            payload = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
            # Only what JSON gives back unchanged is kept: a YAML date, binary or set is not.
            if json.loads(payload) != data:
                return
            encoded = payload.encode("utf-8")
        except (TypeError, ValueError):
            return
        # The cache only speeds replay up: without it (read-only, disk full) replay goes on.
        with contextlib.suppress(OSError):
            write_atomically(Path(entry), f"{FORMAT} {key} {_digest(encoded)}\n{payload}")
