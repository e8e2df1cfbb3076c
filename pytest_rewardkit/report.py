"""Figures over scored rows: pass rate with its interval, pass@k, the CI gate and the verdict."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence

from pydantic import BaseModel, computed_field

from pytest_rewardkit.config import GateSpec, Options
from pytest_rewardkit.evaluation import MISSING, RowOutcome
from pytest_rewardkit.models import excerpt


def wilson_interval(successes: float, total: int, z: float = 1.959964) -> tuple[float, float]:
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


SuiteKey = tuple[str, str, str]  # (suite, dataset, model): what one summary and one gate check cover


class UsageTotals(BaseModel):
    """Tokens, cost and latency over a (dataset, model)'s responses whose requests reported them."""

    responses: int
    prompt_tokens: int
    completion_tokens: int
    truncated: int  # responses that stopped at max_tokens
    cost: float | None  # None without a price for the model
    latency_mean_s: float | None
    latency_p95_s: float | None


def usage_totals(rows: list[RowOutcome]) -> UsageTotals | None:
    """None when no response carries stats (scored from the dataset, or a source that has none).
    Sums are exact (math.fsum), so the figures do not depend on the order rows finished in."""
    stats = [v.stats for r in rows for v in r.variants if v.stats is not None]
    if not stats:
        return None
    costs = [s.cost for s in stats if s.cost is not None]
    latencies = sorted(s.latency_s for s in stats if s.latency_s is not None)
    return UsageTotals(
        responses=len(stats),
        prompt_tokens=sum(s.prompt_tokens or 0 for s in stats),
        completion_tokens=sum(s.completion_tokens or 0 for s in stats),
        truncated=sum(s.truncated for s in stats),
        cost=math.fsum(costs) if costs else None,
        latency_mean_s=_mean_within(latencies) if latencies else None,
        # Nearest rank: an observed latency, defined for any number of them.
        latency_p95_s=latencies[math.ceil(0.95 * len(latencies)) - 1] if latencies else None,
    )


def _mean_within(ordered: list[float]) -> float:
    """The mean of sorted values, kept within their range: dividing the exact sum can round the
    mean of equal latencies (0.003 s each) just above all of them, above its own p95."""
    return min(max(math.fsum(ordered) / len(ordered), ordered[0]), ordered[-1])


class ScoredTwice(BaseModel):
    """A row scored by two items in one run (its YAML item and a marked test): counted once."""

    suite: str
    dataset: str
    model: str
    row_id: str
    first: str  # node ids
    second: str
    conflicting: bool  # the two verdicts differ, so the one counted is arbitrary

    @property
    def key(self) -> SuiteKey:
        return self.suite, self.dataset, self.model


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
    usage: UsageTotals | None = None
    # How a row passes: its n variants' rewards aggregated, against the threshold.
    n: int = 1
    threshold: float | None = None
    aggregate: str | None = None
    # What the run was meant to score (None: not known, e.g. outcomes scored outside pytest).
    selected: int | None = None
    deselected: int = 0
    limit: int | None = None
    skipped: int = 0
    scored_twice: list[ScoredTwice] = []

    @computed_field  # type: ignore[prop-decorator]
    @property
    def error_rate(self) -> float:
        return self.errored / self.rows if self.rows else 0.0


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
        n=n,
        threshold=rows[0].threshold,
        aggregate=rows[0].aggregate,
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
        usage=usage_totals(rows),
    )


def natural_key(value: str) -> tuple[int, float, str]:
    """Sort key putting numbers in numeric order ('2' before '10') and text after them."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


class Selection(BaseModel):
    """What the run was meant to score for one (suite, dataset, model): the rows selected to run
    after the user's own narrowing (-k, -m, --deselect, --lf, node ids, --rk-limit)."""

    suite: str
    dataset: str
    model: str
    selected: int = 0
    deselected: int = 0
    limit: int | None = None
    gate: GateSpec | None = None  # the suite's own `gate:` (its YAML's; the command line may override it)

    @property
    def key(self) -> SuiteKey:
        return self.suite, self.dataset, self.model


