"""The outcome record: the one per-row record a run's result files derive from.

`outcomes.jsonl` holds one versioned record per row, everything known about it (a `RowOutcome`,
its errors typed). `results.jsonl`, one line per row x variant for people and their scripts, is a
pure function of a record (`results_records`); summary.json's figures are `report.summarize` over
the records. Merge, --rk-baseline and the HTML report read the records back (`read_outcomes`),
never results.jsonl. So one run, a merge of its shards and a derivation from outcomes.jsonl alone
write the same bytes.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import pydantic_core
from pydantic import ValidationError

from pytest_rewardkit.errors import RewardkitError
from pytest_rewardkit.evaluation import RowOutcome
from pytest_rewardkit.files import write_atomically
from pytest_rewardkit.report import GateVerdict, RunFacts, RunStatus, SuiteSummary, natural_key, sorted_facts

OUTCOMES = "outcomes.jsonl"
RESULTS = "results.jsonl"
SUMMARY = "summary.json"

# The record's format. 1: errors were plain strings (read back as type RowError); 2: every error
# is {"type", "message"}.
OUTCOMES_VERSION = 2
READABLE_VERSIONS = (1, 2)

GROUND_TRUTH_INLINE = 2000  # characters of JSON; a larger ground truth is recorded as its hash


class OutcomesError(RewardkitError):
    """A results folder cannot be read back; the message names the file and the fix."""


def outcome_record(outcome: RowOutcome) -> dict[str, Any]:
    """The row's line of outcomes.jsonl, as a dict."""
    return {"version": OUTCOMES_VERSION, **outcome.model_dump(mode="json")}


def outcome_from_record(record: Any, where: str) -> RowOutcome:
    """The RowOutcome of one outcomes.jsonl record; `where` (file:line) names it in errors."""
    if not isinstance(record, dict):
        raise OutcomesError(f"{where}: not a row outcome (a JSON object per line)")
    version = record.get("version")
    if version not in READABLE_VERSIONS:
        readable = " and ".join(map(str, READABLE_VERSIONS))
        raise OutcomesError(
            f"{where}: outcome record version {version!r}; this pytest-rewardkit reads versions {readable}: "
            "read it with the pytest-rewardkit that wrote it, or run again to write it anew"
        )
    fields = {key: value for key, value in record.items() if key != "version"}
    try:
        return RowOutcome.model_validate(fields)
    except ValidationError as exc:
        raise OutcomesError(f"{where}: not a row outcome ({exc})") from exc


def read_outcomes(directory: Path) -> list[RowOutcome]:
    """The per-row outcomes a run wrote to `directory` (its --rk-output folder), in file order."""
    path = directory / OUTCOMES
    try:
        lines = _split_lines(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OutcomesError(f"{directory}: no {OUTCOMES}; pass the --rk-output folder of a pytest run") from None
    outcomes = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise OutcomesError(f"{path}:{number}: not JSON ({exc})") from exc
        outcomes.append(outcome_from_record(record, f"{path}:{number}"))
    return outcomes


def _split_lines(text: str) -> list[str]:
    """JSON Lines split at "\n" only: JSON leaves U+2028 and U+0085 in a string unescaped, and
    str.splitlines would cut a record there."""
    lines = text.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def ground_truth_record(value: Any) -> Any:
    """The row's ground truth as results.jsonl holds it: itself, or when large (a test suite, a
    long document) `{"sha256": ..., "chars": ...}` of its JSON, enough to tell which one it was."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    if len(text) <= GROUND_TRUTH_INLINE:
        return value
    return {"sha256": hashlib.sha256(text.encode()).hexdigest(), "chars": len(text)}


def results_records(outcome: RowOutcome) -> list[dict[str, Any]]:
    """The row's lines of results.jsonl: one per variant (one with `variant: null` for a row
    with none), each with the row's own verdict beside the variant's."""
    common, variants = _results_parts(outcome)
    return [{**common, **variant} for variant in variants]


def _results_parts(outcome: RowOutcome) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """What every one of the row's results.jsonl records starts with, and what each adds."""
    generated = outcome.model != "dataset"
    row_error = outcome.error.model_dump() if outcome.error else None
    common: dict[str, Any] = {
        "suite": outcome.suite,
        "row_id": outcome.row_id,
        "model": outcome.model,
        # Sampling parameters describe a generation; rows scored as stored had none.
        "parameters": outcome.parameters if generated else None,
        "messages": [m.to_api() for m in outcome.prompt],
        "ground_truth": ground_truth_record(outcome.ground_truth),
        # The row's own verdict beside each variant's: what the item and the pass rate count.
        "row_reward": outcome.reward,
        "row_passed": outcome.passed,
        "row_error": row_error,
    }
    if not outcome.variants:
        return common, [
            {
                "variant": None,
                "response": None,
                "score": None,
                "reason": None,
                "metrics": {},
                "passed": False,
                "error": row_error,
            }
        ]
    variants = []
    for v in outcome.variants:
        result = v.result
        variant = {
            "variant": v.index,
            "response": v.response.to_api() if v.response else None,
            "score": result.score if result else None,
            "reason": result.reason if result else None,
            "metrics": {k: m.model_dump() for k, m in result.metrics.items()} if result else {},
            "passed": v.passed,
            "error": v.error.model_dump() if v.error else None,
            "stats": v.stats.model_dump() if v.stats else None,
        }
        if v.trajectory is not None:
            # A rollout's whole conversation, turns, limits reached and the environment's final state.
            variant["trajectory"] = v.trajectory.model_dump(mode="json", exclude_none=True)
        variants.append(variant)
    return common, variants


