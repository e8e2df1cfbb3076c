"""`--rk-evaluator=fireworks-preview`: once a pytest run has scored its rows, the controller previews
them remotely, each (dataset, model) through the suite's packaged reward, and compares each remote
score with the score the run gave. Only the controller sends: xdist workers would race on the
batch cassettes. A row that cannot be sent, a failed call or a failed sample is an error, never a
score."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from pytest_rewardkit.config import Options
from pytest_rewardkit.evaluation import Case, RowOutcome, VariantResult
from pytest_rewardkit.evaluators.preview import PreviewReport, PreviewSettings, SampleVerdict, send
from pytest_rewardkit.models import Message, Response, Trajectory

SuiteKey = tuple[str, str, str]  # (suite, dataset, model), as the summary groups rows


class RunPreview(BaseModel):
    """One (suite, dataset, model)'s remote preview."""

    suite: str
    dataset: str
    model: str
    agree: int
    disagree: int
    errors: int
    rows: list[str]  # the rows that did not agree
    problems: list[str]  # what went wrong, naming the rows

    @classmethod
    def of(cls, key: SuiteKey, report: PreviewReport) -> RunPreview:
        return cls(
            suite=key[0],
            dataset=key[1],
            model=key[2],
            agree=report.count("agree"),
            disagree=report.count("disagree"),
            errors=report.count("error"),
            rows=[v.row_id for v in report.verdicts if v.status != "agree"],
            problems=report.problems(),
        )

    @property
    def ok(self) -> bool:
        return self.disagree == 0 and self.errors == 0

    def line(self) -> str:
        return (
            f"{self.suite} [{self.model}] {self.dataset}: remote preview: {self.agree} agree, "
            f"{self.disagree} disagree, {self.errors} errors"
        )


def failure_line(previews: Sequence[RunPreview]) -> str | None:
    """The run's last line when a preview did not agree (exit status 1), naming the rows."""
    failed = [p for p in previews if not p.ok]
    if not failed:
        return None
    parts = [f"{p.suite} [{p.model}]: {_some(p.rows)}" for p in failed]
    return "rewardkit: remote preview failed (exit status 1): " + "; ".join(parts)


def _some(rows: list[str], shown: int = 10) -> str:
    return ", ".join(rows[:shown]) + (f" and {len(rows) - shown} more" if len(rows) > shown else "")


def suite_configs(rows: Iterable[tuple[Any, str]]) -> list[list[str]]:
    """[suite, dataset, model, config file] per suite key of the run's rows ((settings, row id)
    pairs): what the controller needs to reload each suite (plain lists: they cross from xdist workers)."""
    from pytest_rewardkit.evaluation import suite_key

    found: dict[SuiteKey, str] = {}
    for settings, _ in rows:
        found.setdefault(suite_key(settings), str(settings.config_path))
    return [[*key, path] for key, path in sorted(found.items())]


def _variant_verdict(row_id: str, variant: VariantResult) -> SampleVerdict:
    verdict = SampleVerdict(row_id=row_id)
    if variant.result is not None and variant.error is None:
        verdict.local_score = variant.result.score
    else:
        verdict.local_error = variant.error.message if variant.error else "not scored"
    return verdict


Scored = list[tuple[SampleVerdict, Case | None]]


def _samples(settings: Any, entries: Sequence[Any], outcomes: list[RowOutcome]) -> Scored:
    """One sample per scored variant, in dataset order (as the CLI's preview batches them), with
    the score the run gave it; the response sent is the one the run scored."""
    by_row = {outcome.row_id: outcome for outcome in outcomes}
    scored: Scored = []
    for entry in entries:
        outcome = by_row.pop(entry.row_id, None)
        if outcome is None:
            continue  # not run (deselected, skipped, beyond an interruption)
        if not outcome.variants:
            error = outcome.error.message if outcome.error else "not scored"
            scored.append((SampleVerdict(row_id=entry.row_id, local_error=error), None))
            continue
        for variant in outcome.variants:
            row_id = entry.row_id if len(outcome.variants) == 1 else f"{entry.row_id}#{variant.index}"
            verdict = _variant_verdict(row_id, variant)
            response: Response | None = variant.trajectory or variant.response  # a rollout is sent whole
            if entry.row is None or not isinstance(response, (Message, Trajectory)):
                scored.append((verdict, None))
                continue

            def source(case: Case, response: Response = response) -> list[Response]:
                return [response]

            scored.append((verdict, Case(settings=settings, row=entry.row, row_id=entry.row_id, source=source)))
    for row_id in by_row:  # scored in the run, but no longer in the dataset file
        scored.append((SampleVerdict(row_id=row_id, local_error="row not found in the dataset any more"), None))
    return scored


def _not_sent(key: SuiteKey, outcomes: list[RowOutcome], reason: str) -> RunPreview:
    verdicts = [SampleVerdict(row_id=o.row_id, remote_error=reason) for o in outcomes]
    return RunPreview.of(key, PreviewReport(suite=key[0], verdicts=verdicts))


def preview_run(
    outcomes: Sequence[RowOutcome],
    configs: Sequence[Sequence[str]],
    options: Options,
    rootpath: Path,
    cassette_root: Path,
) -> list[RunPreview]:
    """Every (suite, dataset, model) of the run's outcomes previewed remotely (cassettes replayed
    or recorded as `options.record_mode` allows); never raises for a row, a call or a suite."""
    from pytest_rewardkit.auth import find_api_key
    from pytest_rewardkit.errors import ConfigError
    from pytest_rewardkit.evaluators.api import API_BASE_ENV, FIREWORKS_API_BASE
    from pytest_rewardkit.evaluators.packaging import package_settings
    from pytest_rewardkit.suite import load_suite

    paths = {(c[0], c[1], c[2]): Path(c[3]) for c in configs}
    groups: dict[SuiteKey, list[RowOutcome]] = {}
    for outcome in outcomes:
        groups.setdefault((outcome.suite, outcome.dataset, outcome.model), []).append(outcome)
    credentials = find_api_key(options.api_key_env)  # replay needs none; a recording without one is an error
    results: list[RunPreview] = []
    for key, rows in sorted(groups.items()):
        path = paths.get(key)
        if path is None:
            results.append(_not_sent(key, rows, "not sent: the suite's file is unknown to the controller"))
            continue
        try:
            settings, entries = load_suite(path, options, rootpath)
            package = package_settings(settings)
        except ConfigError as exc:
            results.append(_not_sent(key, rows, f"not sent: {exc}"))
            continue
        preview_settings = PreviewSettings(
            cassette_root=cassette_root,
            record_mode=options.record_mode,
            api_base=os.environ.get(API_BASE_ENV) or FIREWORKS_API_BASE,
            account_id=(credentials.account_id if credentials else None) or "-",
            prefix="" if key[2] == "dataset" else f"{key[2]}-",
        )
        report = send(settings.suite, package, _samples(settings, entries, rows), preview_settings, credentials)
        results.append(RunPreview.of(key, report))
    return results


def preview_session(config: Any, outcomes: Sequence[RowOutcome], configs: Sequence[Sequence[str]]) -> list[RunPreview]:
    """The pytest run's preview (its options, its cassette folder)."""
    from pytest_rewardkit.collection import cassette_root
    from pytest_rewardkit.state import options

    return preview_run(outcomes, configs, options(config), config.rootpath, cassette_root(config))