class GateOptions(BaseModel):
    """The gate options of a command line (pytest's --rk-*, or merge's, which stand for them)."""

    min_pass_rate: float | None = None
    max_error_rate: float | None = None
    baseline: str | None = None
    max_regressions: int | None = None

    @classmethod
    def given(cls, opts: Options) -> GateOptions:
        """The gate options among a run's validated options."""
        baseline = str(opts.baseline) if opts.baseline is not None else None
        return cls(
            min_pass_rate=opts.min_pass_rate,
            max_error_rate=opts.max_error_rate,
            baseline=baseline,
            max_regressions=opts.max_regressions,
        )

    @property
    def gates_every_suite(self) -> bool:
        """A command-line gate (a pass rate, or regressions alone) covers every suite, including
        rows no selection record names; without one, only suites with a `gate:` are gated."""
        return self.min_pass_rate is not None or self.max_regressions is not None

    def spec(self) -> GateSpec | None:
        """The bar the command line sets for every suite (None: each suite's own `gate:`)."""
        if not self.gates_every_suite:
            return None
        return GateSpec(min_pass_rate=self.min_pass_rate or 0.0, max_error_rate=self.max_error_rate or 0.0)


class RunFacts(BaseModel):
    """What pytest knows about the run beyond the scored rows, for the gate and the summary; in
    summary.json, so that merge judges shards as one run over their rows would be judged."""

    gate_options: GateOptions = GateOptions()
    selections: list[Selection] = []
    skipped: dict[str, int] = {}  # by "suite/dataset/model": rows skipped on purpose (skip markers)
    deselected_by: list[str] = []  # the options that narrowed the selection, e.g. ["-k"]
    stopped: str | None = None  # pytest stopped early (-x, --maxfail): its reason
    outside_failures: list[str] = []  # failed tests that are not rows' verdicts
    outside_failure_count: int = 0  # pytest's count, which also covers what the names miss
    verdict_failures: dict[str, int] = {}  # by "suite/dataset/model": items failed by a row's verdict
    collection_errors: list[str] = []
    scored_twice: list[ScoredTwice] = []

    def skipped_rows(self, key: SuiteKey) -> int:
        return self.skipped.get("/".join(key), 0)


def ungated_rows(facts: RunFacts) -> dict[str, int]:
    """The items failed by a row's verdict that no gate judges, by suite: a row's verdict is the
    gate's only when its suite has a gate or the command line gates every suite; "" is a verdict
    whose suite is unknown, judged only by a gate over every suite."""
    if facts.gate_options.gates_every_suite:
        return {}
    gated = {"/".join(s.key) for s in facts.selections if s.gate is not None}
    names = {"/".join(s.key): f"{s.suite}/{s.model}" for s in facts.selections}
    return {
        names.get(key, key or "(unknown suite)"): count
        for key, count in facts.verdict_failures.items()
        if key not in gated
    }


def annotate(summaries: list[SuiteSummary], facts: RunFacts) -> list[SuiteSummary]:
    """The summaries with what was selected, skipped and left unrun; a selected suite none of
    whose rows ran gets an (empty) summary too, so that it is reported and gated."""
    by_key = {(s.suite, s.dataset, s.model): s for s in summaries}
    selections = {s.key: s for s in facts.selections}
    for key in selections.keys() - by_key.keys():
        by_key[key] = _empty_summary(key)
    annotated = []
    for key, summary in sorted(by_key.items()):
        selection = selections.get(key)
        skipped = facts.skipped_rows(key)
        annotated.append(
            summary.model_copy(
                update={
                    "selected": selection.selected if selection else None,
                    "deselected": selection.deselected if selection else 0,
                    "limit": selection.limit if selection else None,
                    "skipped": skipped,
                    "scored_twice": sorted(
                        (d for d in facts.scored_twice if d.key == key), key=lambda d: natural_key(d.row_id)
                    ),
                }
            )
        )
    return annotated


def _empty_summary(key: SuiteKey) -> SuiteSummary:
    suite, dataset, model = key
    return SuiteSummary(
        suite=suite,
        dataset=dataset,
        model=model,
        rows=0,
        variants=0,
        passed=0,
        failed=0,
        errored=0,
        pass_rate=0.0,
        pass_rate_ci95=(0.0, 1.0),
        mean_reward=None,
        pass_at_k={},
        pass_hat_k={},
    )


