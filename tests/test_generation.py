"""Generation end to end: a suite folder run by pytest (pytester) against the local fake endpoint, recording
into and replaying from cassettes in the pytester directory."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_rewardkit.recording import RowCassette
from pytest_rewardkit.testing import FakeChatServer, Fault

if TYPE_CHECKING:
    from conftest import ChatRow, MakeSuite

MODEL = "acme/fake-model-v1"
ROWS = 4
CANDIDATES = 8
Serve = Callable[..., tuple[FakeChatServer, str]]


def table() -> dict[str, list[str]]:
    """Row r<i> is asked "question r<i>"; its candidates are distinct; only the first equals its ground truth."""
    return {f"question r{i}": [f"{i}{k}" for k in range(CANDIDATES)] for i in range(ROWS)}


@pytest.fixture
def serve() -> Iterator[Serve]:
    servers: list[FakeChatServer] = []

    def start(**kwargs: Any) -> tuple[FakeChatServer, str]:
        kwargs.setdefault("table", table())
        server = FakeChatServer(**kwargs)
        servers.append(server)
        return server, server.start_in_thread()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def suite(make_suite: MakeSuite, chat_row: ChatRow) -> Callable[..., Path]:
    """The suite folder: ROWS rows, alias `fake` for MODEL, a system prompt and sampling parameters."""

    def build(rows: int = ROWS, **overrides: Any) -> Path:
        config: dict[str, Any] = {
            "system_prompt": "Answer with a number.",
            "generation": {"temperature": 0.5, "max_tokens": 32},
            "models": {"fake": MODEL},
            **overrides,
        }
        return make_suite([chat_row(f"r{i}", None, ground_truth=f"{i}0") for i in range(rows)], **config)

    return build


def block_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection attempt in this process fails loudly."""

    def refuse(self: socket.socket, address: Any) -> None:
        raise OSError(f"network blocked in this test (connect to {address})")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


def rk(pytester: pytest.Pytester, base_url: str, mode: str, *args: str, n: int = 2, **kwargs: Any) -> pytest.RunResult:
    return pytester.runpytest(
        "suite",
        "--rk-model",
        "fake",
        "--rk-n",
        str(n),
        "--rk-base-url",
        base_url,
        f"--record-mode={mode}",
        "--rk-cassette-dir",
        "cassettes",
        "--rk-request-timeout",
        "5",
        *args,
        **kwargs,
    )


def results(pytester: pytest.Pytester) -> list[tuple[str, int | None, str | None, float | None, str | None]]:
    lines = (pytester.path / "rewardkit-results" / "results.jsonl").read_text(encoding="utf-8").splitlines()
    out = []
    for line in lines:
        record = json.loads(line)
        response = record["response"]["content"] if record["response"] else None
        out.append((record["row_id"], record["variant"], response, record["score"], record["error"]))
    return sorted(out, key=lambda r: (r[0], -1 if r[1] is None else r[1]))


def cassette(pytester: pytest.Pytester, row: str, root: str = "cassettes") -> Path:
    return pytester.path / root / "suite" / "fake" / f"{row}.yaml"


def recorded(pytester: pytest.Pytester, row: str, root: str = "cassettes") -> list[str]:
    loaded = RowCassette.load(cassette(pytester, row, root))
    return [c["message"]["content"] for i in loaded.interactions for c in i.choices]


def requested_n(server: FakeChatServer) -> dict[str, list[int | None]]:
    """Per row: the `n` of each request the server received."""
    seen: dict[str, list[int | None]] = {}
    for request in server.requests:
        seen.setdefault(request.json["messages"][-1]["content"].removeprefix("question "), []).append(
            request.json.get("n")
        )
    return seen


# -- record, replay -------------------------------------------------------------------------------------------------


def test_record_then_replay_with_the_network_blocked_gives_identical_results(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite()
    server, base_url = serve()
    recording = rk(pytester, base_url, "new_episodes")
    recording.assert_outcomes(passed=0, failed=ROWS)
    first = results(pytester)
    assert [(r, v, text) for r, v, text, _, _ in first] == [
        (f"r{i}", k, f"{i}{k}") for i in range(ROWS) for k in range(2)
    ]
    assert [score for *_, score, _ in first] == [1.0, 0.0] * ROWS
    assert requested_n(server) == {f"r{i}": [2] for i in range(ROWS)}

    server.stop()
    block_network(monkeypatch)
    replay = rk(pytester, base_url, "none")
    replay.assert_outcomes(passed=0, failed=ROWS)
    assert results(pytester) == first
    assert "network blocked" not in replay.stdout.str()


def test_the_request_is_system_prompt_row_messages_sampling_tools_and_the_resolved_model(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow, serve: Serve
) -> None:
    tools = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object", "properties": {}}}}]
    make_suite(
        [chat_row("r0", None, ground_truth="00", tools=tools)],
        system_prompt="Answer with a number.",
        generation={"temperature": 0.5, "top_p": 0.9, "max_tokens": 32, "stop": "###"},
        models={"fake": MODEL},
    )
    server, base_url = serve()
    rk(pytester, base_url, "new_episodes", n=1).assert_outcomes(passed=1)
    [request] = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.json == {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Answer with a number."},
            {"role": "user", "content": "question r0"},
        ],
        "temperature": 0.5,
        "top_p": 0.9,
        "max_tokens": 32,
        "stop": ["###"],
        "tools": tools,
    }


