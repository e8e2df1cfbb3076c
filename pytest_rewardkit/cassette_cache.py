"""Parsed cassettes kept between runs, so that replay does not parse every row's YAML again.

The committed cassette stays the source of truth: an entry is used only when it was made from
exactly the text the cassette holds now (a digest of that text is checked on every read), so an
edited, re-recorded or checked-out cassette is parsed afresh whatever its size or time stamps say.
An entry holds what libyaml's safe loader returned for that text, as JSON, which is several times
quicker to read; everything done with it after (validation, error messages) is unchanged.

Entries live in pytest's cache directory (`.pytest_cache/d/rewardkit-cassettes`, emptied by
`--cache-clear`, absent with `-p no:cacheprovider`): one pack per cassette folder, to which a new
parse is appended in one write (creating a file per cassette cost more than parsing it). xdist
workers may append at once; every entry carries a digest of its data, so one that is cut short or
damaged is skipped, and whatever cannot be read only costs the speed (a read-only checkout too).
A pack holding more than twice as many entries as cassettes is rewritten with the latest of each.
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

# Starts every entry; bumped when an entry's layout or meaning changes (others are never used).
FORMAT = "rewardkit-cassette-cache-2"


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=20).hexdigest()


class _Pack:
    """One folder's entries: `FORMAT <tab> cassette file name <tab> text digest <tab> data digest`,
    then the data as one line of JSON."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.index: dict[tuple[str, str], tuple[int, int, str]] = {}  # (name, key) -> offset, length, digest
        latest: dict[str, tuple[int, int]] = {}  # name -> where its last whole entry is, for compaction
        entries = position = 0
        header: tuple[str, str, str, int] | None = None
        try:
            # Line by line: only the index stays in memory, however many rows the folder holds.
            with open(path, "rb") as file:
                for line in file:
                    if header is not None and line.endswith(b"\n"):
                        name, key, digest, start = header
                        self.index[(name, key)] = (position, len(line) - 1, digest)
                        latest[name] = (start, position + len(line))
                        entries += 1
                        header = None
                    else:
                        # Anything but a whole header line is skipped: the next entry starts afresh.
                        fields = line.rstrip(b"\n").split(b"\t")
                        header = None
                        if len(fields) == 4 and fields[0] == FORMAT.encode() and line.endswith(b"\n"):
                            name, key, digest = (field.decode("ascii", "replace") for field in fields[1:])
                            header = (name, key, digest, position)
                    position += len(line)
                if entries > 2 * len(latest) and entries > 16:
                    # Edited cassettes left older entries behind: keep the latest of each.
                    kept = []
                    for start, end in latest.values():
                        file.seek(start)
                        kept.append(b"\n" + file.read(end - start))
                    with contextlib.suppress(OSError, ValueError):
                        write_atomically(Path(path), b"".join(kept).decode("utf-8"))
                    self.index.clear()  # offsets changed; the next run reads the compacted pack
        except OSError:
            return

    def get(self, name: str, key: str) -> tuple[Any] | None:
        """The data (in a 1-tuple: it may be None) of `name` parsed from text with digest `key`."""
        found = self.index.get((name, key))
        if found is None:
            return None
        offset, length, digest = found
        try:
            with open(self.path, "rb") as file:
                file.seek(offset)
                payload = file.read(length)
        except OSError:
            return None
        if _digest(payload) != digest:
            return None  # cut short, damaged, or the pack was rewritten since it was read
        try:
            return (json.loads(payload),)
        except ValueError:
            return None

    def add(self, name: str, key: str, data: Any) -> None:
        try:
            payload = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
            # Only what JSON gives back unchanged is kept: a YAML date, binary or set is not.
            if json.loads(payload) != data:
                return
            encoded = payload.encode("utf-8")
        except (TypeError, ValueError):
            return
        # On a line of its own even after an entry cut short (a process killed while appending).
        entry = f"\n{FORMAT}\t{name}\t{key}\t{_digest(encoded)}\n".encode() + encoded + b"\n"
        # One write in append mode: entries from several processes follow one another whole.
        with contextlib.suppress(OSError):
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(descriptor, entry)
            finally:
                os.close(descriptor)


class CassetteCache:
    """What `yaml.load(text, Loader=yaml.CSafeLoader)` returned for each cassette's current text."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._packs: dict[str, _Pack] = {}

    def pack(self, path: Path) -> Path:
        """The pack holding the entries of the cassettes in `path`'s folder."""
        return Path(self._pack_path(os.path.dirname(os.path.abspath(path))))

    def _pack_path(self, folder: str) -> str:
        return os.path.join(self.directory, _digest(folder.encode("utf-8", "surrogatepass")) + ".pack")

    def parse(self, path: Path, text: str) -> Any:
        """The safe-loaded YAML of `text`, the content of the cassette at `path`: from the cache when
        it holds the parse of this very text, else parsed (yaml.YAMLError as yaml.load raises it) and
        kept for the next run."""
        # The loader's version is part of the key: another PyYAML may read the same text differently.
        key = _digest(f"{FORMAT}\0{yaml.__version__}\0{text}".encode("utf-8", "surrogatepass"))
        folder, name = os.path.split(os.path.abspath(path))
        pack = self._packs.get(folder)
        if pack is None:
            pack = self._packs[folder] = _Pack(self._pack_path(folder))
        found = pack.get(name, key)
        if found is not None:
            return found[0]
        data = yaml.load(text, Loader=yaml.CSafeLoader)
        if name.isascii() and "\t" not in name and "\n" not in name:  # as cassette_path names them
            pack.add(name, key, data)
        return data