class GateVerdict(BaseModel):
    min_pass_rate: float | None
    max_error_rate: float | None
    met: bool
    reasons: list[str]
    exit_status: int
    line: str


def gate(
    summaries: list[SuiteSummary],
    spec: GateSpec | None,
    facts: RunFacts | None = None,
    regressions: Sequence[str] = (),
) -> GateVerdict:
    """Met when the run is complete and every gated (dataset, model) reaches its pass rate (its
    point estimate, or with `on: lower_bound` its 95% interval's lower bound) with no more errored
    rows than tolerated and no significant `regressions` against a baseline (see
    baseline.regression_reasons). A suite's own gate travels in its selection record; `spec`,
    the command line's, overrides it for every suite (None: only suites with a gate are gated).
    Nothing evaluated never meets it. The exit status is 0 only when the gate is met and nothing
    outside it (an ordinary test, a collection error, a low row of an ungated suite) failed: the
    gate forgives low rewards of the suites it gates, never anything else."""
    facts = facts or RunFacts()
    own = gate_specs(facts.selections)
    gated = [(s, g) for s in summaries if (g := effective_gate(own.get((s.suite, s.dataset, s.model)), spec))]
    reasons: list[str] = []
    if facts.stopped:
        reasons.append(f"stopped early: {facts.stopped}")
    incomplete = [
        f"{s.suite}/{s.model} {s.rows} of {expected} rows ran"
        for s in summaries
        if s.selected is not None and s.rows < (expected := s.selected - s.skipped)
    ]
    if incomplete:
        reasons.append("incomplete: " + ", ".join(incomplete))
    conflicts = [
        f"{s.suite}/{s.model} row {d.row_id} ({d.first} and {d.second})"
        for s in summaries
        for d in s.scored_twice
        if d.conflicting
    ]
    if conflicts:
        shown = ", ".join(conflicts[:3]) + (f" and {len(conflicts) - 3} more" if len(conflicts) > 3 else "")
        reasons.append(f"conflicting verdicts: {shown}")
    if not any(s.rows for s, _ in gated):
        reasons.append("no rows were evaluated")
    bars = {(g.min_pass_rate, g.max_error_rate, g.on) for _, g in gated}
    # One bar over every suite reads as one; anything else names each suite's own.
    uniform = len(bars) <= 1 and len(gated) == len(summaries) and all(g.on == "point" for _, g in gated)
    below = [_below(s, g, uniform) for s, g in gated if s.rows and _judged_rate(s, g) < g.min_pass_rate]
    if below:
        reasons.append(
            f"min pass rate {gated[0][1].min_pass_rate:.1%}; below: {', '.join(below)}"
            if uniform
            else (f"below: {'; '.join(below)}")
        )
    errored = [
        f"{s.suite}/{s.model} {s.errored} of {s.rows} rows ({s.error_rate:.1%})"
        + ("" if uniform else (f" > max {g.max_error_rate:.1%}"))
        for s, g in gated
        if s.rows and s.error_rate > g.max_error_rate
    ]
    if errored:
        reasons.append(
            f"errored: {', '.join(errored)}" + (f" > max {gated[0][1].max_error_rate:.1%}" if uniform else "")
        )
    reasons.extend(regressions)
    met = not reasons
    outside = _outside(facts)
    exit_status = 0 if met and not outside else 1
    single = gated[0][1] if uniform and gated else None
    if met:
        if single is not None:
            bar = f"every pass rate >= {single.min_pass_rate:.1%}, error rate <= {single.max_error_rate:.1%}"
        else:
            bar = "; ".join(f"{s.suite}/{s.model} {_bar(g)}" for s, g in gated)
        line = f"rewardkit gate: PASSED ({bar})"
        line += f"; exit 1: {outside}" if outside else " -> exit 0"
    else:
        line = f"rewardkit gate: FAILED ({'; '.join(reasons)}) -> exit 1"
    return GateVerdict(
        min_pass_rate=single.min_pass_rate if single else None,
        max_error_rate=single.max_error_rate if single else None,
        met=met,
        reasons=reasons,
        exit_status=exit_status,
        line=line,
    )


