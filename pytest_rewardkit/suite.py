"""A suite outside pytest: load its settings and rows, score them. Used by the pytest
collector, by scripts (TRL training, benchmarks) and by tests."""

from __future__ import annotations

from pathlib import Path

from pytest_rewardkit.config import Settings, combine, load_suite_config
from pytest_rewardkit.dataset import DatasetEntry, read_dataset
from pytest_rewardkit.errors import ConfigError, DatasetError
from pytest_rewardkit.evaluation import Case, RowOutcome, evaluate_case
from pytest_rewardkit.options import Options
from pytest_rewardkit.state import CONFIG_NAMES


def find_config(path: Path) -> Path:
    """A suite's YAML file from itself or its folder."""
    if path.is_dir():
        for name in CONFIG_NAMES:
            if (path / name).is_file():
                return path / name
        raise ConfigError(f"{path}: no {CONFIG_NAMES[0]} in this folder")
    if not path.is_file():
        raise ConfigError(f"{path}: no such suite file or folder")
    return path


def load_suite(
    path: Path, options: Options | None = None, root: Path | None = None
) -> tuple[Settings, list[DatasetEntry]]:
    """Settings and dataset entries of the suite at `path` (its folder or its YAML file)."""
    config_path = find_config(path)
    settings = combine(config_path, load_suite_config(config_path), options or Options(), root)
    try:
        entries = read_dataset(settings.dataset_path, settings.limit)
    except DatasetError as exc:
        raise ConfigError(f"{config_path}: dataset: {exc}") from exc
    if settings.environment is not None:
        from pytest_rewardkit.environment import EnvironmentSetupError, load_environment

        try:
            load_environment(settings.environment, config_path.parent)
        except EnvironmentSetupError as exc:
            raise ConfigError(f"{config_path}: environment: {exc}") from exc
    elif any(e.row is not None and e.row.turns is not None for e in entries):
        raise ConfigError(
            f"{config_path}: the dataset has multi-turn rows (`turns`) but the suite names no environment; "
            "add `environment: module:Class` (the class whose methods are the tools)"
        )
    return settings, entries


def run_suite(
    path: Path,
    options: Options | None = None,
    dataset: Path | None = None,
) -> list[RowOutcome]:
    """Score every valid row of a suite's stored responses, in file order. `dataset` replaces the
    suite's data file (e.g. a deliberately wrong response set)."""
    settings, entries = load_suite(path, options)
    if dataset is not None:
        settings = settings.model_copy(update={"dataset_path": dataset, "dataset_label": str(dataset)})
        entries = read_dataset(dataset, settings.limit)
    return [evaluate_case(Case(settings=settings, row=e.row, row_id=e.row_id)) for e in entries if e.row is not None]
