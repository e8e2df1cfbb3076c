"""examples/multi_turn figures: rows covered, model requests per rollout, replay time per row, and
the `multi_turn` checker's agreement with BFCL's own checker.

    python benchmarks/multi_turn.py                          # rows, requests, replay time
    python benchmarks/multi_turn.py --bfcl-root path/to/berkeley-function-call-leaderboard

Replay time: the 25 rows' rollouts replayed from the committed cassettes (environment calls
really run, each request looked up by its body) and scored, in this process, best of `--repeat`.

Agreement (needs a local copy of bfcl-eval's source, which is not part of this project): on each
row, four trajectories (the ground truth; the next row's ground truth; the ground truth with one
string argument changed; the ground truth without its last turn's calls) are judged by this
project's checker (our environments) and by BFCL's `multi_turn_checker` (its own environments,
the model's calls decoded as BFCL call strings). A verdict agrees when both pass or both fail.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from pytest_rewardkit.config import Options
from pytest_rewardkit.evaluation import Case, evaluate_case
from pytest_rewardkit.generation import GenerationConfig, Generator
from pytest_rewardkit.models import Message, Trajectory
from pytest_rewardkit.rewards.multi_turn import model_turns, multi_turn_reward
from pytest_rewardkit.suite import load_suite

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "multi_turn"


def replay_all(cases: list[Case]) -> tuple[dict[str, Trajectory], float]:
    generator = Generator(GenerationConfig(cassette_root=ROOT / "cassettes"))
    started = time.perf_counter()
    found: dict[str, Trajectory] = {}
    for case in cases:
        scored = Case(settings=case.settings, row=case.row, row_id=case.row_id, source=generator.responses)
        outcome = evaluate_case(scored)
        assert outcome.passed, outcome.error or outcome.variants[0].result
        trajectory = outcome.variants[0].trajectory
        assert trajectory is not None
        found[case.row_id] = trajectory
    return found, time.perf_counter() - started


def changed_argument(trajectory: Trajectory) -> Trajectory:
    """The trajectory with the first string argument of its last call that has one changed."""
    changed = trajectory.model_copy(deep=True)
    for message in reversed(changed.messages):
        for call in message.tool_calls or []:
            arguments = json.loads(call["function"]["arguments"])
            for key, value in arguments.items():
                if isinstance(value, str):
                    call["function"]["arguments"] = json.dumps({**arguments, key: value + "_changed"})
                    return changed
    raise ValueError("no string argument")


def without_last_turn(trajectory: Trajectory) -> Trajectory:
    last_user = max(i for i, m in enumerate(trajectory.messages) if m.role == "user")
    kept = [*trajectory.messages[: last_user + 1], Message(role="assistant", content="I will not.")]
    return trajectory.model_copy(update={"messages": kept})


def ours(case: Case, trajectory: Trajectory) -> bool:
    result = multi_turn_reward(
        trajectory.messages,
        ground_truth=case.row.ground_truth,
        environment=case.environment(),
        initial_config=case.row.extra["initial_config"],
        excluded_function=case.row.extra["excluded_function"],
    )
    assert not result.is_error, result.reason
    return result.score == 1.0


def bfcl_calls(trajectory: Trajectory, turns: int) -> list[list[list[str]]]:
    """The model's calls as BFCL's decoded form: per turn, per step, call strings."""
    decoded: list[list[list[str]]] = []
    steps: list[list[str]] = []
    previous = None
    for position, message in enumerate(trajectory.messages):
        if message.role == "user" and previous != "user":
            steps = []
            decoded.append(steps)
        previous = message.role
        answered = position + 1 < len(trajectory.messages) and trajectory.messages[position + 1].role == "tool"
        if message.role == "assistant" and message.tool_calls and answered:
            calls = []
            for call in message.tool_calls:
                arguments = json.loads(call["function"]["arguments"])
                rendered = ",".join(f"{k}={v!r}" for k, v in arguments.items())
                calls.append(f"{call['function']['name']}({rendered})")
            steps.append(calls)
    assert len(model_turns(trajectory.messages)) == len(decoded)
    return (decoded + [[] for _ in range(turns)])[:turns]


def agreement(cases: list[Case], replayed: dict[str, Trajectory], bfcl_root: Path) -> None:
    sys.path.insert(0, str(bfcl_root))
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker

    ids = [c.row_id for c in cases]
    kinds: dict[str, list[tuple[bool, bool]]] = {}
    run = 0
    for position, case in enumerate(cases):
        truth = replayed[case.row_id]
        variants = {
            "ground truth": truth,
            "another row's": replayed[ids[(position + 1) % len(ids)]],
            "one argument changed": changed_argument(truth),
            "last turn skipped": without_last_turn(truth),
        }
        for kind, trajectory in variants.items():
            run += 1
            extra = case.row.extra
            entry = {"id": case.row_id, **{k: extra[k] for k in ("initial_config", "involved_classes")}}
            decoded = bfcl_calls(trajectory, len(case.row.ground_truth))
            theirs = multi_turn_checker(decoded, case.row.ground_truth, entry, "multi_turn_base", f"bench{run}")
            kinds.setdefault(kind, []).append((ours(case, trajectory), bool(theirs["valid"])))
    total = sum(len(v) for v in kinds.values())
    agreed = sum(a == b for v in kinds.values() for a, b in v)
    print(f"agreement with BFCL's multi_turn_checker: {agreed}/{total} verdicts")
    for kind, verdicts in kinds.items():
        same = sum(a == b for a, b in verdicts)
        passed = sum(a for a, _ in verdicts), sum(b for _, b in verdicts)
        print(f"  {kind:<22} agree {same}/{len(verdicts)}  (pass: ours {passed[0]}, BFCL {passed[1]})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bfcl-root", type=Path, help="folder holding bfcl-eval's `bfcl_eval` package")
    args = parser.parse_args()
    settings, entries = load_suite(EXAMPLE, Options(model="bfcl-ground-truth"), ROOT)
    cases = [Case(settings=settings, row=e.row, row_id=e.row_id) for e in entries if e.row is not None]
    timings = []
    for _ in range(args.repeat):
        replayed, seconds = replay_all(cases)
        timings.append(seconds)
    requests = [t.requests for t in replayed.values()]
    print(f"rows {len(cases)} (BFCL v4 multi_turn_base rows on the file system and math APIs)")
    mean = statistics.fmean(requests)
    print(f"model requests per rollout: mean {mean:.2f}, max {max(requests)}, min {min(requests)}")
    print(f"replay + scoring: {1000 * min(timings) / len(cases):.1f} ms per row (best of {args.repeat})")
    if args.bfcl_root:
        agreement(cases, replayed, args.bfcl_root)


if __name__ == "__main__":
    main()