def test_xdist_records_byte_identical_cassettes(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve
) -> None:
    suite()
    # xdist workers import the suite's reward module from the pytester directory.
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\npythonpath = .\n")
    server, base_url = serve()
    rk(pytester, base_url, "new_episodes", "--rk-cassette-dir", "plain").assert_outcomes(failed=ROWS)
    server.reset()
    rk(pytester, base_url, "new_episodes", "--rk-cassette-dir", "xdist", "-n", "2").assert_outcomes(failed=ROWS)
    assert len(server.requests) == ROWS

    def files(root: str) -> dict[str, bytes]:
        base = pytester.path / root
        return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}

    # The measured latency of each exchange is the one thing two recordings of a run may differ in.
    latency = re.compile(rb"\n +latency_s: [0-9.e-]+")
    plain = files("plain")
    assert sorted(plain) == [f"suite/fake/r{i}.yaml" for i in range(ROWS)]
    assert all(len(latency.findall(text)) == 1 for text in plain.values())
    assert {k: latency.sub(b"", v) for k, v in files("xdist").items()} == {
        k: latency.sub(b"", v) for k, v in plain.items()
    }


def test_variants_of_a_row_and_rows_run_concurrently_within_the_limit(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve
) -> None:
    suite(rows=8)
    server, base_url = serve(honour_n=False, latency=0.3, table=None)
    started = time.perf_counter()
    rk(pytester, base_url, "new_episodes", "--rk-concurrency", "4", n=2)
    elapsed = time.perf_counter() - started
    assert len(server.requests) == 16
    # 16 requests of 0.3 s, 4 at a time: at least 4 rounds (1.2 s); one at a time would be 4.8 s.
    assert 1.2 <= elapsed < 3.0


# -- n variants -----------------------------------------------------------------------------------------------------