def encode(record: Any) -> bytes:
    """One line of outcomes.jsonl or results.jsonl, without its newline: compact JSON in UTF-8.
    pydantic-core's encoder (there with pydantic) rather than `json.dumps`: a few times faster, and
    encoding was most of the time spent writing the files; like `json.dumps` it takes integers of
    any size and writes NaN as `NaN`."""
    return pydantic_core.to_json(record)


def _result_lines(outcome: RowOutcome) -> tuple[bytes, int]:
    """The row's results.jsonl lines, exactly `encode` of each of `results_records(outcome)`,
    and how many there are. The part the records share (the prompt, the ground truth) is
    encoded once, not once per variant: it was most of the time spent writing results."""
    common, variants = _results_parts(outcome)
    # Both dicts are non-empty with distinct keys: `{"a":1}` and `{"b":2}` join into `{"a":1,"b":2}`.
    head = encode(common)[:-1] + b","
    return b"".join(head + encode(variant)[1:] + b"\n" for variant in variants), len(variants)


def derive_results(outcomes: Iterable[RowOutcome]) -> str:
    """results.jsonl's text for these outcomes (e.g. `read_outcomes(folder)`), in their order."""
    return b"".join(_result_lines(outcome)[0] for outcome in outcomes).decode()


def row_order(outcome: RowOutcome) -> tuple[str, str, str, tuple[int, float, str]]:
    """The order rows are listed in once a run ends: by suite, dataset, model, then row id with
    numbers in numeric order, whatever order they finished in (xdist, shards)."""
    return outcome.suite, outcome.dataset, outcome.model, natural_key(outcome.row_id)


class ResultsWriter:
    """`outcomes.jsonl` (one versioned record per row) and `results.jsonl` (derived from it, one
    line per row x variant), both flushed as rows finish, so an interrupted run leaves every
    finished row on disk; at the end both are put in `row_order` and `summary.json` (replaced
    atomically) gets the figures, the gate's verdict and what the run selected."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._outcomes: IO[bytes] = (directory / OUTCOMES).open("wb")
        self._results: IO[bytes] = (directory / RESULTS).open("wb")
        self._order: list[tuple[Any, int]] = []  # per row written: its row_order, its results lines

    def write(self, outcome: RowOutcome) -> None:
        lines, count = _result_lines(outcome)
        self._outcomes.write(encode(outcome_record(outcome)) + b"\n")
        self._outcomes.flush()
        self._results.write(lines)
        self._results.flush()
        self._order.append((row_order(outcome), count))

    def _put_in_order(self) -> None:
        """Rewrite both files in row order, when the rows finished in another (xdist)."""
        keys = [key for key, _ in self._order]
        if all(a <= b for a, b in itertools.pairwise(keys)):
            return
        outcomes = _split_lines((self.directory / OUTCOMES).read_text(encoding="utf-8"))
        results = _split_lines((self.directory / RESULTS).read_text(encoding="utf-8"))
        rows = []
        start = 0
        for (key, count), line in zip(self._order, outcomes, strict=True):
            rows.append((key, line + "\n", [part + "\n" for part in results[start : start + count]]))
            start += count
        rows.sort(key=lambda row: row[0])
        write_atomically(self.directory / OUTCOMES, "".join(line for _, line, _ in rows))
        write_atomically(self.directory / RESULTS, "".join(part for *_, lines in rows for part in lines))

    def finish(
        self,
        summaries: list[SuiteSummary],
        verdict: GateVerdict | None,
        run: RunStatus | None = None,
        facts: RunFacts | None = None,
        ks: list[int] | None = None,
        remote_preview: list[dict[str, Any]] | None = None,
    ) -> None:
        self._results.close()
        self._outcomes.close()
        self._put_in_order()
        payload = {
            "summaries": [s.model_dump(mode="json") for s in summaries],
            "gate": verdict.model_dump() if verdict else None,
            "run": run.model_dump() if run else None,
            # What merge needs to rebuild these figures and this verdict from several shards' folders.
            "facts": {**sorted_facts(facts or RunFacts()).model_dump(mode="json"), "k": ks},
        }
        if remote_preview is not None:  # --rk-evaluator's per (suite, dataset, model) verdicts
            payload["remote_preview"] = remote_preview
        write_atomically(self.directory / SUMMARY, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
