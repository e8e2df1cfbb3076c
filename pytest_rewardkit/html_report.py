"""The HTML report (`--rk-html`): one self-contained file to look at a run, without network.

The page is a template and a script shipped as package data; the run's figures and rows go into it
as JSON inside `<script type="application/json">`, with `<`, `>` and `&` escaped, and the script
renders every string as text. A Content-Security-Policy allows only that script (by its hash) and
no network at all, so nothing a model or a dataset wrote can load or run anything.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from pytest_rewardkit.baseline import Comparison
from pytest_rewardkit.evaluation import RowOutcome, VariantResult
from pytest_rewardkit.files import write_atomically
from pytest_rewardkit.report import GateVerdict, SuiteSummary, natural_key

HISTOGRAM_BINS = 10


def _asset(name: str) -> str:
    return resources.files("pytest_rewardkit").joinpath("report_assets", name).read_text(encoding="utf-8")


def embed_json(value: Any) -> str:
    """JSON that is safe inside a <script> element: no `<`, `>` or `&` can end it or open a tag."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def histogram(scores: Sequence[float], bins: int = HISTOGRAM_BINS) -> list[int]:
    """Counts of scores in `bins` equal bins over [0, 1]; 1.0 falls in the last."""
    counts = [0] * bins
    for score in scores:
        counts[min(int(score * bins), bins - 1)] += 1
    return counts


def _variant(v: VariantResult, prompt_length: int) -> dict[str, Any]:
    result = v.result
    # A multi-turn rollout's conversation after the prompt: later user turns, tool calls, tool results.
    steps = [m.to_api() for m in v.trajectory.messages[prompt_length:]] if v.trajectory else []
    return {
        "index": v.index,
        "score": result.score if result else None,
        "reason": result.reason if result else None,
        "metrics": {name: {"score": m.score, "reason": m.reason} for name, m in result.metrics.items()}
        if result
        else {},
        "passed": v.passed,
        "error": v.error.message if v.error else None,
        "error_type": v.error.type if v.error else None,
        "response": v.response.to_api() if v.response else None,
        "stats": v.stats.model_dump(mode="json") if v.stats else None,
        "steps": steps,
    }


def _row(outcome: RowOutcome, combo: int) -> dict[str, Any]:
    return {
        "combo": combo,
        "id": outcome.row_id,
        "status": outcome.status,
        "reward": outcome.reward,
        "threshold": outcome.threshold,
        "aggregate": outcome.aggregate,
        "error": outcome.error.message if outcome.error else None,
        "error_type": outcome.error.type if outcome.error else None,
        "group": outcome.group,
        "prompt": [m.to_api() for m in outcome.prompt],
        "variants": [_variant(v, len(outcome.prompt)) for v in outcome.variants],
    }


def report_payload(
    summaries: Sequence[SuiteSummary],
    outcomes: Sequence[RowOutcome],
    verdict: GateVerdict | None = None,
    title: str = "rewardkit report",
    comparisons: Sequence[Comparison] = (),
) -> dict[str, Any]:
    """Everything the page shows, as plain data. Rows are ordered by (suite, dataset, model, row
    id), so the same outcomes give the same file whatever order they finished in (xdist, shards).
    With `comparisons` (--rk-baseline), each card and row also carries its change."""
    keys = [(s.suite, s.dataset, s.model) for s in summaries]
    index = {key: i for i, key in enumerate(keys)}
    ordered = sorted(outcomes, key=lambda o: (index[(o.suite, o.dataset, o.model)], natural_key(o.row_id)))
    scores: list[list[float]] = [[] for _ in summaries]
    for o in ordered:
        scores[index[(o.suite, o.dataset, o.model)]] += [v.result.score for v in o.variants if v.result and not v.error]
    against = {(c.suite, c.model): c for c in comparisons}
    cards = []
    for i, s in enumerate(summaries):
        card = s.model_dump(mode="json")
        card["key"] = f"{s.suite}|{s.dataset}|{s.model}"
        card["histogram"] = histogram(scores[i])
        comparison = against.get((s.suite, s.model))
        if comparison is not None:
            card["comparison"] = comparison.model_dump(mode="json", exclude={"rows"})
        cards.append(card)
    rows = []
    for o in ordered:
        row = _row(o, index[(o.suite, o.dataset, o.model)])
        comparison = against.get((o.suite, o.model))
        change = comparison.rows.get(o.row_id) if comparison else None
        if change is not None:
            row["change"], row["delta"] = change.change, change.delta
            row["baseline"] = {"status": change.baseline_status, "reward": change.baseline_reward}
            for variant, score in zip(row["variants"], change.baseline_scores, strict=False):
                variant["baseline_score"] = score
        rows.append(row)
    return {
        "title": title,
        "gate": verdict.model_dump(mode="json") if verdict else None,
        "summaries": cards,
        "groups": sorted({field for o in ordered for field in o.group}),
        "rows": rows,
        "baseline": comparisons[0].baseline if comparisons else None,
    }


def render_html(payload: dict[str, Any]) -> str:
    script = _asset("report.js")
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    page = _asset("report.html")
    # Replaced in this order so that nothing substituted earlier is scanned for a later marker.
    head, tail = page.split("__RK_DATA__")
    head = head.replace("__RK_SCRIPT_HASH__", f"sha256-{digest}").replace("__RK_TITLE__", html.escape(payload["title"]))
    return head + embed_json(payload) + tail.replace("__RK_SCRIPT__", script)


def write_html(path: Path, payload: dict[str, Any]) -> None:
    """Write the report atomically (a reader never sees half a file)."""
    write_atomically(path, render_html(payload))
