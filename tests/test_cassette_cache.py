"""The parsed-cassette cache: invisible (an edited cassette is read afresh, whatever its size and
time stamps say), robust (a damaged entry is skipped and written again) and safe with concurrent
writers (xdist workers). Each run (process) reads a folder's pack once: a new CassetteCache stands for
a new run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from pytest_rewardkit.cassette_cache import FORMAT, CassetteCache
from pytest_rewardkit.recording import Interaction, RowCassette
from pytest_rewardkit.testing import FakeChatServer

if TYPE_CHECKING:
    from conftest import ChatRow, MakeSuite

URI = "http://127.0.0.1:4010/v1/chat/completions"
BODY: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "What is 6*7?"}]}


def cassette(path: Path, *contents: str) -> Path:
    """A one-exchange cassette at `path` answering `contents`."""
    choices = [{"index": i, "message": {"role": "assistant", "content": c}} for i, c in enumerate(contents)]
    exchange = Interaction(
        method="POST",
        uri=URI,
        request_headers={"Content-Type": "application/json"},
        request_body=BODY,
        status=200,
        response_headers={"Content-Type": "application/json"},
        response_body={"choices": choices, "usage": {"prompt_tokens": 5, "completion_tokens": 2}},
    )
    RowCassette(path, [exchange]).save([])
    return path


def answers(loaded: RowCassette) -> list[str]:
    return [c["message"]["content"] for i in loaded.interactions for c in i.choices]


@pytest.fixture
def no_yaml(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Call it to make any YAML parse fail: what loads afterwards came from the cache."""

    def forbid() -> None:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("parsed the YAML again instead of reading the cache")

        monkeypatch.setattr(yaml, "load", refuse)

    return forbid


def test_a_cassette_is_parsed_once_then_read_from_the_cache_with_the_same_result(
    tmp_path: Path, no_yaml: Callable[[], None]
) -> None:
    path = cassette(tmp_path / "row.yaml", "42", "forty-two")
    cache = CassetteCache(tmp_path / "cache")
    uncached = RowCassette.load(path)
    first = RowCassette.load(path, cache)
    assert [entry.name for entry in (tmp_path / "cache").iterdir()] == [cache.pack(path).name]
    no_yaml()
    again = RowCassette.load(path, CassetteCache(tmp_path / "cache"))
    assert again == first == uncached
    assert answers(again) == ["42", "forty-two"]
    assert again.recorded_stats(again.interactions[0].key) == uncached.recorded_stats(uncached.interactions[0].key)


def test_an_edited_cassette_is_read_afresh_even_with_the_same_size_time_stamps_and_inode(
    tmp_path: Path, no_yaml: Callable[[], None]
) -> None:
    path = cassette(tmp_path / "row.yaml", "41")
    cache = CassetteCache(tmp_path / "cache")
    assert answers(RowCassette.load(path, cache)) == ["41"]
    before = path.stat()
    with path.open("r+b") as file:  # in place: same inode, same size
        data = file.read()
        file.seek(0)
        file.write(data.replace(b'"41"', b'"42"'))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    assert answers(RowCassette.load(path, CassetteCache(tmp_path / "cache"))) == ["42"]
    # The cache now holds the edited cassette.
    no_yaml()
    assert answers(RowCassette.load(path, CassetteCache(tmp_path / "cache"))) == ["42"]


