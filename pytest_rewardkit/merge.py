"""`python -m pytest_rewardkit merge DIR...`: the results folders of a run's shards (`--rk-shard
i/n` on several CI machines) combined into what one run over every row would have written: the
same summary.json, gate verdict, HTML report and exit status."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from pytest_rewardkit.evaluation import RowOutcome
from pytest_rewardkit.outcomes import SUMMARY, OutcomesError, ResultsWriter, read_outcomes, row_order
from pytest_rewardkit.report import (
    GateOptions,
    GateVerdict,
    RunFacts,
    RunStatus,
    Selection,
    SuiteSummary,
    annotate,
    format_summary,
    run_verdict,
    summarize,
)


class MergeError(OutcomesError):
    """The folders cannot be merged; the message names the folder and the fix."""


def read_summary(directory: Path) -> dict[str, Any]:
    path = directory / SUMMARY
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MergeError(
            f"{directory}: no {SUMMARY}: did that run finish? (an interrupted shard must be re-run)"
        ) from None
    except ValueError as exc:
        raise MergeError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("facts"), dict):
        raise MergeError(f"{path}: written by an older pytest-rewardkit (no 'facts'); re-run that shard")
    if (data.get("run") or {}).get("interrupted"):
        raise MergeError(f"{path}: that shard was interrupted ({data['run'].get('reason')}); re-run it")
    return data


def merge_facts(facts: Sequence[RunFacts], directories: Sequence[Path]) -> RunFacts:
    """What one run over every shard's rows would have known. Rows add up across shards; tests
    that are not rows ran on every shard, so their failures are counted once. The shards' gate
    options must agree (they stand for one command line)."""
    selections: dict[tuple[str, str, str], Selection] = {}
    skipped: dict[str, int] = {}
    verdict_failures: dict[str, int] = {}
    for f in facts:
        for s in f.selections:
            merged = selections.setdefault(s.key, Selection(suite=s.suite, dataset=s.dataset, model=s.model))
            merged.selected += s.selected
            merged.deselected += s.deselected
            merged.limit = s.limit if s.limit is not None else merged.limit
            merged.gate = s.gate if s.gate is not None else merged.gate
        for key, count in f.skipped.items():
            skipped[key] = skipped.get(key, 0) + count
        for key, count in f.verdict_failures.items():
            verdict_failures[key] = verdict_failures.get(key, 0) + count
    for f, directory in zip(facts, directories, strict=True):
        if f.gate_options != facts[0].gate_options:
            raise MergeError(
                f"{directory} ran with gate options {_options_text(f.gate_options)}, {directories[0]} with "
                f"{_options_text(facts[0].gate_options)}: run the shards with the same options, or give the "
                "gate to merge"
            )
    outside = list(dict.fromkeys(name for f in facts for name in f.outside_failures))
    return RunFacts(
        gate_options=facts[0].gate_options,
        selections=sorted(selections.values(), key=lambda s: s.key),
        skipped=dict(sorted(skipped.items())),
        verdict_failures=dict(sorted(verdict_failures.items())),
        deselected_by=list(dict.fromkeys(flag for f in facts for flag in f.deselected_by)),
        stopped=next((f.stopped for f in facts if f.stopped), None),
        outside_failures=outside,
        outside_failure_count=max([len(outside), *(f.outside_failure_count for f in facts)]),
        collection_errors=list(dict.fromkeys(e for f in facts for e in f.collection_errors)),
        scored_twice=[d for f in facts for d in f.scored_twice],
    )


def _options_text(options: GateOptions) -> str:
    given = options.model_dump(exclude_none=True)
    return " ".join(f"--rk-{name.replace('_', '-')} {value}" for name, value in given.items()) or "(none)"


def gate_options(shards: GateOptions, command_line: GateOptions) -> GateOptions:
    """The gate merge applies: the shards' command line's, with merge's own options overriding it
    as pytest's command line overrides a suite's YAML. A pass-rate bar and a baseline each come
    whole from one side (merge's `--min-pass-rate 0.8` alone means an error rate of 0, as with pytest)."""
    chosen = shards
    if command_line.min_pass_rate is not None or command_line.max_error_rate is not None:
        chosen = chosen.model_copy(
            update={"min_pass_rate": command_line.min_pass_rate, "max_error_rate": command_line.max_error_rate}
        )
    if command_line.baseline is not None or command_line.max_regressions is not None:
        chosen = chosen.model_copy(
            update={"baseline": command_line.baseline, "max_regressions": command_line.max_regressions}
        )
    return chosen


def read_shards(directories: Sequence[Path]) -> tuple[list[RowOutcome], RunFacts, list[int] | None, RunStatus]:
    """Every shard's outcomes and facts, merged; the --rk-k the shards ran with; and how the
    merged run ended. A row in two folders (the same shard given twice, or overlapping shard
    counts) is refused, and so is an interrupted shard."""
    if not directories:
        raise MergeError("merge needs at least one results folder")
    outcomes: list[RowOutcome] = []
    facts: list[RunFacts] = []
    ks: list[list[int] | None] = []
    seen: dict[tuple[str, str, str], Path] = {}
    collected = 0
    for directory in directories:
        summary = read_summary(directory)
        try:
            facts.append(RunFacts.model_validate(summary["facts"]))
            collected += int((summary.get("run") or {}).get("rows_collected", 0))
        except (ValidationError, TypeError, ValueError) as exc:
            raise MergeError(f"{directory / SUMMARY}: 'facts' or 'run' is malformed ({exc})") from exc
        ks.append(summary["facts"].get("k"))
        if ks[0] != ks[-1]:
            raise MergeError(f"{directory}: ran with --rk-k {ks[-1]}, {directories[0]} with {ks[0]}: shards must agree")
        for outcome in read_outcomes(directory):
            key = (outcome.suite, outcome.model, outcome.row_id)
            if key in seen:
                raise MergeError(
                    f"row {outcome.row_id} of {outcome.suite} [{outcome.model}] is in both {seen[key]} and "
                    f"{directory}: give each shard's folder once, from runs with the same --rk-shard count"
                )
            seen[key] = directory
            outcomes.append(outcome)
    run = RunStatus(interrupted=False, rows_finished=len(outcomes), rows_collected=collected)
    return outcomes, merge_facts(facts, directories), ks[0], run


class MergeResult(BaseModel):
    summaries: list[SuiteSummary]
    verdict: GateVerdict | None
    exit_status: int
    lines: list[str]


def pytest_status(outcomes: Sequence[RowOutcome], facts: RunFacts) -> int:
    """pytest's own status (before a gate) of one run over these rows: 1 when a row or another
    test failed, or collection failed (merge refuses an interrupted shard, so its run went on
    past collection errors), 5 when nothing ran, else 0."""
    if facts.collection_errors or facts.outside_failure_count or any(not o.passed for o in outcomes):
        return 1
    return 0 if outcomes else 5


def merge_runs(
    directories: Sequence[Path],
    output: Path | None,
    html: Path | None = None,
    command_line: GateOptions | None = None,
) -> MergeResult:
    """Combine the shards' folders into `output` (summary.json, results.jsonl, outcomes.jsonl)
    and `html`, judged as one run over every row would be: by each suite's `gate:` and the gate
    options the shards ran with, `command_line` (merge's own) overriding them."""
    from pytest_rewardkit.baseline import compare, load_baseline, regression_reasons

    outcomes, facts, ks, run = read_shards(directories)
    facts.gate_options = gate_options(facts.gate_options, command_line or GateOptions())
    outcomes.sort(key=row_order)
    summaries = annotate(summarize(outcomes, ks), facts)
    comparisons = []
    if facts.gate_options.baseline is not None:
        baseline = Path(facts.gate_options.baseline)
        from_shards = command_line is None or command_line.baseline is None
        if from_shards and not baseline.exists():
            raise MergeError(
                f"the shards compared with --rk-baseline {baseline}, which is not here: give merge --baseline"
            )
        base_outcomes, label = load_baseline(baseline)
        comparisons = compare(outcomes, base_outcomes, label)
    max_regressions = facts.gate_options.max_regressions
    regressions = regression_reasons(comparisons, max_regressions) if max_regressions is not None else []
    status = pytest_status(outcomes, facts)
    verdict = run_verdict(summaries, facts, status, regressions)
    if output is not None:
        writer = ResultsWriter(output)
        for outcome in outcomes:
            writer.write(outcome)
        writer.finish(summaries, verdict, run, facts, ks)
    if html is not None:
        from pytest_rewardkit.html_report import report_payload, write_html

        write_html(html, report_payload(summaries, outcomes, verdict, comparisons=comparisons))
    lines = format_summary(summaries, facts.deselected_by)
    for c in comparisons:
        lines += [f"{c.suite} [{c.model}]", *c.lines()]
    if verdict is not None:
        lines.append(verdict.line)
    return MergeResult(
        summaries=summaries, verdict=verdict, exit_status=verdict.exit_status if verdict else status, lines=lines
    )


def register(subparsers: Any) -> None:
    """The `merge` command of `python -m pytest_rewardkit`."""
    parser = subparsers.add_parser(
        "merge",
        help="combine the results folders of --rk-shard runs into one run's results, report and exit status",
        description=(
            "Combine the --rk-output folders of the shards of a run (pytest ... --rk-shard i/n) into one "
            "summary.json, gate verdict, HTML report and exit status, exactly as one run over every row: "
            "each suite's YAML gate and the gate options the shards ran with apply; the options given here "
            "override the shards' as pytest's command line overrides the YAML."
        ),
    )
    parser.add_argument("directories", nargs="+", type=Path, metavar="DIR", help="a shard's --rk-output folder")
    parser.add_argument("--output", type=Path, default=Path("rewardkit-results"), help="merged results folder")
    parser.add_argument("--html", type=Path, help="write the HTML report here")
    parser.add_argument("--min-pass-rate", type=float, help="gate, as --rk-min-pass-rate")
    parser.add_argument("--max-error-rate", type=float, help="gate tolerance, as --rk-max-error-rate")
    parser.add_argument("--baseline", type=Path, help="compare with an earlier run, as --rk-baseline")
    parser.add_argument("--max-regressions", type=int, help="gate on regressions, as --rk-max-regressions")
    parser.set_defaults(run=run)


def run(args: Any) -> int:
    from pytest_rewardkit.config import ConfigError, parse_options

    try:
        # The same validation (and messages) as the pytest options they stand for.
        opts = parse_options(
            {
                "min_pass_rate": args.min_pass_rate,
                "max_error_rate": args.max_error_rate,
                "baseline": args.baseline,
                "max_regressions": args.max_regressions,
                "html": args.html,
                "output": args.output,
            }
        )
    except ConfigError as exc:
        print(f"merge: {exc}", file=sys.stderr)
        return 4
    try:
        result = merge_runs(args.directories, opts.output, opts.html, GateOptions.given(opts))
    except OutcomesError as exc:
        print(f"merge: {exc}", file=sys.stderr)
        return 4
    print("\n".join(result.lines))
    print(f"results: {opts.output}" + (f"\nreport: {opts.html}" if opts.html else ""))
    return result.exit_status
