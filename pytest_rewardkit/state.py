"""What the hooks keep on the pytest config. Import-light on purpose: the plugin loads in every
pytest run of a user's project, so pydantic, YAML and the HTTP stack wait until a suite is found
or an --rk-* option is given."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_rewardkit.evaluation import RowOutcome
    from pytest_rewardkit.generation import Generator
    from pytest_rewardkit.options import Options
    from pytest_rewardkit.report import Selection

CONFIG_NAMES = ("rewardkit.yaml", "rewardkit.yml")
PROPERTY = "rewardkit"  # the user_properties name that carries a row outcome to the controller
PROGRESS_PLUGIN = "rewardkit-progress"  # the controller's progress reporter, while recording
PROGRESS_PROPERTY = "rewardkit-progress"  # the user_properties name carrying a process's progress

RAW_OPTIONS_KEY = pytest.StashKey[dict[str, Any]]()
OPTIONS_KEY: pytest.StashKey[Options] = pytest.StashKey()
GENERATOR_KEY: pytest.StashKey[Generator] = pytest.StashKey()
FROZEN_KEY = pytest.StashKey[bool]()  # gc.freeze() was called for this run: unfreeze at its end
WARMED_KEY = pytest.StashKey[set[str]]()  # suites frozen again after their first row
OUTCOME_KEY: pytest.StashKey[RowOutcome] = pytest.StashKey()  # on an item, once it is scored
# The gate's completeness check: row ids deselected per (suite, dataset, model), and what each
# should score (an xdist worker sends the latter under SELECTIONS_OUTPUT: with its first row's
# teardown report as a user property, so an interrupted run has it too, and in its workeroutput).
DESELECTED_KEY: pytest.StashKey[dict[tuple[str, str, str], set[str]]] = pytest.StashKey()
SELECTIONS_KEY: pytest.StashKey[list[Selection]] = pytest.StashKey()
SELECTIONS_OUTPUT = "rewardkit_selections"
# --rk-evaluator: each suite key's YAML file, for the controller to reload the suite (likewise sent).
SUITE_CONFIGS_KEY = pytest.StashKey[list[list[str]]]()
SUITE_CONFIGS_OUTPUT = "rewardkit_suite_configs"


def options(config: pytest.Config) -> Options:
    """The validated --rk-* options (validated once; a bad value is a usage error)."""
    cached = config.stash.get(OPTIONS_KEY, None)
    if cached is None:
        from pytest_rewardkit.config import parse_options
        from pytest_rewardkit.errors import ConfigError

        try:
            cached = parse_options(config.stash[RAW_OPTIONS_KEY])
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from exc
        config.stash[OPTIONS_KEY] = cached
    return cached
