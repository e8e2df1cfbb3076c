"""Figures over scored rows: pass rate with its interval, pass@k, the CI gate, result files."""

from __future__ import annotations

import json
import math
import os
import statistics
from collections import defaultdict
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel

from pytest_rewardkit.evaluation import MISSING, RowOutcome


def wilson_interval(successes: int, total: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval: sane at 0%, 100% and small samples, unlike the normal one."""
    if total == 0:
        return 0.0, 1.0
    p = successes / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): P(at least one of k draws from n passes)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float:
    """pass^k (Yao et al. 2024): P(all of k draws from n pass), a consistency measure."""
    if k > n:
        raise ValueError(f"pass^{k} needs at least {k} samples, got {n}")
    return math.comb(c, k) / math.comb(n, k)


class GroupFigures(BaseModel):
    rows: int
    passed: int
    pass_rate: float


class SuiteSummary(BaseModel):
    suite: str
    dataset: str
    model: str
    rows: int
    variants: int
    passed: int
    failed: int
    errored: int
    pass_rate: float
    pass_rate_ci95: tuple[float, float]
    mean_reward: float | None
    pass_at_k: dict[str, float]
    pass_hat_k: dict[str, float]
    by_group: dict[str, dict[str, GroupFigures]] = {}


def summarize(outcomes: list[RowOutcome], ks: list[int] | None = None) -> list[SuiteSummary]:
    """One summary per (dataset, model), from per-row outcomes in any order."""
    grouped: dict[tuple[str, str, str], list[RowOutcome]] = defaultdict(list)
    for outcome in outcomes:
        grouped[(outcome.suite, outcome.dataset, outcome.model)].append(outcome)
    return [_summarize_one(key, rows, ks) for key, rows in sorted(grouped.items())]


def _summarize_one(key: tuple[str, str, str], rows: list[RowOutcome], ks: list[int] | None) -> SuiteSummary:
    suite, dataset, model = key
    passed = sum(r.passed for r in rows)
    errored = sum(r.error is not None for r in rows)
    n = min(int(r.parameters.get("n", len(r.variants)) or 1) for r in rows)
    chosen = sorted(k for k in (ks or {1, n}) if k <= n)
    at_k: dict[str, float] = {}
    hat_k: dict[str, float] = {}
    per_row = [(max(n, len(r.variants)), sum(v.passed for v in r.variants)) for r in rows]
    for k in chosen:
        at_k[str(k)] = statistics.fmean(pass_at_k(rn, c, k) for rn, c in per_row)
        hat_k[str(k)] = statistics.fmean(pass_hat_k(rn, c, k) for rn, c in per_row)
    rewards = [r.reward for r in rows if r.reward is not None]
    by_group: dict[str, dict[str, GroupFigures]] = defaultdict(dict)
    for field in sorted({f for r in rows for f in r.group}):
        values: dict[str, list[bool]] = defaultdict(list)
        for r in rows:
            values[r.group.get(field, MISSING)].append(r.passed)
        # Levels 1..10 in numeric order, not '1', '10', '2'.
        for value, flags in sorted(values.items(), key=lambda item: natural_key(item[0])):
            by_group[field][value] = GroupFigures(rows=len(flags), passed=sum(flags), pass_rate=sum(flags) / len(flags))
    return SuiteSummary(
        suite=suite,
        dataset=dataset,
        model=model,
        rows=len(rows),
        variants=sum(len(r.variants) for r in rows),
        passed=passed,
        failed=len(rows) - passed - errored,
        errored=errored,
        pass_rate=passed / len(rows),
        pass_rate_ci95=wilson_interval(passed, len(rows)),
        mean_reward=statistics.fmean(rewards) if rewards else None,
        pass_at_k=at_k,
        pass_hat_k=hat_k,
        by_group=dict(by_group),
    )


def natural_key(value: str) -> tuple[int, float, str]:
    """Sort key putting numbers in numeric order ('2' before '10') and text after them."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


class GateVerdict(BaseModel):
    min_pass_rate: float
    met: bool
    line: str


def gate(summaries: list[SuiteSummary], min_pass_rate: float) -> GateVerdict:
    """Met when every (dataset, model) reaches the rate. Nothing evaluated never meets it."""
    if not summaries:
        return GateVerdict(
            min_pass_rate=min_pass_rate, met=False, line="rewardkit gate: FAILED (no rows were evaluated)"
        )
    short = [s for s in summaries if s.pass_rate < min_pass_rate]
    if short:
        detail = ", ".join(f"{s.suite}/{s.model} {s.pass_rate:.1%}" for s in short)
        return GateVerdict(
            min_pass_rate=min_pass_rate,
            met=False,
            line=f"rewardkit gate: FAILED (min pass rate {min_pass_rate:.1%}; below: {detail}) -> exit 1",
        )
    return GateVerdict(
        min_pass_rate=min_pass_rate,
        met=True,
        line=f"rewardkit gate: PASSED (every pass rate >= {min_pass_rate:.1%}) -> exit 0",
    )


def format_summary(summaries: list[SuiteSummary]) -> list[str]:
    lines: list[str] = []
    for s in summaries:
        lo, hi = s.pass_rate_ci95
        mean = "n/a" if s.mean_reward is None else f"{s.mean_reward:.3f}"
        lines.append(f"{s.suite} [{s.model}]  {s.dataset}")
        lines.append(
            f"  rows {s.rows}  variants {s.variants}  passed {s.passed}  failed {s.failed}  errored {s.errored}"
        )
        lines.append(f"  pass rate {s.pass_rate:.1%}  (95% CI {lo:.1%}-{hi:.1%})  mean reward {mean}")
        if s.pass_at_k:
            at = "  ".join(f"pass@{k} {v:.3f}" for k, v in s.pass_at_k.items())
            hat = "  ".join(f"pass^{k} {v:.3f}" for k, v in s.pass_hat_k.items())
            lines.append(f"  {at}  |  {hat}")
        for field, values in s.by_group.items():
            if set(values) == {MISSING}:
                lines.append(f"  by {field}: no row has a field {field!r} (check the name against the dataset)")
                continue
            lines.append(f"  by {field}:")
            width = max(len(v) for v in values)
            for value, fig in values.items():
                lines.append(f"    {value:<{width}}  {fig.passed:>5}/{fig.rows:<5} {fig.pass_rate:7.1%}")
    return lines


class ResultsWriter:
    """`results.jsonl` (one line per row x variant, flushed as rows finish, so an interrupted
    run leaves every finished row on disk) and `summary.json` (replaced atomically)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._file: IO[str] = (directory / "results.jsonl").open("w", encoding="utf-8")

    def write(self, outcome: RowOutcome) -> None:
        prompt = [m.to_api() for m in outcome.prompt]
        common: dict[str, Any] = {
            "suite": outcome.suite,
            "row_id": outcome.row_id,
            "model": outcome.model,
            "parameters": outcome.parameters,
            "messages": prompt,
        }
        if not outcome.variants:
            record = {
                **common,
                "variant": None,
                "response": None,
                "score": None,
                "reason": None,
                "metrics": {},
                "passed": False,
                "error": outcome.error,
            }
            self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        for v in outcome.variants:
            result = v.result
            record = {
                **common,
                "variant": v.index,
                "response": v.response.to_api() if v.response else None,
                "score": result.score if result else None,
                "reason": result.reason if result else None,
                "metrics": {k: m.model_dump() for k, m in result.metrics.items()} if result else {},
                "passed": v.passed,
                "error": v.error,
            }
            self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()

    def finish(self, summaries: list[SuiteSummary], verdict: GateVerdict | None) -> None:
        self._file.close()
        payload = {
            "summaries": [s.model_dump(mode="json") for s in summaries],
            "gate": verdict.model_dump() if verdict else None,
        }
        target = self.directory / "summary.json"
        tmp = target.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, target)