def test_raising_n_under_none_reports_the_missing_variants_and_opens_no_socket(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite()
    server, base_url = serve()
    rk(pytester, base_url, "new_episodes", n=4)
    server.stop()
    block_network(monkeypatch)
    result = rk(pytester, base_url, "none", n=8)
    result.assert_outcomes(errors=ROWS)
    for i in range(ROWS):
        result.stdout.re_match_lines(
            [rf".*4 of 8 variants recorded for row r{i}\b.*run with --record-mode=new_episodes.*"], consecutive=True
        )


def test_the_first_row_overlaps_with_the_rows_after_it(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve
) -> None:
    answered: list[float] = []

    def timed(body: dict[str, Any]) -> list[str]:
        answered.append(time.monotonic())
        return ["0"]

    suite()
    _, base_url = serve(table=timed, latency=0.4)
    rk(pytester, base_url, "new_episodes", "--rk-concurrency", str(ROWS), n=1)
    assert len(answered) == ROWS
    # All rows fit in the concurrency limit: they should be answered together, not row 0 one latency earlier.
    assert max(answered) - min(answered) < 0.2


def test_missing_variants_message_has_the_issue_wording(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve
) -> None:
    suite(rows=1)
    _server, base_url = serve()
    rk(pytester, base_url, "new_episodes", n=4)
    result = rk(pytester, base_url, "none", n=8)
    assert "4 of 8 variants recorded for row r0; run with --record-mode=new_episodes" in result.stdout.str()


def test_raising_n_under_new_episodes_records_only_the_missing_variants_and_keeps_the_first(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve
) -> None:
    suite()
    server, base_url = serve()
    rk(pytester, base_url, "new_episodes", n=4)
    before = {f"r{i}": RowCassette.load(cassette(pytester, f"r{i}")).interactions for i in range(ROWS)}
    server.requests.clear()
    rk(pytester, base_url, "new_episodes", n=8).assert_outcomes(failed=ROWS)
    assert requested_n(server) == {f"r{i}": [4] for i in range(ROWS)}
    for i in range(ROWS):
        after = RowCassette.load(cassette(pytester, f"r{i}")).interactions
        assert after[: len(before[f"r{i}"])] == before[f"r{i}"]
        assert recorded(pytester, f"r{i}") == [f"{i}{k}" for k in range(8)]
    assert [(r, v, text) for r, v, text, _, _ in results(pytester)] == [
        (f"r{i}", k, f"{i}{k}") for i in range(ROWS) for k in range(8)
    ]
    # Nothing more is requested once all 8 are there.
    server.requests.clear()
    rk(pytester, base_url, "new_episodes", n=8).assert_outcomes(failed=ROWS)
    assert server.requests == []


def test_an_endpoint_that_ignores_n_still_gives_n_distinct_variants(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve
) -> None:
    suite(rows=2)
    server, base_url = serve(honour_n=False)
    rk(pytester, base_url, "new_episodes", n=3).assert_outcomes(failed=2)
    seen = requested_n(server)
    # A probe with n=3 answers a single choice; the rest comes one variant per request. A row that starts after
    # the generator has learnt this skips the probe.
    assert all(seen[row] in ([3, None, None], [None, None, None]) for row in ("r0", "r1")), seen
    assert 3 in seen["r0"] + seen["r1"]
    first = results(pytester)
    for i in range(2):
        texts = {text for row, _, text, _, _ in first if row == f"r{i}"}
        assert texts == {f"{i}{k}" for k in range(3)}
    server.stop()
    rk(pytester, base_url, "none", n=3).assert_outcomes(failed=2)
    assert results(pytester) == first


# -- record modes ---------------------------------------------------------------------------------------------------


def test_once_records_only_rows_without_a_cassette(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve
) -> None:
    suite()
    server, base_url = serve()
    rk(pytester, base_url, "once", "--rk-limit", "1").assert_outcomes(failed=1)
    assert sorted(requested_n(server)) == ["r0"]
    kept = cassette(pytester, "r0").read_bytes()
    server.requests.clear()
    rk(pytester, base_url, "once").assert_outcomes(failed=ROWS)
    assert sorted(requested_n(server)) == [f"r{i}" for i in range(1, ROWS)]
    assert cassette(pytester, "r0").read_bytes() == kept
    # A row with a cassette is never added to under once, even when it lacks variants.
    server.requests.clear()
    result = rk(pytester, base_url, "once", n=3)
    result.assert_outcomes(errors=ROWS)
    result.stdout.fnmatch_lines(["*2 of 3 variants recorded for row r0*"])
    assert server.requests == []


def test_all_re_records_every_row_from_scratch(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve
) -> None:
    suite()
    server, base_url = serve()
    rk(pytester, base_url, "new_episodes")
    server.requests.clear()
    rk(pytester, base_url, "all").assert_outcomes(failed=ROWS)
    assert requested_n(server) == {f"r{i}": [2] for i in range(ROWS)}
    for i in range(ROWS):
        # The server moved on to candidates 2 and 3: the old recordings are replaced, not appended to.
        assert recorded(pytester, f"r{i}") == [f"{i}2", f"{i}3"]


def test_none_is_the_default_record_mode(pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve) -> None:
    suite()
    server, base_url = serve()
    rk(pytester, base_url, "new_episodes")
    server.requests.clear()
    result = pytester.runpytest(
        "suite", "--rk-model", "fake", "--rk-n", "3", "--rk-base-url", base_url, "--rk-cassette-dir", "cassettes"
    )
    result.assert_outcomes(errors=ROWS)
    assert server.requests == []


# -- misses and broken cassettes ------------------------------------------------------------------------------------


def test_a_cassette_miss_shows_the_nearest_recorded_request_as_a_diff(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve
) -> None:
    suite(rows=1)
    _server, base_url = serve()
    rk(pytester, base_url, "new_episodes")
    suite(rows=1, generation={"temperature": 0.9, "max_tokens": 32})
    result = rk(pytester, base_url, "none")
    result.assert_outcomes(errors=1)
    path = cassette(pytester, "r0")
    result.stdout.fnmatch_lines(
        [
            f"row r0: no recorded request in {path} matches this one (record mode none); "
            "run with --record-mode=new_episodes*",
            "Nearest recorded request, as a diff (endpoint and body):",
            "--- recorded",
            "+++ requested",
            '- "temperature": 0.5',
            '+ "temperature": 0.9',
        ]
    )


def test_a_truncated_cassette_is_one_error_naming_file_and_line_and_recording_never_overwrites_it(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve
) -> None:
    suite()
    server, base_url = serve()
    rk(pytester, base_url, "new_episodes")
    broken = cassette(pytester, "r1")
    whole = broken.read_text(encoding="utf-8")
    # Cut mid-string, inside the response body's block scalar: the YAML still parses.
    cut = whole[: whole.index('"content": "11"') + len('"content": "1')]
    broken.write_text(cut, encoding="utf-8")
    where = f"{broken}:{len(cut.splitlines())}: truncated cassette (it ends before vcrpy's closing 'version: 1')"
    for mode, xdist in (("none", False), ("once", False), ("new_episodes", False), ("new_episodes", True)):
        server.requests.clear()
        if xdist:
            args = ("suite", "--rk-model", "fake", "--rk-n", "2", "--rk-base-url", base_url, f"--record-mode={mode}")
            result = pytester.runpytest_subprocess(*args, "--rk-cassette-dir", "cassettes", "-n", "2")
        else:
            result = rk(pytester, base_url, mode)
        result.assert_outcomes(failed=ROWS - 1, errors=1)
        result.stdout.fnmatch_lines([f"*row r1: {where}; restore it from git (git checkout -- {broken}) or re-record*"])
        assert "Traceback" not in result.stdout.str()
        # Found before anything was asked of the model, and the file keeps what it had.
        assert server.requests == []
        assert broken.read_text(encoding="utf-8") == cut
    # --record-mode=all re-records every row from scratch, this one included: the documented way to replace it.
    rk(pytester, base_url, "all").assert_outcomes(failed=ROWS)
    assert len(recorded(pytester, "r1")) == 2 and broken.read_text(encoding="utf-8").endswith("version: 1\n")


# -- failures while recording ---------------------------------------------------------------------------------------


def test_a_401_while_recording_stops_the_session_once_and_keeps_rows_recorded_before(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve
) -> None:
    suite(rows=6)
    server, base_url = serve()
    # Two requests succeed, every later one is refused.
    server.script(Fault.timeout(0), Fault.timeout(0), *[Fault.status(401)] * 10)
    result = rk(pytester, base_url, "new_episodes", "--rk-concurrency", "1", n=1)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    output = result.stdout.str() + result.stderr.str()
    assert output.count("FIREWORKS_API_KEY") == 1, output
    result.stdout.fnmatch_lines(["*rewardkit: *answered 401 (*): set FIREWORKS_API_KEY to a valid API key*"])
    outcomes = result.parseoutcomes()
    # Not one failure per row; r1 may or may not be scored before the stop, but it is on disk either way.
    # The row that met the 401 is skipped, pointing at the reason printed once at the end.
    assert set(outcomes) <= {"passed", "skipped", "warnings"} and 1 <= outcomes["passed"] <= 2
    assert outcomes["skipped"] == 1
    assert recorded(pytester, "r0") == ["00"] and recorded(pytester, "r1") == ["10"]
    for i in range(2, 6):
        assert not cassette(pytester, f"r{i}").exists()


def test_a_401_under_xdist_stops_once_with_the_serial_message_and_exit_2(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve
) -> None:
    suite(rows=40)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\npythonpath = .\n")
    server, base_url = serve(api_key="sk-the-right-key")
    result = pytester.runpytest_subprocess(
        "suite",
        "--rk-model",
        "fake",
        "--rk-n",
        "1",
        "--rk-base-url",
        base_url,
        "--record-mode=new_episodes",
        "--rk-cassette-dir",
        "cassettes",
        "--rk-concurrency",
        "2",
        "-n",
        "2",
    )
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED, output
    assert output.count("FIREWORKS_API_KEY") == 1, output
    result.stdout.fnmatch_lines(
        ["*rewardkit: *answered 401 (Incorrect API key*): set FIREWORKS_API_KEY to a valid API key*"]
    )
    for crash in ("worker crashed", "node down", "keyboard-interrupt", "Traceback"):
        assert crash not in output, output
    assert "failed" not in result.parseoutcomes() and "error" not in result.parseoutcomes()
    # Each worker stops at its first 401: a handful of requests, not one per row.
    assert len(server.requests) <= 12


def test_without_a_key_and_without_cassettes_replay_is_one_collection_error(
    pytester: pytest.Pytester, suite: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FIREWORKS_API_KEY", raising=False)
    block_network(monkeypatch)
    suite()
    result = pytester.runpytest("suite", "--rk-model", "qwen3", "--rk-n", "4")
    result.assert_outcomes(errors=1)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "*no recorded responses for model 'qwen3' in *cassettes/suite/qwen3 (record mode none replays only).",
            "Record them: FIREWORKS_API_KEY=<your key> pytest * --rk-model qwen3 --rk-n 4 --record-mode=new_episodes",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_recording_from_fireworks_without_a_key_stops_once_before_any_request(
    pytester: pytest.Pytester, suite: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FIREWORKS_API_KEY", raising=False)
    block_network(monkeypatch)
    suite()
    result = pytester.runpytest("suite", "--rk-model", "qwen3", "--record-mode=new_episodes", "--rk-cassette-dir", "c")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    output = result.stdout.str()
    assert output.count("recording needs an API key: set FIREWORKS_API_KEY") == 1, output
    assert "network blocked" not in output
    assert not (pytester.path / "c").exists()


def test_the_key_comes_from_the_configured_variable_and_never_reaches_the_cassette(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-live-0123456789abcdef"
    monkeypatch.setenv("MY_PROVIDER_KEY", key)
    suite(rows=1)
    server, base_url = serve(api_key=key)
    rk(pytester, base_url, "new_episodes", "--rk-api-key-env", "MY_PROVIDER_KEY").assert_outcomes(failed=1)
    assert server.requests[0].headers["Authorization"] == f"Bearer {key}"
    text = cassette(pytester, "r0").read_text(encoding="utf-8")
    assert key not in text and "Authorization" not in text


def test_without_the_variable_the_key_comes_from_the_auth_file_and_never_reaches_the_cassette(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-file-0123456789abcdef"
    monkeypatch.delenv("FIREWORKS_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(pytester.path / "home"))
    (pytester.path / "home" / ".fireworks").mkdir(parents=True)
    (pytester.path / "home" / ".fireworks" / "auth.ini").write_text(f"[fireworks]\napi_key = {key}\n")
    suite(rows=1)
    server, base_url = serve(api_key=key)
    rk(pytester, base_url, "new_episodes").assert_outcomes(failed=1)
    assert server.requests[0].headers["Authorization"] == f"Bearer {key}"
    assert key not in cassette(pytester, "r0").read_text(encoding="utf-8")


def test_a_malformed_auth_file_is_one_usage_error_when_recording_and_ignored_on_replay(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FIREWORKS_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(pytester.path / "home"))
    (pytester.path / "home" / ".fireworks").mkdir(parents=True)
    (pytester.path / "home" / ".fireworks" / "auth.ini").write_text("api_key = sk-secret-value\n[broken\n")
    suite(rows=2)
    _server, base_url = serve()
    result = rk(pytester, base_url, "new_episodes")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "auth.ini: not an auth.ini file" in result.stderr.str() and "sk-secret-value" not in result.stderr.str()
    replay = rk(pytester, base_url, "none")  # replay needs no key: the only complaint is the missing cassettes
    assert "no recorded responses" in replay.stdout.str() and "auth.ini" not in replay.stdout.str()


def test_a_response_echoing_the_key_is_not_saved(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-live-0123456789abcdef"
    monkeypatch.setenv("FIREWORKS_API_KEY", key)
    suite(rows=1)
    _server, base_url = serve(table={"question r0": [f"your key is {key}"]})
    result = rk(pytester, base_url, "new_episodes", n=1)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*refused to save: the cassette would contain the API key*"])
    assert not cassette(pytester, "r0").exists()


def test_non_2xx_responses_are_never_recorded_and_a_final_failure_is_an_error_item(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve
) -> None:
    suite(rows=2)
    server, base_url = serve()
    server.script(Fault.status(503), Fault.status(429, retry_after=0.05))
    rk(pytester, base_url, "new_episodes", "-k", "r0").assert_outcomes(failed=1)
    assert len(server.requests) == 3
    [only] = RowCassette.load(cassette(pytester, "r0")).interactions
    assert only.status == 200
    text = cassette(pytester, "r0").read_text(encoding="utf-8")
    assert "Scripted fault" not in text and "code: 200" in text and "code: 503" not in text

    server.script(Fault.status(400, body={"error": {"message": "max_tokens too large"}}))
    result = rk(pytester, base_url, "new_episodes", "-k", "r1")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*answered 400: max_tokens too large*"])
    assert not cassette(pytester, "r1").exists()
    rows = results(pytester)
    assert [(row, score) for row, _, _, score, _ in rows] == [("r1", None)]
    assert "max_tokens too large" in str(rows[0][4])


@pytest.mark.parametrize("stop", ["keyboard interrupt", "-x"])
def test_an_interrupted_recording_keeps_every_finished_row(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow, serve: Serve, stop: str
) -> None:
    pytester.makepyfile(
        rk_stop="""
        from pytest_rewardkit import EvaluateResult, reward_function

        @reward_function
        def stop_at_r2(messages, ground_truth=None, **kwargs):
            if messages[-1].content.startswith("2") and kwargs["how"] == "keyboard interrupt":
                raise KeyboardInterrupt
            return EvaluateResult(score=float(not messages[-1].content.startswith("2")))
        """
    )
    rows = [chat_row(f"r{i}", None, ground_truth="-", how=stop) for i in range(8)]
    make_suite(rows, reward="rk_stop:stop_at_r2", models={"fake": MODEL})
    server, base_url = serve(latency=0.2, table={f"question r{i}": [f"{i}"] for i in range(8)})
    # A Ctrl-C in the inner run must not end this outer one too.
    options = ["-x"] if stop == "-x" else []
    result = rk(pytester, base_url, "new_episodes", "--rk-concurrency", "2", *options, n=1, no_reraise_ctrlc=True)
    assert result.ret in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.TESTS_FAILED)
    assert 3 <= len(server.requests) < 8, "the run should stop before every row was requested"
    time.sleep(0.3)  # lets the server answer the abandoned requests before it stops, keeping teardown quiet
    folder = cassette(pytester, "r0").parent
    names = sorted(p.name for p in folder.iterdir())
    assert names[:3] == ["r0.yaml", "r1.yaml", "r2.yaml"]
    assert not [name for name in names if name.endswith(".tmp") or name.startswith(".")]
    for name in names:
        assert recorded(pytester, name.removesuffix(".yaml")) == [name[1]]
    # The scored rows were written out before the interruption.
    assert {row for row, *_ in results(pytester)} >= {"r0", "r1"}


@pytest.mark.parametrize("when", ["rows finished", "rows finished under xdist", "first row waiting"])
def test_ctrl_c_while_recording_says_interrupted_in_the_summary_and_leaves_no_pending_task(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve, when: str
) -> None:
    suite(rows=30)
    server, base_url = serve(latency=0.3 if when.startswith("rows finished") else 5.0, table=None)
    command = [sys.executable, "-m", "pytest", "suite", "--rk-model", "fake", "--rk-base-url", base_url]
    command += ["--record-mode=new_episodes", "--rk-cassette-dir", "cassettes", "--rk-concurrency", "2"]
    command += ["-p", "no:cacheprovider", *(["-n", "2"] if when.endswith("xdist") else [])]
    folder = cassette(pytester, "r0").parent
    written = pytester.path / "rewardkit-results" / "results.jsonl"

    def waiting() -> bool:
        if when == "first row waiting":
            return not server.requests
        # Under xdist, workers record rows ahead of the controller hearing that any finished.
        return len(list(folder.glob("*.yaml"))) < 3 or (when.endswith("xdist") and not _lines(written))

    with subprocess.Popen(
        command, cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as run:
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and waiting():
                time.sleep(0.05)
            run.send_signal(signal.SIGINT)
            output, _ = run.communicate(timeout=30)
        finally:
            run.kill()
    assert run.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "KeyboardInterrupt" in output
    for noise in (
        "Task was destroyed but it is pending",
        "Unclosed client session",
        "Unclosed connector",
        "Exception ignored",
    ):
        assert noise not in output, output
    if when == "first row waiting":
        assert not folder.exists()
        return
    summary = json.loads((pytester.path / "rewardkit-results" / "summary.json").read_text(encoding="utf-8"))
    finished = {row for row, *_ in results(pytester)}
    assert summary["run"]["interrupted"] is True and summary["run"]["reason"]
    assert summary["run"]["rows_finished"] == len(finished) and 1 <= len(finished) < 30
    assert summary["run"]["rows_collected"] == 30
    assert summary["summaries"][0]["rows"] == len(finished)
    # Every finished row's cassette is whole (none half-written).
    for path in folder.glob("*.yaml"):
        assert RowCassette.load(path).interactions


# Sends the run itself a real SIGINT from inside the results writer, on the second row written:
# either before the row reaches the files (the row is counted, not yet written) or between
# outcomes.jsonl and results.jsonl.
INTERRUPTING_WRITER = """
import os
import signal

import pytest_rewardkit.outcomes as outcomes

calls = []


def interrupt_on_the_second_row():
    calls.append(None)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGINT)


if "{where}" == "before the row is written":
    real_result_lines = outcomes._result_lines

    def result_lines(outcome):
        interrupt_on_the_second_row()
        return real_result_lines(outcome)

    outcomes._result_lines = result_lines
else:
    real_init = outcomes.ResultsWriter.__init__

    class Results:
        def __init__(self, file):
            self.file = file

        def write(self, text):
            interrupt_on_the_second_row()
            return self.file.write(text)

        def __getattr__(self, name):
            return getattr(self.file, name)

    def init(self, directory):
        real_init(self, directory)
        self._results = Results(self._results)

    outcomes.ResultsWriter.__init__ = init
"""


@pytest.mark.parametrize("where", ["before the row is written", "between outcomes.jsonl and results.jsonl"])
def test_ctrl_c_inside_the_results_writer_leaves_the_count_and_the_files_agreeing(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve, where: str
) -> None:
    suite()
    _server, base_url = serve()
    pytester.makeconftest(INTERRUPTING_WRITER.replace("{where}", where))
    result = pytester.runpytest_subprocess(
        "suite", "--rk-model", "fake", "--rk-n", "2", "--rk-base-url", base_url,
        "--record-mode=new_episodes", "--rk-cassette-dir", "cassettes", "-p", "no:cacheprovider",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.INTERRUPTED, result.stdout.str()
    folder = pytester.path / "rewardkit-results"
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    outcomes = [json.loads(line)["row_id"] for line in (folder / "outcomes.jsonl").read_text().splitlines()]
    # The interrupt waited for the row being written: both rows are counted and in both files.
    assert summary["run"]["interrupted"] is True
    assert summary["run"]["rows_finished"] == 2
    assert outcomes == ["r0", "r1"]
    assert [row for row, *_ in results(pytester)] == ["r0", "r0", "r1", "r1"]
    assert summary["summaries"][0]["rows"] == 2


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_a_complete_run_is_not_interrupted_in_the_summary(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve
) -> None:
    suite()
    _server, base_url = serve()
    rk(pytester, base_url, "new_episodes")
    summary = json.loads((pytester.path / "rewardkit-results" / "summary.json").read_text(encoding="utf-8"))
    assert summary["run"] == {"interrupted": False, "reason": None, "rows_finished": ROWS, "rows_collected": ROWS}


# -- progress -------------------------------------------------------------------------------------------------------


def progress_lines(result: pytest.RunResult) -> list[str]:
    """Progress lines on the terminal, not inside a row's captured output."""
    shown = []
    captured = False
    for line in result.stdout.lines:
        if line.startswith("-") and "Captured" in line:
            captured = True
        elif line.startswith(("_", "=")):
            captured = False
        if line.startswith("rewardkit: ") and " rows, " in line:
            assert not captured, f"progress went to a row's captured output: {line}"
            shown.append(line)
    return shown


def test_progress_shows_on_the_terminal_while_recording_but_not_under_q_nor_when_replaying(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve
) -> None:
    suite()
    _server, base_url = serve()
    recording = rk(pytester, base_url, "new_episodes", "--rk-cassette-dir", "a")
    assert progress_lines(recording)[-1].startswith(
        f"rewardkit: {ROWS}/{ROWS} rows, 8 responses recorded, 0 errors, "
    ), recording.stdout.str()
    quiet = rk(pytester, base_url, "new_episodes", "--rk-cassette-dir", "b", "-q")
    assert progress_lines(quiet) == []
    assert len(recorded(pytester, "r0", root="b")) == 2
    replay = rk(pytester, base_url, "none", "--rk-cassette-dir", "a")
    assert progress_lines(replay) == []


def test_progress_shows_while_a_row_waits_with_rows_left_and_time_left(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve
) -> None:
    suite(rows=3)
    # The first answer takes 3 s (think: retries), the others come at once.
    server, base_url = serve(table=None)
    server.script(Fault.timeout(3.0))
    result = rk(pytester, base_url, "new_episodes", "--rk-concurrency", "1", "--rk-threshold", "0", n=1)
    result.assert_outcomes(passed=3)
    lines = progress_lines(result)
    # Shown while row r0 waited (nothing done yet), saying so, then the final figures.
    first = r"rewardkit: 0/3 rows, 0 responses recorded, 0 errors, 0\.0 rows/s, 1 row waiting \ds"
    assert re.fullmatch(first, lines[0]), lines
    assert lines[-1].startswith("rewardkit: 3/3 rows, 3 responses recorded, 0 errors, ")
    assert "waiting" not in lines[-1]


def test_progress_under_xdist_adds_up_what_the_workers_report(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve
) -> None:
    suite(rows=8)
    server, base_url = serve(table=None)
    server.script(Fault.status(400))
    result = run_recording(pytester, base_url, "--rk-threshold", "0", xdist=True)
    assert progress_lines(result)[-1].startswith("rewardkit: 8/8 rows, 7 responses recorded, 1 errors, ")


@pytest.mark.parametrize("quiet", [False, True], ids=["shown", "quiet"])
def test_progress_under_xdist_shows_while_workers_wait_before_any_row_finishes(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve, monkeypatch: pytest.MonkeyPatch, quiet: bool
) -> None:
    suite(rows=2)
    # One row per worker, each answered after 3 s (think: retries): no row finishes before then.
    server, base_url = serve(table=None)
    server.script(Fault.timeout(3.0), Fault.timeout(3.0))
    temp = pytester.mkdir("temp")
    monkeypatch.setenv("TMPDIR", str(temp))  # where the controller makes the workers' directory
    result = run_recording(pytester, base_url, "--rk-threshold", "0", *(["-q"] if quiet else []), xdist=True)
    result.assert_outcomes(passed=2)
    lines = progress_lines(result)
    assert list(temp.glob("rewardkit-progress-*")) == []
    if quiet:
        assert lines == []
        return
    # The controller showed what the waiting workers wrote (2 rows in all, none done yet, one or both waiting) ...
    first = (
        r"rewardkit: 0/2 rows, 0 responses recorded, 0 errors, 0\.0 rows/s, (1 row waiting|2 rows waiting, longest) \ds"
    )
    assert re.fullmatch(first, lines[0]), lines
    # ... and the final figures, from the rows' reports.
    assert lines[-1].startswith("rewardkit: 2/2 rows, 2 responses recorded, 0 errors, "), lines
    assert "waiting" not in lines[-1]


SHOW_EVERY_SECOND = """
import pytest_rewardkit.progress as progress


def pytest_configure(config):
    # A line every second instead of every 5: a long wait fits a short test.
    saved, progress.SHOW_EVERY = progress.SHOW_EVERY, 1.0
    config.add_cleanup(lambda: setattr(progress, "SHOW_EVERY", saved))
"""


def waited(line: str) -> int:
    """The seconds a progress line says a row has waited (the longest, when several wait)."""
    found = re.search(r", (?:1 row waiting|\d+ rows waiting, longest) (?:(\d+)m )?(\d+)s$", line)
    assert found is not None, line
    return int(found[1] or 0) * 60 + int(found[2])


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
def test_progress_keeps_showing_how_long_rows_wait_while_nothing_finishes(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve, xdist: bool
) -> None:
    suite(rows=2)
    # Both rows (one per worker under xdist) answered after 4.5 s (think: Retry-After): nothing finishes
    # before then, so only the waits change.
    server, base_url = serve(table=None)
    server.script(Fault.timeout(4.5), Fault.timeout(4.5))
    pytester.makeconftest(SHOW_EVERY_SECOND)
    result = run_recording(pytester, base_url, "--rk-threshold", "0", xdist=xdist)
    result.assert_outcomes(passed=2)
    lines = progress_lines(result)
    waiting = [line for line in lines if "waiting" in line]
    assert len(waiting) >= 2, lines
    assert all(line.startswith("rewardkit: 0/2 rows, 0 responses recorded, 0 errors, 0.0 rows/s, ") for line in waiting)
    waits = [waited(line) for line in waiting]
    assert waits == sorted(set(waits)), lines  # a new line for every new second the rows waited
    if xdist:
        # Each worker says how long it waits; the controller shows both, and the longer wait.
        assert any(", 2 rows waiting, longest " in line for line in waiting), lines
    else:
        assert all(", 1 row waiting " in line for line in waiting), lines
    # The final figures come after the waits, and say nothing of them.
    assert lines[-1].startswith("rewardkit: 2/2 rows, 2 responses recorded, 0 errors, "), lines
    assert "waiting" not in lines[-1]


def test_progress_counts_errors(pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve) -> None:
    suite(rows=1)
    server, base_url = serve()
    server.script(Fault.status(400))
    result = rk(pytester, base_url, "new_episodes")
    assert progress_lines(result)[-1].startswith("rewardkit: 1/1 rows, 0 responses recorded, 1 errors, ")


def test_progress_is_quiet_when_new_episodes_only_replays(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve
) -> None:
    suite()
    server, base_url = serve()
    rk(pytester, base_url, "new_episodes")
    server.requests.clear()
    again = rk(pytester, base_url, "new_episodes")
    assert server.requests == []
    assert progress_lines(again) == []


def test_time_left_is_estimated_from_the_rate() -> None:
    from pytest_rewardkit.progress import format_line

    workers = [
        {"process": "gw0", "total": 1319, "done": 60, "recorded": 240, "errors": 1, "waiting": 0.0},
        {"process": "gw1", "total": 1319, "done": 40, "recorded": 160, "errors": 0, "waiting": 0.0},
    ]
    assert format_line(workers, 50.0) == (
        "rewardkit: 100/1319 rows, 400 responses recorded, 1 errors, 2.0 rows/s, about 10m 10s left"
    )


def test_whether_an_endpoint_honours_n_is_learnt_per_endpoint(tmp_path: Path) -> None:
    from pytest_rewardkit.config import Options
    from pytest_rewardkit.evaluation import Case
    from pytest_rewardkit.generation import GenerationConfig, Generator
    from pytest_rewardkit.suite import load_suite

    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "rewardkit.yaml").write_text("reward: math\n")
    (tmp_path / "s" / "dataset.jsonl").write_text(
        json.dumps({"id": "q", "messages": [{"role": "user", "content": "q"}], "ground_truth": "1"}) + "\n"
    )
    generator = Generator(GenerationConfig(cassette_root=tmp_path / "cassettes", record_mode="all"))
    ignoring, honouring = FakeChatServer(honour_n=False), FakeChatServer(honour_n=True)
    try:
        with ignoring.running() as first, honouring.running() as second:
            for base_url in (first, second):
                settings, entries = load_suite(tmp_path / "s", Options(model="m", n=3, base_url=base_url))
                row = entries[0].row
                assert row is not None
                assert len(generator.responses(Case(settings=settings, row=row, row_id="q"))) == 3
            # The endpoint that ignores n gets one n=3 probe, then single requests; the other, one request.
            assert [r.json.get("n") for r in ignoring.requests] == [3, None, None]
            assert [r.json.get("n") for r in honouring.requests] == [3]
    finally:
        generator.close()


# -- portable cassettes ---------------------------------------------------------------------------------------------


def test_cassettes_replay_under_any_base_url(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite()
    server, base_url = serve()
    rk(pytester, base_url, "new_episodes").assert_outcomes(failed=ROWS)
    first = results(pytester)
    assert "uri: " + base_url + "/chat/completions" in cassette(pytester, "r0").read_text(encoding="utf-8")
    server.stop()
    block_network(monkeypatch)
    for elsewhere in ("https://api.fireworks.ai/inference/v1", "http://proxy.internal:8080/openai/v1"):
        rk(pytester, elsewhere, "none").assert_outcomes(failed=ROWS)
        assert results(pytester) == first
    # And with no --rk-base-url at all: Fireworks' default, whose path prefix is /inference/v1.
    plain = pytester.runpytest(
        "suite", "--rk-model", "fake", "--rk-n", "2", "--rk-cassette-dir", "cassettes", "--rk-threshold", "0"
    )
    plain.assert_outcomes(passed=ROWS)


def test_a_miss_under_another_base_url_says_where_it_was_recorded_and_never_advises_calling_fireworks(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve
) -> None:
    suite(rows=2)
    server, base_url = serve()
    rk(pytester, base_url, "new_episodes", n=2)
    (cassette(pytester, "r1")).unlink()
    server.stop()
    result = pytester.runpytest("suite", "--rk-model", "fake", "--rk-n", "4", "--rk-cassette-dir", "cassettes")
    result.assert_outcomes(errors=2)
    fix = (
        f"recorded against {base_url}, not https://api.fireworks.ai/inference/v1: to record what is missing "
        f"from that endpoint, run with --rk-base-url {base_url} --record-mode=new_episodes"
    )
    output = result.stdout.str()
    # A row with a partial cassette, and a row whose cassette is gone (its folder's others tell where).
    assert f"2 of 4 variants recorded for row r0; {fix}" in output
    assert f"row r1: no cassette {cassette(pytester, 'r1')} (record mode none); {fix}" in output
    # Every advice to record names the recording's endpoint (pytest repeats each error in its short summary,
    # truncated to the terminal's width except on CI, so the number of copies varies).
    advised = f"--rk-base-url {base_url} --record-mode=new_episodes"
    assert output.count("--record-mode=new_episodes") == output.count(advised) >= 2

    moved = "http://127.0.0.1:9/v1"
    result = rk(pytester, moved, "none", n=4)
    result.stdout.fnmatch_lines(
        [
            f"*2 of 4 variants recorded for row r0; run with --record-mode=new_episodes to record what is missing "
            f"from {moved} (this cassette was recorded against {base_url})*"
        ]
    )


def test_the_committed_demo_cassettes_still_replay(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    root = Path(__file__).resolve().parent.parent
    block_network(monkeypatch)
    result = pytester.runpytest(
        str(root / "examples" / "math"),
        "--rk-model",
        "gpt3-gsm8k-solutions",
        "--rk-n",
        "4",
        "--rk-limit",
        "25",
        "--rk-threshold",
        "0",
        "--rk-cassette-dir",
        str(root / "cassettes"),
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=25)


# -- compressed answers ---------------------------------------------------------------------------------------------


def test_gzipped_answers_are_stored_decoded_and_vcrpy_replays_them_through_httpx_requests_and_aiohttp(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve
) -> None:
    import asyncio

    import aiohttp
    import httpx
    import requests
    import vcr

    suite(rows=1)
    server, base_url = serve(gzip=True)
    rk(pytester, base_url, "new_episodes").assert_outcomes(failed=1)
    assert "gzip" in server.requests[0].headers.get("Accept-Encoding", "")
    path = cassette(pytester, "r0")
    text = path.read_text(encoding="utf-8")
    assert "Content-Encoding" not in text and "gzip" not in text
    [exchange] = RowCassette.load(path).interactions
    server.stop()  # vcrpy must answer everything from the cassette

    def check(status: int, payload: dict[str, Any]) -> None:
        assert status == 200
        assert [c["message"]["content"] for c in payload["choices"]] == ["00", "01"]

    with vcr.use_cassette(str(path), record_mode="none"), httpx.Client() as client:
        response = client.post(exchange.uri, json=exchange.request_body)
        check(response.status_code, response.json())
    with vcr.use_cassette(str(path), record_mode="none"):
        answer = requests.post(exchange.uri, json=exchange.request_body, timeout=5)
        check(answer.status_code, answer.json())

    async def via_aiohttp() -> None:
        async with aiohttp.ClientSession() as session, session.post(exchange.uri, json=exchange.request_body) as r:
            check(r.status, await r.json())

    with vcr.use_cassette(str(path), record_mode="none"):
        asyncio.run(via_aiohttp())


# -- hopeless runs --------------------------------------------------------------------------------------------------

UNKNOWN_MODEL = Fault.status(404, body={"error": {"message": "Model not found, inaccessible, and/or not deployed"}})


def run_recording(pytester: pytest.Pytester, base_url: str, *args: str, xdist: bool) -> pytest.RunResult:
    """A recording run with n=1 and 2 requests in flight; under xdist in a subprocess, 2 workers."""
    command = ["suite", "--rk-model", "fake", "--rk-n", "1", "--rk-base-url", base_url, "--record-mode=new_episodes"]
    command += ["--rk-cassette-dir", "cassettes", "--rk-concurrency", "2", *args]
    if not xdist:
        return pytester.runpytest(*command)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\npythonpath = .\n")
    return pytester.runpytest_subprocess(*command, "-n", "2")


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (UNKNOWN_MODEL, "answered 404: Model not found, inaccessible, and/or not deployed"),
        (Fault.status(503, retry_after=0), "answered 503: Scripted fault: HTTP 503. (gave up after 5 attempts in "),
    ],
    ids=["unknown-model", "5xx-exhausted"],
)
def test_a_hopeless_run_stops_after_5_rows_failing_alike_and_keeps_what_was_recorded(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve, fault: Fault, error: str, xdist: bool
) -> None:
    suite(rows=40)
    server, base_url = serve()
    # The first two requests succeed (two rows recorded), every later one fails the same way.
    server.script(Fault.timeout(0), Fault.timeout(0), *[fault] * 2000)
    result = run_recording(pytester, base_url, xdist=xdist)
    output = result.stdout.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED, output
    stop = "rewardkit: 5 rows in a row failed with the same error, so recording stops here"
    assert output.count(stop) == 1, output
    result.stdout.fnmatch_lines(
        [f"*{stop} (--rk-max-repeated-errors 5; everything recorded so far is kept): *{error}*"]
    )
    assert "node down" not in output and "worker crashed" not in output
    rows_asked = {r.json["messages"][-1]["content"] for r in server.requests}
    # Each process stops after 5 failing rows (plus the few already under way), not after 40.
    assert len(rows_asked) <= 16 * (2 if xdist else 1), rows_asked
    assert len(list((pytester.path / "cassettes" / "suite" / "fake").glob("*.yaml"))) == 2


@pytest.mark.parametrize("limit", [2, 0])
def test_how_many_rows_failing_alike_stop_the_run_is_an_option(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve, limit: int
) -> None:
    suite(rows=12)
    server, base_url = serve()
    server.script(*[UNKNOWN_MODEL] * 100)
    result = run_recording(
        pytester, base_url, "--rk-concurrency", "1", "--rk-max-repeated-errors", str(limit), xdist=False
    )
    if limit:
        assert result.ret == pytest.ExitCode.INTERRUPTED
        result.stdout.fnmatch_lines(
            ["*rewardkit: 2 rows in a row failed with the same error*(--rk-max-repeated-errors 2;*"]
        )
        assert len(server.requests) <= 4
    else:
        # 0: never stop, every row is its own error.
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.assert_outcomes(errors=12)
        assert len(server.requests) == 12


def test_a_negative_repeated_errors_limit_is_a_usage_error(quiet_pytester: pytest.Pytester) -> None:
    result = quiet_pytester.runpytest("--rk-max-repeated-errors", "-1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--rk-max-repeated-errors*greater than or equal to 0*"])


def test_rows_failing_differently_or_with_successes_between_do_not_stop_the_run(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve
) -> None:
    suite(rows=12)
    server, base_url = serve()
    server.script(*[UNKNOWN_MODEL, Fault.timeout(0)] * 3, *[Fault.status(400), Fault.status(422)] * 3)
    result = run_recording(pytester, base_url, "--rk-concurrency", "1", xdist=False)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "rows in a row failed" not in result.stdout.str()
    assert len(server.requests) == 12


def test_replay_never_imports_the_http_stack(
    pytester: pytest.Pytester, suite: Callable[..., Path], serve: Serve
) -> None:
    suite()
    _server, base_url = serve()
    rk(pytester, base_url, "new_episodes")
    pytester.makeconftest(
        "import sys\n\ndef pytest_sessionfinish(session):\n    print('aiohttp imported:', 'aiohttp' in sys.modules)\n"
    )
    result = pytester.runpytest_subprocess(
        "suite", "--rk-model", "fake", "--rk-n", "2", "--rk-cassette-dir", "cassettes"
    )
    result.assert_outcomes(failed=ROWS)
    result.stdout.fnmatch_lines(["*aiohttp imported: False*"])
