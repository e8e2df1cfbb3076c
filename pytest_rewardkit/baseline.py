"""Comparing a run with an earlier one (`--rk-baseline`): row by row, then with paired tests.

Rows are paired by suite and row id. A row that passed before and does not now (failed or
errored) regressed; the reverse improved. Whether the change is more than noise is decided by
McNemar's exact test on the discordant pairs (pass/fail) and by a paired bootstrap interval on
the mean reward; only a significant change is called a regression or an improvement. The
bootstrap is seeded, so the same two runs always give the same interval.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from pytest_rewardkit.evaluation import RowOutcome

ALPHA = 0.05
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 14

Change = Literal["regressed", "improved", "same", "new"]


class RowChange(BaseModel):
    row_id: str
    change: Change
    baseline_status: str | None
    status: str
    baseline_reward: float | None
    reward: float | None
    delta: float | None
    baseline_scores: list[float | None] = []


class Comparison(BaseModel):
    """One (suite, model) of this run against its counterpart in the baseline."""

    suite: str
    model: str
    baseline: str  # where the baseline came from
    baseline_model: str
    paired: int
    regressions: int  # pass -> fail (or error)
    improvements: int  # fail (or error) -> pass
    new_rows: int  # not in the baseline
    missing_rows: int  # in the baseline, not in this run
    mcnemar_p: float
    reward_delta: float | None  # mean over rows scored in both runs
    reward_delta_ci95: tuple[float, float] | None
    significant_regression: bool
    significant_improvement: bool
    rows: dict[str, RowChange]

    @property
    def verdict(self) -> str:
        if self.significant_regression:
            return "significant regression"
        if self.significant_improvement:
            return "significant improvement"
        return "no significant change"

    def lines(self) -> list[str]:
        delta = "n/a" if self.reward_delta is None else f"{self.reward_delta:+.3f}"
        ci = self.reward_delta_ci95
        interval = f" (95% CI {ci[0]:+.3f} to {ci[1]:+.3f})" if ci else ""
        against = f"{self.baseline}" + (f" [{self.baseline_model}]" if self.baseline_model != self.model else "")
        lines = [
            f"  vs baseline {against}",
            f"  {self.paired} paired rows: {self.regressions} pass->fail, {self.improvements} fail->pass "
            f"(McNemar p={self.mcnemar_p:.3g})",
            f"  mean reward {delta}{interval}: {self.verdict}",
        ]
        regressed = [r.row_id for r in self.rows.values() if r.change == "regressed"]
        if regressed:
            shown = ", ".join(regressed[:8]) + (f", ... ({len(regressed)} in all)" if len(regressed) > 8 else "")
            lines.append(f"  regressed: {shown}")
        if self.new_rows or self.missing_rows:
            lines.append(f"  {self.new_rows} rows not in the baseline, {self.missing_rows} baseline rows not run")
        return lines


def load_baseline(path: Path) -> tuple[list[RowOutcome], str]:
    """The rows of an earlier run, from its summary.json or its results folder, and a label."""
    from pytest_rewardkit.outcomes import read_outcomes

    directory = path.parent if path.is_file() else path
    return read_outcomes(directory), str(path)


def mcnemar_exact(regressions: int, improvements: int) -> float:
    """Two-sided exact McNemar p-value: the discordant pairs under H0 are Binomial(b + c, 1/2).
    Computed with exact fractions, so it holds for thousands of pairs."""
    n = regressions + improvements
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(regressions, improvements) + 1))
    return float(min(Fraction(1), Fraction(2 * tail, 2**n)))


def paired_bootstrap_ci(
    deltas: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float] | None:
    """95% percentile interval of the mean paired difference, from resampling rows with
    replacement; seeded, so deterministic. None without pairs."""
    if not deltas:
        return None
    rng = random.Random(seed)
    n = len(deltas)
    means = sorted(math.fsum(rng.choices(deltas, k=n)) / n for _ in range(resamples))
    return means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]


def compare(
    current: Sequence[RowOutcome], baseline: Sequence[RowOutcome], label: str, alpha: float = ALPHA
) -> list[Comparison]:
    """One comparison per (suite, model) of the current run. The baseline's rows of the same
    suite and model are used; when the baseline has that suite under one other model only, that
    one (an A/B of two models on the same dataset)."""
    before: dict[tuple[str, str], dict[str, RowOutcome]] = defaultdict(dict)
    for o in baseline:
        before[(o.suite, o.model)][o.row_id] = o
    models_of: dict[str, list[str]] = defaultdict(list)
    for suite, model in before:
        models_of[suite].append(model)
    now: dict[tuple[str, str], list[RowOutcome]] = defaultdict(list)
    for o in current:
        now[(o.suite, o.model)].append(o)
    comparisons = []
    for (suite, model), rows in sorted(now.items()):
        if (suite, model) in before:
            other = model
        elif len(models_of.get(suite, [])) == 1:
            other = models_of[suite][0]
        else:
            continue  # nothing to compare with
        comparisons.append(_compare_one(suite, model, other, rows, before[(suite, other)], label, alpha))
    return comparisons


def _compare_one(
    suite: str,
    model: str,
    baseline_model: str,
    rows: list[RowOutcome],
    before: dict[str, RowOutcome],
    label: str,
    alpha: float,
) -> Comparison:
    changes: dict[str, RowChange] = {}
    deltas: list[float] = []
    for o in sorted(rows, key=lambda r: r.row_id):
        b = before.get(o.row_id)
        if b is None:
            changes[o.row_id] = RowChange(
                row_id=o.row_id, change="new", baseline_status=None, status=o.status, baseline_reward=None,
                reward=o.reward, delta=None,
            )  # fmt: skip
            continue
        change: Change = "same"
        if b.passed and not o.passed:
            change = "regressed"
        elif o.passed and not b.passed:
            change = "improved"
        delta = None if o.reward is None or b.reward is None else o.reward - b.reward
        if delta is not None:
            deltas.append(delta)
        changes[o.row_id] = RowChange(
            row_id=o.row_id,
            change=change,
            baseline_status=b.status,
            status=o.status,
            baseline_reward=b.reward,
            reward=o.reward,
            delta=delta,
            baseline_scores=[v.result.score if v.result else None for v in b.variants],
        )
    regressions = sum(c.change == "regressed" for c in changes.values())
    improvements = sum(c.change == "improved" for c in changes.values())
    p = mcnemar_exact(regressions, improvements)
    ci = paired_bootstrap_ci(deltas)
    return Comparison(
        suite=suite,
        model=model,
        baseline=label,
        baseline_model=baseline_model,
        paired=sum(c.change != "new" for c in changes.values()),
        regressions=regressions,
        improvements=improvements,
        new_rows=sum(c.change == "new" for c in changes.values()),
        missing_rows=len(before.keys() - changes.keys()),
        mcnemar_p=p,
        reward_delta=math.fsum(deltas) / len(deltas) if deltas else None,
        reward_delta_ci95=ci,
        significant_regression=(regressions > improvements and p < alpha) or (ci is not None and ci[1] < 0),
        significant_improvement=(improvements > regressions and p < alpha) or (ci is not None and ci[0] > 0),
        rows=changes,
    )


def regression_reasons(comparisons: Sequence[Comparison], max_regressions: int) -> list[str]:
    """Why the run fails `--rk-max-regressions`: a (suite, model) whose change is significant
    and has more than `max_regressions` rows gone from pass to fail. Noise never fails it."""
    return [
        f"{c.suite}/{c.model} regressed against {c.baseline}: {c.regressions} rows pass->fail "
        f"> max {max_regressions} (McNemar p={c.mcnemar_p:.3g})"
        for c in comparisons
        if c.significant_regression and c.regressions > max_regressions
    ]
