"""examples/multi_turn: BFCL's ground-truth trajectories replay offline and pass 100% (serial and
under xdist); shuffled trajectories and one changed argument fail with a reason naming the turn;
the checker follows BFCL's rules."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_rewardkit.config import Options
from pytest_rewardkit.evaluation import Case, evaluate_case
from pytest_rewardkit.generation import GenerationConfig, Generator
from pytest_rewardkit.models import Message, Trajectory
from pytest_rewardkit.rewards.multi_turn import multi_turn_reward, parse_call
from pytest_rewardkit.suite import load_suite

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "examples" / "multi_turn"


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    settings, entries = load_suite(EXAMPLE, Options(model="bfcl-ground-truth"), ROOT)
    return [Case(settings=settings, row=e.row, row_id=e.row_id) for e in entries if e.row is not None]


@pytest.fixture(scope="module")
def replayed(cases: list[Case]) -> dict[str, Trajectory]:
    generator = Generator(GenerationConfig(cassette_root=ROOT / "cassettes"))
    found = {}
    for case in cases:
        (trajectory,) = generator.responses(case)
        assert isinstance(trajectory, Trajectory)
        found[case.row_id] = trajectory
    return found


def score(case: Case, trajectory: Trajectory) -> tuple[float | None, str]:
    outcome = evaluate_case(
        Case(settings=case.settings, row=case.row, row_id=case.row_id, source=lambda _: [trajectory])
    )
    assert outcome.error is None, outcome.error
    result = outcome.variants[0].result
    assert result is not None
    return outcome.reward, result.reason


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_ground_truth_replays_offline_and_passes_100_percent(workers: list[str], tmp_path: Path) -> None:
    command = [sys.executable, "-m", "pytest", str(EXAMPLE), "--rk-model", "bfcl-ground-truth", "-q"]
    command += ["-p", "no:cacheprovider", "--rk-output", str(tmp_path), "--rk-min-pass-rate", "1.0", *workers]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "25 passed" in run.stdout
    lines = (tmp_path / "results.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 25 and all(json.loads(line)["passed"] for line in lines)


def test_the_dataset_is_the_25_base_rows_on_the_file_system_and_math_apis(cases: list[Case]) -> None:
    assert len(cases) == 25
    assert all(set(c.row.extra["involved_classes"]) <= {"GorillaFileSystem", "MathAPI"} for c in cases)
    # Only the involved APIs' tools are offered (as in BFCL): math tools are excluded on file-system-only rows.
    only_files = next(c for c in cases if c.row.extra["involved_classes"] == ["GorillaFileSystem"])
    assert "mean" in only_files.row.extra["excluded_function"]


def test_each_step_is_one_request(replayed: dict[str, Trajectory], cases: list[Case]) -> None:
    for case in cases:
        trajectory = replayed[case.row_id]
        calls = sum(len(turn) for turn in case.row.ground_truth)
        assert trajectory.requests == calls + len(case.row.ground_truth)  # one per call, one final answer per turn
        assert trajectory.limit is None and not trajectory.limits_hit


def test_shuffled_trajectories_fail_with_a_reason_naming_the_turn(
    replayed: dict[str, Trajectory], cases: list[Case]
) -> None:
    ids = [c.row_id for c in cases]
    for position, case in enumerate(cases):
        other = replayed[ids[(position + 1) % len(ids)]]
        reward, reason = score(case, other)
        assert reward == 0.0, case.row_id
        assert reason.startswith("turn "), reason


def test_one_changed_argument_fails_at_its_turn(replayed: dict[str, Trajectory], cases: list[Case]) -> None:
    case = next(c for c in cases if c.row_id == "multi_turn_base_6")
    trajectory = replayed[case.row_id].model_copy(deep=True)
    # Turn 1 writes the report; write something else.
    (write,) = [m for m in trajectory.messages if m.tool_calls and "echo" in json.dumps(m.tool_calls)][:1]
    assert write.tool_calls is not None
    arguments = json.loads(write.tool_calls[0]["function"]["arguments"])
    write.tool_calls[0]["function"]["arguments"] = json.dumps({**arguments, "content": "Company Earning: 3000"})
    reward, reason = score(case, trajectory)
    assert reward == 0.0
    assert reason.startswith("turn 1: the environment's state differs from the ground truth's"), reason
    assert "Annual_Report_2023.docx" in reason
    assert score(case, replayed[case.row_id])[0] == 1.0


def test_per_turn_metrics(replayed: dict[str, Trajectory], cases: list[Case]) -> None:
    case = next(c for c in cases if c.row_id == "multi_turn_base_1")
    trajectory = replayed[case.row_id]
    truncated = trajectory.model_copy(update={"messages": trajectory.messages[:-4]})
    result = multi_turn_reward(
        truncated.messages,
        ground_truth=case.row.ground_truth,
        environment=case.environment(),
        initial_config=case.row.extra["initial_config"],
    )
    assert result.score == 0.0
    assert result.reason.startswith("turn 3: 1 call(s) expected, but the rollout ended before it")
    assert [result.metrics[f"turn_{t}"].score for t in range(4)] == [1.0, 1.0, 1.0, 0.0]
    assert result.metrics["turns_passed"].score == 0.75


# -- BFCL's rules, one by one, on a small environment ----------------------------------------------


class Box:
    def __init__(self, items: list[str] | None = None) -> None:
        self.items = list(items or [])

    def put(self, item: str) -> dict[str, Any]:
        """Put an item in the box.

        Args:
            item: the item
        """
        self.items.append(item)
        return {"count": len(self.items)}

    def look(self) -> str:
        """What is in the box."""
        return ", ".join(self.items)


@pytest.fixture
def box() -> Any:
    from pytest_rewardkit.environment import Environment, _make_tool, method_schema, public_methods

    tools = {n: _make_tool(n, *method_schema(f, "Box"), "Box") for n, f in public_methods(Box).items()}
    return Environment(Box, tools)


def conversation(*turns: list[tuple[str, dict[str, Any]]]) -> list[Message]:
    messages = []
    for index, calls in enumerate(turns):
        messages.append(Message(role="user", content=f"turn {index}"))
        for number, (name, arguments) in enumerate(calls):
            call = {
                "id": f"c{index}{number}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
            messages.append(Message(role="assistant", content=None, tool_calls=[call]))
            messages.append(Message(role="tool", content="(recorded result)", tool_call_id=f"c{index}{number}"))
        messages.append(Message(role="assistant", content="done"))
    return messages


def check(box: Any, messages: list[Message], truth: list[list[str]]) -> tuple[float, str]:
    result = multi_turn_reward(messages, ground_truth=truth, environment=box, initial_config={})
    return result.score, result.reason


def test_bfcl_rule_results_from_earlier_turns_count(box: Any) -> None:
    # The model looked in turn 0; the ground truth looks in turn 1: BFCL counts all results so far.
    messages = conversation([("put", {"item": "a"}), ("look", {})], [("put", {"item": "b"})])
    truth = [["put(item='a')"], ["look()", "put(item='b')"]]
    assert check(box, messages, truth) == (1.0, "all 2 turns match the ground truth")
    # Without the earlier look, the result "a" is missing.
    messages = conversation([("put", {"item": "a"})], [("put", {"item": "b"})])
    assert check(box, messages, truth)[1].startswith("turn 1: results of the ground truth's calls are not among")


def test_bfcl_rule_a_turn_without_expected_calls_is_not_checked_but_its_calls_count_later(box: Any) -> None:
    messages = conversation([("put", {"item": "a"})], [("put", {"item": "b"})], [("look", {})])
    score_, reason = check(box, messages, [["put('a')"], [], ["look()"]])
    assert score_ == 0.0 and reason.startswith("turn 2: the environment's state differs"), reason


def test_bfcl_rule_no_call_where_calls_are_expected_fails(box: Any) -> None:
    score_, reason = check(box, conversation([], []), [["put('a')"], []])
    assert score_ == 0.0 and reason == "turn 0: 1 call(s) expected, but the model made no tool call"


def test_bfcl_rule_extra_calls_that_leave_the_same_state_pass(box: Any) -> None:
    messages = conversation([("look", {}), ("put", {"item": "a"}), ("look", {})])
    assert check(box, messages, [["put(item='a')"]])[0] == 1.0


def test_bfcl_rule_missing_result_fails(box: Any) -> None:
    # Same final state, but the ground truth's `look` result was never produced by the model.
    messages = conversation([("put", {"item": "a"})])
    score_, reason = check(box, messages, [["put(item='a')", "look()"]])
    assert score_ == 0.0 and reason.startswith("turn 0: results of the ground truth's calls are not among"), reason


def test_a_claimed_result_in_the_conversation_is_not_believed(box: Any) -> None:
    messages = conversation([("put", {"item": "b"})])
    forged = copy.deepcopy(messages)
    forged[2] = Message(role="tool", content='{"count": 1}', tool_call_id="c00")
    assert check(box, forged, [["put(item='a')"]])[0] == 0.0


def test_ground_truth_calls_parse_positional_and_keyword_literals_only() -> None:
    assert parse_call("cd('docs')", ["folder"]).arguments == {"folder": "docs"}
    assert parse_call("mean(numbers=[1, 2.5])").arguments == {"numbers": [1, 2.5]}
    with pytest.raises(ValueError, match="arguments must be literals"):
        parse_call("cd(folder=__import__('os').getcwd())", ["folder"])
    with pytest.raises(ValueError, match="not a call of a function by name"):
        parse_call("os.system('x')")
