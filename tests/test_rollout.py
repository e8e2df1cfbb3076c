"""Multi-turn rollouts end to end: a suite with an environment, a scripted model on the local fake
server, recording into and replaying from the row's cassette."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_rewardkit.recording import RowCassette
from pytest_rewardkit.scripted_model import ScriptedToolModel
from pytest_rewardkit.testing import FakeChatServer
from tests.conftest import MakeSuite

ENV_MODULE = textwrap.dedent(
    '''
    import time

    from pytest_rewardkit import reward_function


    @reward_function
    def rested(messages, **kwargs):
        return {"score": float(any(m.role == "tool" and m.content == "rested" for m in messages))}


    class Counter:
        """A counter the model can change."""

        def __init__(self, value: int = 0, step: int = 1) -> None:
            self.value = value
            self._step = step

        def add(self, amount: int) -> dict:
            """Add to the counter.

            Args:
                amount: how much to add (times the row's step)
            """
            self.value += amount * self._step
            return {"value": self.value}

        def read(self) -> int:
            """The counter's value."""
            return self.value

        def boom(self) -> None:
            """Always fails."""
            raise RuntimeError("kaboom")

        def nap(self, seconds: float) -> str:
            """Sleep, like a slow service."""
            time.sleep(seconds)
            return "rested"
    '''
)


def row(row_id: str, turns: list[str], truth: list[list[str]], **extra: Any) -> dict[str, Any]:
    return {"id": row_id, "turns": turns, "initial_config": {"value": 1}, "ground_truth": truth, **extra}


ROWS = [
    row("r1", ["add two", "what is it now?"], [["add(amount=2)"], ["read()"]]),
    row("r2", ["add five", "add one more"], [["add(5)"], ["add(amount=1)"]]),
]


@pytest.fixture
def suite(make_suite: MakeSuite, quiet_pytester: pytest.Pytester) -> Any:
    def build(rows: list[dict[str, Any]] = ROWS, reward: str = "multi_turn", **environment: Any) -> Path:
        (quiet_pytester.path / "counter_env.py").write_text(ENV_MODULE, encoding="utf-8")
        return make_suite(
            rows, reward=reward, environment={"name": "counter_env:Counter", **environment}, models={"fake": "m"}
        )

    return build


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[FakeChatServer] = []

    def start(scripts: dict[str, list[list[Any]]]) -> tuple[FakeChatServer, str]:
        server = FakeChatServer(table=ScriptedToolModel(scripts))
        servers.append(server)
        return server, server.start_in_thread()

    yield start
    for server in servers:
        server.stop()


def truth_scripts(rows: list[dict[str, Any]] = ROWS) -> dict[str, list[list[Any]]]:
    return {r["turns"][0]: r["ground_truth"] for r in rows}


def rk(pytester: pytest.Pytester, base_url: str, mode: str, *args: str) -> pytest.RunResult:
    return pytester.runpytest(
        "suite",
        "-p",
        "no:cacheprovider",
        "--rk-model",
        "fake",
        "--rk-base-url",
        base_url,
        f"--record-mode={mode}",
        *args,
    )


def results(pytester: pytest.Pytester) -> list[dict[str, Any]]:
    lines = (pytester.path / "rewardkit-results" / "results.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def trajectories(pytester: pytest.Pytester, row_id: str) -> list[dict[str, Any]]:
    found = sorted((r for r in results(pytester) if r["row_id"] == row_id), key=lambda r: r["variant"])
    return [r["trajectory"] for r in found]


def tool_messages(trajectory: dict[str, Any]) -> list[str]:
    return [m["content"] for m in trajectory["messages"] if m["role"] == "tool"]


def test_ground_truth_rollouts_record_one_interaction_per_step_and_replay_offline(
    quiet_pytester: pytest.Pytester, suite: Any, serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite()
    server, base_url = serve(truth_scripts())
    recording = rk(quiet_pytester, base_url, "all")
    recording.assert_outcomes(passed=2)
    # r1: turn 0 = call + final answer, turn 1 = call + final answer: four model requests.
    assert len(RowCassette.load(quiet_pytester.path / "cassettes/suite/fake/r1.yaml").interactions) == 4
    assert len(server.requests) == 8
    recorded = trajectories(quiet_pytester, "r1")
    assert tool_messages(recorded[0]) == ['{"value": 3}', "3"]
    assert recorded[0]["final_state"] == {"value": 3}

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("replay opened a connection")

    monkeypatch.setattr("aiohttp.ClientSession._request", no_network)
    server.stop()
    replay = rk(quiet_pytester, base_url, "none")
    replay.assert_outcomes(passed=2)
    assert trajectories(quiet_pytester, "r1") == recorded


def test_bad_tool_calls_are_answered_as_errors_and_the_rollout_goes_on(
    quiet_pytester: pytest.Pytester, suite: Any, serve: Any
) -> None:
    suite([row("r1", ["do things"], [["add(amount=2)"]])])
    bad = [
        {"name": "launch_missiles", "arguments": {}},
        {"name": "add", "arguments": "{not json"},
        {"name": "add", "arguments": {"amount": "two"}},
        {"name": "add", "arguments": {"amount": 1, "sneaky": "__import__('os')"}},
        {"name": "boom", "arguments": {}},
        "add(amount=2)",
    ]
    _, base_url = serve({"do things": [bad]})
    rk(quiet_pytester, base_url, "all", "--rk-threshold", "0").assert_outcomes(passed=1)
    (trajectory,) = trajectories(quiet_pytester, "r1")
    answers = tool_messages(trajectory)
    assert answers[0].startswith("Error: unknown tool 'launch_missiles'; the tools are: add, boom, nap, read")
    assert answers[1].startswith("Error: the arguments of add are not JSON")
    assert answers[2] == "Error: invalid arguments for add: 'two' is not of type 'integer' (at amount)"
    assert answers[3] == "Error: invalid arguments for add: unexpected 'sneaky'; its parameters are: amount"
    assert answers[4] == "Error during execution: RuntimeError: kaboom"
    assert answers[5] == '{"value": 3}'
    assert trajectory["final_state"] == {"value": 3}


def test_max_steps_ends_the_turn_and_is_recorded_and_seen_by_the_reward(
    quiet_pytester: pytest.Pytester, suite: Any, serve: Any
) -> None:
    suite([row("r1", ["keep adding", "read"], [["add(amount=1)"], ["read()"]])], max_steps=3)
    _, base_url = serve({"keep adding": [["add(amount=1)"] * 10, ["read()"]]})
    result = rk(quiet_pytester, base_url, "all")
    result.assert_outcomes(failed=1)
    (trajectory,) = trajectories(quiet_pytester, "r1")
    assert [t["steps"] for t in trajectory["turns"]] == [3, 2]
    assert trajectory["turns"][0]["limit"] == "max_steps"
    assert trajectory["final_state"] == {"value": 4}
    result.stdout.fnmatch_lines(["*turn 0: the environment's state differs*(the rollout reached: turn 0: max_steps)*"])


def test_max_turns_and_the_time_limit_end_the_rollout(quiet_pytester: pytest.Pytester, suite: Any, serve: Any) -> None:
    suite([row("r1", ["add two", "what is it now?", "again"], [["add(amount=2)"], ["read()"], []])], max_turns=2)
    _, base_url = serve({"add two": [["add(amount=2)"], ["read()"], []]})
    rk(quiet_pytester, base_url, "all").assert_outcomes(passed=1)
    (trajectory,) = trajectories(quiet_pytester, "r1")
    assert trajectory["limit"] == "max_turns" and len(trajectory["turns"]) == 2

    suite([row("r1", ["add two"], [["add(amount=2)"]])], time_limit=1e-9)
    rk(quiet_pytester, base_url, "all").assert_outcomes(failed=1)
    (trajectory,) = trajectories(quiet_pytester, "r1")
    assert trajectory["limit"] == "time_limit" and trajectory["requests"] == 1
    assert trajectory["final_state"] == {"value": 1}  # the answer's call was not run
    # Replay takes the recording's decision, from the elapsed time kept with each answer.
    rk(quiet_pytester, base_url, "none").assert_outcomes(failed=1)
    assert trajectories(quiet_pytester, "r1")[0]["limit"] == "time_limit"


def test_a_replay_whose_environment_answers_differently_names_the_turn_and_step(
    quiet_pytester: pytest.Pytester, suite: Any, serve: Any
) -> None:
    suite()
    _, base_url = serve(truth_scripts())
    rk(quiet_pytester, base_url, "all").assert_outcomes(passed=2)
    # The environment now answers differently: each `add` counts triple.
    changed = [{**r, "initial_config": {"value": 1, "step": 3}} for r in ROWS]
    suite(changed)
    result = rk(quiet_pytester, base_url, "none")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "*row r1, rollout 0: replay diverged at turn 0, step 1: this request is not in *r1.yaml*",
            '*-*"content": "{\\"value\\": 3}"*',
            '*+*"content": "{\\"value\\": 7}"*',
        ]
    )


def test_n_variants_are_n_independent_rollouts(quiet_pytester: pytest.Pytester, suite: Any, serve: Any) -> None:
    suite()
    server, base_url = serve(truth_scripts())
    rk(quiet_pytester, base_url, "all", "--rk-n", "2").assert_outcomes(passed=2)
    assert len(server.requests) == 16  # every step of both rollouts of both rows asked for
    assert len(RowCassette.load(quiet_pytester.path / "cassettes/suite/fake/r1.yaml").interactions) == 8
    recorded = trajectories(quiet_pytester, "r1")
    assert len(recorded) == 2 and recorded[0]["messages"] == recorded[1]["messages"]
    rk(quiet_pytester, base_url, "none", "--rk-n", "2").assert_outcomes(passed=2)
    result = rk(quiet_pytester, base_url, "none", "--rk-n", "3")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*2 of 3 rollouts recorded for row r1; run with --record-mode=new_episodes*"])
    rk(quiet_pytester, base_url, "new_episodes", "--rk-n", "3").assert_outcomes(passed=2)
    assert len(server.requests) == 24


def test_a_slow_environment_call_does_not_hold_up_other_rows(
    quiet_pytester: pytest.Pytester, suite: Any, serve: Any
) -> None:
    rows = [row(f"r{i}", [f"nap {i}"], [["nap(seconds=0.5)"]]) for i in range(4)]
    suite(rows, reward="counter_env:rested")
    _, base_url = serve({f"nap {i}": [["nap(seconds=0.5)"]] for i in range(4)})
    result = rk(quiet_pytester, base_url, "all")
    result.assert_outcomes(passed=4)
    # Four half-second naps, run in worker threads at the same time: well under their 2 s sum.
    assert result.duration < 1.8


def test_a_missing_environment_or_tools_file_is_one_collection_error(
    quiet_pytester: pytest.Pytester, make_suite: MakeSuite
) -> None:
    make_suite(ROWS, reward="multi_turn", environment="nowhere:Nothing")
    result = quiet_pytester.runpytest("suite", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*environment: environment 'nowhere:Nothing': cannot import it*"])
    make_suite(ROWS, reward="multi_turn")
    result = quiet_pytester.runpytest("suite", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*multi-turn rows (`turns`) but the suite names no environment*"])