def gate_specs(selections: Sequence[Selection]) -> dict[SuiteKey, GateSpec]:
    """Each selected suite's own gate (its YAML's, or the command line's override)."""
    return {s.key: s.gate for s in selections if s.gate is not None}


def effective_gate(own: GateSpec | None, command_line: GateSpec | None) -> GateSpec | None:
    """A suite's gate: the command line's bar, when given, overrides the YAML's for every suite
    (the YAML's `on:` still says how the pass rate is read)."""
    if command_line is None:
        return own
    return command_line.model_copy(update={"on": own.on}) if own is not None else command_line


def _judged_rate(s: SuiteSummary, g: GateSpec) -> float:
    return s.pass_rate_ci95[0] if g.on == "lower_bound" else s.pass_rate


def _bar(g: GateSpec) -> str:
    rate = "pass rate's 95% lower bound" if g.on == "lower_bound" else "pass rate"
    return f"{rate} >= {g.min_pass_rate:.1%}, error rate <= {g.max_error_rate:.1%}"


def _below(s: SuiteSummary, g: GateSpec, uniform: bool) -> str:
    """Why one suite misses its bar; with `on: lower_bound`, whether its interval straddles the
    bar and about how many rows at the observed rate would settle which side it is on."""
    name = f"{s.suite}/{s.model}"
    if uniform:
        return f"{name} {s.pass_rate:.1%}"
    if g.on == "point":
        return f"{name} {s.pass_rate:.1%} < {g.min_pass_rate:.1%}"
    lo, hi = s.pass_rate_ci95
    text = f"{name} 95% CI {lo:.1%}-{hi:.1%} (pass rate {s.pass_rate:.1%}) not all >= {g.min_pass_rate:.1%}"
    if hi >= g.min_pass_rate:
        text += ": the interval straddles the bar"
        rows = rows_to_settle(s.pass_rate, g.min_pass_rate)
        if rows is not None:
            text += f", about {rows} rows at {s.pass_rate:.1%} would settle it"
    return text


def rows_to_settle(rate: float, bar: float, limit: int = 10_000_000) -> int | None:
    """The fewest rows at which a pass rate of `rate` has a 95% Wilson interval wholly on one side
    of `bar` (None when `rate` is the bar itself or no count up to `limit` does)."""

    def settled(rows: int) -> bool:
        lo, hi = wilson_interval(rate * rows, rows)
        return lo >= bar if rate > bar else hi < bar

    if rate == bar or not settled(limit):
        return None
    low, high = 1, limit
    while low < high:  # settling is monotone in the number of rows
        middle = (low + high) // 2
        if settled(middle):
            high = middle
        else:
            low = middle + 1
    return low


def _outside(facts: RunFacts) -> str:
    """What failed that the gate does not judge, in words ('' when nothing)."""
    parts = []
    if ungated := ungated_rows(facts):
        shown = ", ".join(f"{key} {count}" for key, count in sorted(ungated.items()))
        parts.append(f"low or errored rows of suites without a gate ({shown})")
    if facts.outside_failure_count:
        names = ", ".join(facts.outside_failures[:3]) + (", ..." if len(facts.outside_failures) > 3 else "")
        count = facts.outside_failure_count
        parts.append(f"{count} failure{'s' if count > 1 else ''} outside the gate" + (f" ({names})" if names else ""))
    if facts.collection_errors:
        count = len(facts.collection_errors)
        names = ", ".join(facts.collection_errors[:3]) + (", ..." if count > 3 else "")
        parts.append(f"{count} collection error{'s' if count > 1 else ''} ({names})")
    return "; ".join(parts)


EXIT_WORDS = {2: "run interrupted", 3: "internal error", 4: "usage error", 5: "no tests collected"}