def _damage(kind: str, pack: Path) -> None:
    raw = pack.read_bytes()
    if kind == "garbage":
        pack.write_bytes(b"\x00\xff not an entry")
    elif kind == "empty":
        pack.write_bytes(b"")
    elif kind == "cut short":
        pack.write_bytes(raw[: len(raw) // 2])
    elif kind == "payload altered, still JSON":
        altered = raw.replace(b'\\"41\\"', b'\\"99\\"')  # the answer, inside the body's JSON string
        assert altered != raw and json.loads(altered.strip().split(b"\n")[1])
        pack.write_bytes(altered)
    elif kind == "another format":
        pack.write_bytes(raw.replace(FORMAT.encode(), b"rewardkit-cassette-cache-0"))
    elif kind == "a directory":
        pack.unlink()
        pack.mkdir()


@pytest.mark.parametrize(
    "kind", ["garbage", "empty", "cut short", "payload altered, still JSON", "another format", "a directory"]
)
def test_a_damaged_entry_is_ignored_and_rebuilt(tmp_path: Path, kind: str, no_yaml: Callable[[], None]) -> None:
    path = cassette(tmp_path / "row.yaml", "41")
    cache = CassetteCache(tmp_path / "cache")
    RowCassette.load(path, cache)
    _damage(kind, cache.pack(path))
    assert answers(RowCassette.load(path, CassetteCache(tmp_path / "cache"))) == ["41"]
    if kind == "a directory":
        return  # cannot be written: replay goes on, parsing every time
    no_yaml()
    assert answers(RowCassette.load(path, CassetteCache(tmp_path / "cache"))) == ["41"]


def test_a_pack_left_with_old_entries_by_many_edits_keeps_the_latest_of_each(
    tmp_path: Path, no_yaml: Callable[[], None]
) -> None:
    other = cassette(tmp_path / "other.yaml", "7")
    path = tmp_path / "row.yaml"
    for answer in range(40):
        cassette(path, str(answer))
        assert answers(RowCassette.load(path, CassetteCache(tmp_path / "cache"))) == [str(answer)]
    RowCassette.load(other, CassetteCache(tmp_path / "cache"))
    pack = CassetteCache(tmp_path / "cache").pack(path)
    headers = [line for line in pack.read_bytes().split(b"\n") if line.startswith(FORMAT.encode())]
    assert len(headers) <= 2 * 2 + 16  # compacted on the way: not one entry per edit
    no_yaml()
    assert answers(RowCassette.load(path, CassetteCache(tmp_path / "cache"))) == ["39"]
    assert answers(RowCassette.load(other, CassetteCache(tmp_path / "cache"))) == ["7"]


def test_yaml_that_json_cannot_hold_is_parsed_every_time(tmp_path: Path) -> None:
    path = cassette(tmp_path / "row.yaml", "41")
    # A hand-edited header whose plain scalar YAML reads as a date.
    header = "Content-Type:\n      - application/json"
    text = path.read_text(encoding="utf-8").replace(header, "Date:\n      - 2024-01-02")
    assert "2024-01-02" in text
    path.write_text(text, encoding="utf-8")
    cache = CassetteCache(tmp_path / "cache")
    loaded = RowCassette.load(path, cache)
    assert loaded == RowCassette.load(path)
    assert loaded.interactions[0].response_headers == {"Date": "2024-01-02"}
    assert not cache.pack(path).exists()


def test_a_cache_that_cannot_be_written_costs_only_the_speed(tmp_path: Path) -> None:
    path = cassette(tmp_path / "row.yaml", "41")
    (tmp_path / "cache").write_text("a file where the cache directory should be", encoding="utf-8")
    cache = CassetteCache(tmp_path / "cache")
    assert answers(RowCassette.load(path, cache)) == ["41"]
    assert answers(RowCassette.load(path, cache)) == ["41"]


WORKER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from pytest_rewardkit.cassette_cache import CassetteCache
    from pytest_rewardkit.recording import RowCassette

    path, cache_dir, role = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    versions = [path.with_suffix(".a"), path.with_suffix(".b")]
    seen = set()
    for number in range(150):
        if role == "editor":  # the cassette changes under the readers, atomically, like a git checkout
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(versions[number % 2].read_bytes())
            os.replace(tmp, path)
            continue
        cache = CassetteCache(cache_dir)  # a run of its own: reads the pack as the others leave it
        loaded = RowCassette.load(path, cache)
        answers = [c["message"]["content"] for i in loaded.interactions for c in i.choices]
        assert answers in (["41", "7"], ["42", "8"]), answers
        seen.add(answers[0])
        if number % 10 == 0:  # start afresh now and then: the pack is created again, while the others read it
            cache.pack(path).unlink(missing_ok=True)
    """
)


def test_concurrent_writers_and_an_edit_under_them_never_give_a_wrong_or_stale_parse(
    tmp_path: Path, no_yaml: Callable[[], None]
) -> None:
    path = tmp_path / "row.yaml"
    cassette(path.with_suffix(".a"), "41", "7")
    cassette(path.with_suffix(".b"), "42", "8")
    path.write_bytes(path.with_suffix(".a").read_bytes())
    cache_dir = tmp_path / "cache"
    roles = ["editor", "reader", "reader", "reader"]
    processes = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(path), str(cache_dir), role], stderr=subprocess.PIPE)
        for role in roles
    ]
    failures = [process.communicate(timeout=120)[1].decode() for process in processes if process.wait(timeout=120)]
    assert failures == []
    # A compaction writes through a temporary file of its own, renamed into place: none is left over.
    assert [p.name for p in cache_dir.iterdir() if p.name.endswith(".tmp")] == []
    # The editor's last version, not a stale entry.
    assert answers(RowCassette.load(path, CassetteCache(cache_dir))) == ["42", "8"]
    no_yaml()
    assert answers(RowCassette.load(path, CassetteCache(cache_dir))) == ["42", "8"]


# -- through pytest ---------------------------------------------------------------------------------------------------


@pytest.fixture
def recorded_suite(make_suite: MakeSuite, chat_row: ChatRow, quiet_pytester: pytest.Pytester) -> Iterator[Path]:
    """Two rows recorded against the local fake server: r0 answered right ("10", "10"), r1 wrong."""
    make_suite([chat_row(f"r{i}", None, ground_truth="10") for i in range(2)], models={"fake": "acme/fake"})
    server = FakeChatServer(table={"question r0": ["10"], "question r1": ["11"]})
    base_url = server.start_in_thread()
    try:
        result = quiet_pytester.runpytest(
            "suite", "--rk-model", "fake", "--rk-n", "2", "--rk-base-url", base_url, "--record-mode=new_episodes"
        )
        result.assert_outcomes(passed=1, failed=1)
    finally:
        server.stop()
    yield quiet_pytester.path / "cassettes" / "suite" / "fake"


def replay(pytester: pytest.Pytester, *args: str) -> dict[str, list[float]]:
    """Replay offline; each row's variant scores."""
    result = pytester.runpytest_subprocess("suite", "--rk-model", "fake", "--rk-n", "2", *args)
    assert result.ret in (0, 1), result.stdout.str()
    scores: dict[str, list[float]] = {}
    for line in (pytester.path / "rewardkit-results" / "results.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        scores.setdefault(record["row_id"], []).append(record["score"])
    return scores


def entries(pytester: pytest.Pytester) -> list[bytes]:
    """The cache's entries (their header lines), in its packs."""
    folder = pytester.path / ".pytest_cache" / "d" / "rewardkit-cassettes"
    packs = sorted(folder.iterdir()) if folder.is_dir() else []
    return [line for pack in packs for line in pack.read_bytes().split(b"\n") if line.startswith(FORMAT.encode())]


def test_a_replay_after_a_cassette_edit_scores_the_edited_responses(
    recorded_suite: Path, quiet_pytester: pytest.Pytester
) -> None:
    assert replay(quiet_pytester) == {"r0": [1.0, 1.0], "r1": [0.0, 0.0]}
    assert len(entries(quiet_pytester)) == 2
    row = recorded_suite / "r1.yaml"
    row.write_text(row.read_text(encoding="utf-8").replace('"content": "11"', '"content": "10"'), encoding="utf-8")
    assert replay(quiet_pytester) == {"r0": [1.0, 1.0], "r1": [1.0, 1.0]}
    assert len(entries(quiet_pytester)) == 3  # the edited cassette's parse beside the old one
    assert replay(quiet_pytester) == {"r0": [1.0, 1.0], "r1": [1.0, 1.0]}
    assert len(entries(quiet_pytester)) == 3


def test_xdist_workers_fill_one_cache_that_a_serial_replay_then_reads(
    recorded_suite: Path, quiet_pytester: pytest.Pytester
) -> None:
    expected = {"r0": [1.0, 1.0], "r1": [0.0, 0.0]}
    assert replay(quiet_pytester, "-n", "2") == expected
    written = entries(quiet_pytester)
    assert len(written) == 2
    assert replay(quiet_pytester) == expected
    assert entries(quiet_pytester) == written  # all read from the cache: nothing parsed again


def test_without_pytest_cache_nothing_is_kept(recorded_suite: Path, quiet_pytester: pytest.Pytester) -> None:
    assert replay(quiet_pytester, "-p", "no:cacheprovider") == {"r0": [1.0, 1.0], "r1": [0.0, 0.0]}
    assert entries(quiet_pytester) == []
