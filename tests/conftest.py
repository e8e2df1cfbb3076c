"""Fixtures that build small suite folders (rewardkit.yaml + dataset.jsonl + a custom reward module)."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_rewardkit.dataset import write_dataset

# Imported by the suites as `rk_rewards:<name>`: a custom reward, as a user would write one.
REWARDS_MODULE = textwrap.dedent(
    """
    from pytest_rewardkit import EvaluateResult, MetricResult, reward_function


    @reward_function
    def exact(messages, ground_truth=None, **kwargs):
        answer = messages[-1].content.strip()
        ok = answer == str(ground_truth)
        return EvaluateResult(
            score=1.0 if ok else 0.0,
            reason=f"expected {ground_truth}, got {answer}",
            metrics={"exact": MetricResult(score=1.0 if ok else 0.0)},
        )


    @reward_function
    def graded(messages, ground_truth=None, **kwargs):
        return EvaluateResult(score=float(messages[-1].content), reason="graded")


    @reward_function
    def raises(messages, ground_truth=None, **kwargs):
        raise RuntimeError("grader exploded")


    @reward_function
    def invalid(messages, ground_truth=None, **kwargs):
        return EvaluateResult.invalid("ground truth unreadable")


    @reward_function
    async def sees_kwargs(messages, ground_truth=None, want=None, **kwargs):
        ok = kwargs.get("level") == want and messages[0].role == "system"
        return EvaluateResult(score=float(ok), reason=f"want={want} level={kwargs.get('level')}")
    """
)

ChatRow = Callable[..., dict[str, Any]]
MakeSuite = Callable[..., Path]


@pytest.fixture
def chat_row() -> ChatRow:
    """A dataset row: one user turn, then `response` as the assistant turn (none if None)."""

    def build(row_id: str | None, response: str | None, ground_truth: Any = None, **extra: Any) -> dict[str, Any]:
        messages = [{"role": "user", "content": f"question {row_id}"}]
        if response is not None:
            messages.append({"role": "assistant", "content": response})
        row: dict[str, Any] = {"messages": messages, "ground_truth": ground_truth, **extra}
        if row_id is not None:
            row["id"] = row_id
        return row

    return build


@pytest.fixture
def quiet_pytester(pytester: pytest.Pytester) -> pytest.Pytester:
    """pytester with an ini that sets pytest-asyncio's loop scope (else every inner run warns)."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    return pytester


@pytest.fixture
def make_suite(quiet_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> MakeSuite:
    """Write a suite folder under the pytester directory; `rk_rewards` is importable from there,
    in this process and in a subprocess (xdist workers copy the sys.path their controller
    started with, so runs with -n need `runpytest_subprocess`)."""
    (quiet_pytester.path / "rk_rewards.py").write_text(REWARDS_MODULE, encoding="utf-8")
    quiet_pytester.syspathinsert()
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(quiet_pytester.path), os.environ.get("PYTHONPATH")]))
    )

    def build(
        rows: list[dict[str, Any]],
        folder: str = "suite",
        bad_lines: dict[int, str] | None = None,
        **config: Any,
    ) -> Path:
        """`bad_lines` maps a 0-based position to a raw line inserted there (malformed rows)."""
        directory = quiet_pytester.path / folder
        directory.mkdir(parents=True, exist_ok=True)
        config.setdefault("reward", "rk_rewards:exact")
        (directory / "rewardkit.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        dataset = directory / "dataset.jsonl"
        write_dataset(dataset, rows)
        if bad_lines:
            lines = dataset.read_text(encoding="utf-8").splitlines()
            for position, raw in sorted(bad_lines.items()):
                lines.insert(position, raw)
            dataset.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return directory

    return build