def run_verdict(
    summaries: list[SuiteSummary], facts: RunFacts, pytest_status: int, regressions: Sequence[str] = ()
) -> GateVerdict | None:
    """The verdict of a run (pytest's, or merge's over its shards): None when nothing gates it;
    not applied when pytest's own status is neither 0 nor 1 (that status stands)."""
    if not facts.gate_options.gates_every_suite and not any(s.gate is not None for s in facts.selections):
        return None
    if pytest_status not in (0, 1):
        return not_applied(pytest_status, EXIT_WORDS.get(pytest_status, "pytest's own status"))
    return gate(summaries, facts.gate_options.spec(), facts, regressions)


def not_applied(exit_status: int, why: str) -> GateVerdict:
    """The verdict of a run that ended before the gate could judge it (interrupted, internal or
    usage error): pytest's own non-zero status stands."""
    return GateVerdict(
        min_pass_rate=None,
        max_error_rate=None,
        met=False,
        reasons=[why],
        exit_status=exit_status,
        line=f"rewardkit gate: not applied ({why}) -> exit {exit_status}",
    )


def format_summary(summaries: list[SuiteSummary], deselected_by: list[str] | None = None) -> list[str]:
    lines: list[str] = []
    for s in summaries:
        lo, hi = s.pass_rate_ci95
        mean = "n/a" if s.mean_reward is None else f"{s.mean_reward:.3f}"
        lines.append(f"{s.suite} [{s.model}]  {s.dataset}")
        lines.extend(_selection_lines(s, deselected_by or []))
        lines.append(
            f"  rows {s.rows}  variants {s.variants}  passed {s.passed}  failed {s.failed}  errored {s.errored}"
        )
        if not s.rows:
            continue
        errored = f"  errored {s.error_rate:.1%}" if s.errored else ""
        lines.append(f"  pass rate {s.pass_rate:.1%}  (95% CI {lo:.1%}-{hi:.1%}){errored}  mean reward {mean}")
        if meaning := pass_rate_meaning(s):
            rule, _, consequence = meaning.partition(": ")
            lines.extend(f"  {part}" for part in (rule + (":" if consequence else ""), consequence) if part)
        if s.pass_at_k:
            at = "  ".join(f"pass@{k} {v:.3f}" for k, v in s.pass_at_k.items())
            hat = "  ".join(f"pass^{k} {v:.3f}" for k, v in s.pass_hat_k.items())
            lines.append(f"  {at}  |  {hat}")
        if s.usage is not None:
            lines.extend(_usage_lines(s.usage))
        for field, values in s.by_group.items():
            if set(values) == {MISSING}:
                lines.append(f"  by {field}: no row has a field {field!r} (check the name against the dataset)")
                continue
            lines.append(f"  by {field}:")
            width = max(len(v) for v in values)
            for value, fig in values.items():
                lines.append(f"    {value:<{width}}  {fig.passed:>5}/{fig.rows:<5} {fig.pass_rate:7.1%}")
    return lines


def pass_rate_meaning(s: SuiteSummary) -> str:
    """What "pass rate" counts when a row has several variants: with `mean` and threshold 1 a row
    passes only when every variant scores 1, which is pass^n, far below pass@1."""
    if s.n <= 1 or s.threshold is None or s.aggregate is None:
        return ""
    rule = f"a row passes when the {s.aggregate} of its {s.n} variants' rewards >= {s.threshold:g}"
    if (s.aggregate == "mean" and s.threshold >= 1) or s.aggregate == "min":
        return f"{rule}: every variant must pass, so the pass rate is pass^{s.n}, not pass@1"
    if s.aggregate == "max":
        return f"{rule}: one passing variant is enough, so the pass rate is pass@{s.n}"
    return rule


def _selection_lines(s: SuiteSummary, deselected_by: list[str]) -> list[str]:
    """What the figures cover, when that is not simply every row of the dataset."""
    lines = []
    if s.limit is not None:
        lines.append(f"  selected the first {s.limit} rows (--rk-limit {s.limit})")
    if not s.deselected and "--lf" in deselected_by:
        lines.append(f"  selected {s.selected} row{'s' if s.selected != 1 else ''} (--lf)")
    if s.deselected:
        why = f": {', '.join(deselected_by)}" if deselected_by else ""
        lines.append(
            f"  selected {s.selected} of {(s.selected or 0) + s.deselected} rows (deselected {s.deselected}{why})"
        )
    if s.skipped:
        lines.append(f"  skipped {s.skipped} row{'s' if s.skipped > 1 else ''}")
    if s.scored_twice:
        count, first = len(s.scored_twice), s.scored_twice[0]
        lines.append(
            f"  scored twice: {count} row{'s' if count > 1 else ''} (by {first.first} and {first.second}); counted once"
        )
    if s.selected is not None and s.rows < s.selected - s.skipped:
        lines.append(f"  incomplete: {s.rows} of {s.selected - s.skipped} rows ran")
    return lines


