"""Suites as pytest collectors: a `rewardkit.yaml` file, or a Python test marked `rewardkit`,
becomes one item (or one parametrization) per dataset row."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_rewardkit import suite
from pytest_rewardkit.config import ConfigError, Options, Settings
from pytest_rewardkit.dataset import DatasetEntry
from pytest_rewardkit.evaluation import (
    Case,
    ResponseSource,
    RewardFailure,
    RowError,
    RowOutcome,
    evaluate_case,
)
from pytest_rewardkit.reward import RewardFunction

OPTIONS_KEY = pytest.StashKey[Options]()
# Builds the response source for a suite that generates (set by the generation layer).
SOURCE_FACTORY_KEY = pytest.StashKey[Callable[[Settings], ResponseSource]]()
PROPERTY = "rewardkit"


def load_suite(config: pytest.Config, config_path: Path) -> tuple[Settings, list[DatasetEntry]]:
    return suite.load_suite(config_path, config.stash[OPTIONS_KEY], config.rootpath)


def make_case(config: pytest.Config, settings: Settings, entry: DatasetEntry) -> Case | None:
    if entry.row is None:
        return None
    source = None
    if settings.model is not None:
        source = config.stash[SOURCE_FACTORY_KEY](settings)
    return Case(settings=settings, row=entry.row, row_id=entry.row_id, source=source)


def broken_row_outcome(settings: Settings, entry: DatasetEntry) -> RowOutcome:
    return RowOutcome(
        suite=settings.suite,
        dataset=settings.dataset_label,
        row_id=entry.row_id,
        model=settings.model or "dataset",
        parameters={"n": settings.n},
        prompt=[],
        threshold=settings.threshold,
        aggregate=settings.aggregate,
        variants=[],
        reward=None,
        passed=False,
        error=entry.problem,
    )


def record(node: pytest.Item, outcome: RowOutcome) -> None:
    """Attach the outcome to the item's report: the only channel from xdist workers to the
    controller, where the summary is computed."""
    node.user_properties.append((PROPERTY, outcome.model_dump(mode="json")))


class SuiteFile(pytest.File):
    """A `rewardkit.yaml`: its dataset's rows are the items."""

    def collect(self) -> Iterator[pytest.Item]:
        try:
            settings, entries = load_suite(self.config, self.path)
        except ConfigError as exc:
            raise self.CollectError(str(exc)) from exc
        for entry in entries:
            yield RowItem.from_parent(self, name=entry.row_id, settings=settings, entry=entry)


class RowItem(pytest.Item):
    def __init__(self, *, settings: Settings, entry: DatasetEntry, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.entry = entry
        self.outcome: RowOutcome | None = None

    def setup(self) -> None:
        # Scoring happens in setup so that rows that cannot be scored (bad row, failed
        # generation, broken reward) report as pytest ERRORs, apart from low-reward FAILUREs.
        case = make_case(self.config, self.settings, self.entry)
        self.outcome = broken_row_outcome(self.settings, self.entry) if case is None else evaluate_case(case)
        record(self, self.outcome)
        if self.outcome.error is not None:
            pytest.fail(self.outcome.verdict_message(), pytrace=False)

    def runtest(self) -> None:
        assert self.outcome is not None
        self.outcome.check()

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, (RewardFailure, RowError)):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.settings.dataset_path, self.entry.line - 1, f"{self.settings.suite}::{self.entry.row_id}"


class BoundCase:
    """What a marked Python test receives as `rk_case`: the row, and `evaluate()`, which scores
    it exactly as a YAML-collected item would and records the outcome for the summary."""

    def __init__(self, node: pytest.Item, case: Case) -> None:
        self._node = node
        self.case = case
        self.row = case.row
        self.row_id = case.row_id
        self.settings = case.settings

    def evaluate(self, reward: RewardFunction | None = None, check: bool = True) -> RowOutcome:
        outcome = evaluate_case(self.case, reward)
        record(self._node, outcome)
        if check:
            outcome.check()
        return outcome


def marker_cases(config: pytest.Config, test_path: Path, target: str) -> tuple[list[Any], list[str]]:
    """Parameters (a Case, or the broken entry) and ids for a test marked `rewardkit(target)`."""
    candidate = Path(target)
    if not candidate.is_absolute():
        local = test_path.parent / candidate
        candidate = local if local.exists() else config.rootpath / candidate
    settings, entries = load_suite(config, candidate)
    params: list[Any] = []
    for entry in entries:
        case = make_case(config, settings, entry)
        params.append(case if case is not None else (settings, entry))
    return params, [e.row_id for e in entries]


def bind_case(request: pytest.FixtureRequest) -> BoundCase:
    param = getattr(request, "param", None)
    if param is None:
        raise pytest.UsageError(
            f"{request.node.nodeid}: the rk_case fixture needs @pytest.mark.rewardkit('<suite folder>')"
        )
    if isinstance(param, tuple):
        settings, entry = param
        outcome = broken_row_outcome(settings, entry)
        record(request.node, outcome)
        pytest.fail(outcome.verdict_message(), pytrace=False)
    return BoundCase(request.node, param)