def terminal_lines(lines: list[str]) -> list[tuple[str, dict[str, bool]]]:
    """Summary lines with their colour (pytest drops colour where the terminal has none): red
    for what fails or regresses, yellow for what needs a look, the pass rate in bold."""
    return [(line, _markup(line)) for line in lines]


def _markup(line: str) -> dict[str, bool]:
    text = line.strip()
    if "significant regression" in text or text.startswith(("regressed:", "incomplete:")):
        return {"red": True}
    if "hit max_tokens" in text or (text.startswith("rows ") and "errored 0" not in text):
        return {"yellow": True}
    if "significant improvement" in text:
        return {"green": True}
    if text.startswith("pass rate"):
        return {"bold": True}
    return {}


def _usage_lines(u: UsageTotals) -> list[str]:
    # Two short lines rather than one long one: the summary stays readable at 80 columns.
    lines = [f"  tokens {u.prompt_tokens:,} prompt + {u.completion_tokens:,} completion"]
    parts = []
    if u.cost is not None:
        parts.append(f"cost {u.cost:,.4f}")
    if u.latency_mean_s is not None and u.latency_p95_s is not None:
        parts.append(f"latency mean {u.latency_mean_s:.2f}s p95 {u.latency_p95_s:.2f}s")
    if parts:
        lines.append("  " + "  ".join(parts))
    if u.truncated:
        plural = "s" if u.truncated != 1 else ""
        lines.append(f"  {u.truncated} response{plural} hit max_tokens (finish_reason 'length'): raise max_tokens")
    return lines


def junit_properties(outcome: RowOutcome) -> list[tuple[str, str]]:
    """Small per-row facts for JUnit XML `<property>`s (CI systems show them beside the test);
    never the conversation, which would swamp the file."""
    stats = [v.stats for v in outcome.variants if v.stats is not None]
    props = [
        ("rewardkit.status", outcome.status),
        ("rewardkit.score", "" if outcome.reward is None else f"{outcome.reward:.6g}"),
        ("rewardkit.threshold", f"{outcome.threshold:g}"),
        (
            "rewardkit.variant_scores",
            ",".join("" if v.result is None else f"{v.result.score:.6g}" for v in outcome.variants),
        ),
    ]
    failing = next((v for v in outcome.variants if not v.passed), None)
    error = outcome.error or (failing.error if failing else None)
    reason = error.message if error else (failing.result.reason if failing and failing.result else "")
    if error:
        props.append(("rewardkit.error_type", error.type))
    if reason:
        props.append(("rewardkit.reason", excerpt(reason, 300)))
    if stats:
        props.append(("rewardkit.prompt_tokens", str(sum(s.prompt_tokens or 0 for s in stats))))
        props.append(("rewardkit.completion_tokens", str(sum(s.completion_tokens or 0 for s in stats))))
    return props


class RunStatus(BaseModel):
    """How the run ended, for summary.json: an interrupted run's figures cover only finished rows."""

    interrupted: bool
    reason: str | None = None
    rows_finished: int
    rows_collected: int


def sorted_facts(facts: RunFacts) -> RunFacts:
    """The facts in a fixed order, so that the same run gives the same file however it ran."""
    return facts.model_copy(
        update={
            "selections": sorted(facts.selections, key=lambda s: s.key),
            "skipped": dict(sorted(facts.skipped.items())),
            "verdict_failures": dict(sorted(facts.verdict_failures.items())),
            "scored_twice": sorted(facts.scored_twice, key=lambda d: (*d.key, d.row_id)),
        }
    )
