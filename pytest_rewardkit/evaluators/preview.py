"""Preview a suite remotely: its rows in batches through Fireworks' previewEvaluator, each remote
score compared with the score the same reward gives locally. A disagreement, a failed sample or a
failed call is reported as what it is; no score is ever made up for it."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiohttp
from pydantic import BaseModel

from pytest_rewardkit.auth import Credentials
from pytest_rewardkit.config import Settings
from pytest_rewardkit.dataset import DatasetEntry
from pytest_rewardkit.evaluation import Case, evaluate_case
from pytest_rewardkit.evaluators.api import EvaluatorAPIError, EvaluatorClient, Tape
from pytest_rewardkit.evaluators.packaging import EvaluatorPackage, package_settings
from pytest_rewardkit.models import Message, Trajectory
from pytest_rewardkit.recording import CassetteError, cassette_path

PREVIEW_ALIAS = "fireworks-preview"  # the cassette folder beside the suite's model folders
TOLERANCE = 1e-6  # scores cross JSON and another Python; anything beyond rounding is a disagreement

Status = Literal["agree", "disagree", "error"]


class SampleVerdict(BaseModel):
    """One row's local and remote score."""

    row_id: str
    local_score: float | None = None
    local_error: str | None = None
    remote_score: float | None = None
    remote_error: str | None = None

    @property
    def status(self) -> Status:
        if self.local_score is None or self.remote_score is None:
            return "error"
        return "agree" if math.isclose(self.local_score, self.remote_score, abs_tol=TOLERANCE) else "disagree"

    def line(self) -> str:
        if self.status == "agree":
            return f"{self.row_id}: agree ({self.local_score:g})"
        if self.status == "disagree":
            return f"{self.row_id}: DISAGREE: remote {self.remote_score!r} != local {self.local_score!r}"
        problems = [f"local: {self.local_error}" if self.local_error else "", self.remote_error or ""]
        return f"{self.row_id}: ERROR: " + "; ".join(p for p in problems if p)


class PreviewReport(BaseModel):
    suite: str
    verdicts: list[SampleVerdict]

    def count(self, status: Status) -> int:
        return sum(v.status == status for v in self.verdicts)

    @property
    def ok(self) -> bool:
        return bool(self.verdicts) and self.count("agree") == len(self.verdicts)

    def problems(self) -> list[str]:
        """A line per row that did not agree; rows that failed the same way (a whole batch's failed
        call, its cassette missing or broken) share one line naming them all."""
        lines: list[str] = []
        shared: dict[str, list[str]] = {}
        for verdict in self.verdicts:
            if verdict.status == "error" and verdict.local_error is None and verdict.remote_error:
                shared.setdefault(verdict.remote_error, []).append(verdict.row_id)
            elif verdict.status != "agree":
                lines.append(verdict.line())
        for error, rows in shared.items():
            lines.append(f"{', '.join(rows)}: ERROR: {error}")
        return lines

    def summary(self) -> str:
        total = len(self.verdicts)
        agree = self.count("agree")
        rate = f"{100 * agree / total:.1f}%" if total else "n/a"
        return (
            f"{self.suite}: {agree}/{total} rows agree ({rate}), {self.count('disagree')} disagree, "
            f"{self.count('error')} errors"
        )


@dataclass(frozen=True)
class PreviewSettings:
    cassette_root: Path
    record_mode: str = "none"
    batch_size: int = 25
    concurrency: int = 4
    api_base: str = "https://api.fireworks.ai"
    account_id: str = "-"
    prefix: str = ""  # before each batch cassette's name: the model whose responses a pytest run previews


def sample_for(case: Case) -> dict[str, Any]:
    """What Fireworks passes to `evaluate`: the messages as scored locally (system prompt, prompt,
    the row's response; a rollout's whole conversation), ground_truth, and the row's other fields
    (a multi-turn row's initial_config among them) as keyword arguments."""
    responses = case.responses()
    rollout = next((r for r in responses if isinstance(r, Trajectory)), None)
    plain = [r for r in responses if isinstance(r, Message)]
    messages = rollout.messages if rollout is not None else [*case.prompt(), *plain]
    return {
        "messages": [m.to_api() for m in messages],
        "ground_truth": case.row.ground_truth,
        **case.row.extra,
    }


def batch_tape(settings: PreviewSettings, suite: str, number: int) -> Tape:
    path = cassette_path(settings.cassette_root, suite, PREVIEW_ALIAS, f"{settings.prefix}batch-{number:04d}")
    return Tape(path, settings.record_mode)


def local_verdicts(settings: Settings, entries: Sequence[DatasetEntry]) -> list[tuple[SampleVerdict, Case | None]]:
    """Each row scored locally, and the case to send (None for a row that cannot be sent)."""
    out: list[tuple[SampleVerdict, Case | None]] = []
    for entry in entries:
        if entry.row is None:
            out.append((SampleVerdict(row_id=entry.row_id, local_error=entry.problem or "malformed row"), None))
            continue
        case = Case(settings=settings, row=entry.row, row_id=entry.row_id)
        outcome = evaluate_case(case)
        verdict = SampleVerdict(row_id=entry.row_id)
        variant = outcome.variants[0] if outcome.variants else None
        if variant is not None and variant.result is not None and variant.error is None:
            verdict.local_score = variant.result.score
        else:
            error = (variant.error if variant else None) or outcome.error
            verdict.local_error = error.message if error else "not scored"
        out.append((verdict, case if outcome.variants else None))
    return out


def remote_scores(results: Any, count: int) -> list[tuple[float | None, str | None]]:
    """Per sample (score, error) from a preview answer; the whole batch is an error if its shape is wrong."""
    if not isinstance(results, list) or len(results) != count:
        got = len(results) if isinstance(results, list) else type(results).__name__
        raise EvaluatorAPIError(f"preview answered {got} results for {count} samples")
    out: list[tuple[float | None, str | None]] = []
    for result in results:
        if not isinstance(result, dict):
            out.append((None, f"remote result is not an object: {result!r}"))
        elif result.get("success") is not True:
            detail = result.get("perMetricEvals") or result.get("reason") or "no detail given"
            out.append((None, f"remote evaluation failed: {json.dumps(detail, sort_keys=True)[:300]}"))
        elif isinstance(result.get("score"), (int, float)) and not isinstance(result["score"], bool):
            out.append((float(result["score"]), None))
        else:
            out.append((None, f"remote result has no numeric score: {json.dumps(result, sort_keys=True)[:300]}"))
    return out


async def _preview_batches(
    client: EvaluatorClient,
    package: EvaluatorPackage,
    batches: list[list[tuple[SampleVerdict, Case]]],
    settings: PreviewSettings,
) -> None:
    evaluator = package.evaluator()
    semaphore = asyncio.Semaphore(settings.concurrency)

    async def one(number: int, batch: list[tuple[SampleVerdict, Case]]) -> None:
        samples = [json.dumps(sample_for(case), ensure_ascii=False, sort_keys=True) for _, case in batch]
        try:
            async with semaphore:
                tape = batch_tape(settings, package.suite, number)
                answer = await client.preview(evaluator, samples, tape)
            scores = remote_scores(answer.get("results"), len(batch))
        except (EvaluatorAPIError, CassetteError) as exc:
            for verdict, _ in batch:
                verdict.remote_error = f"batch {number}: {exc}"
            return
        for (verdict, _), (score, error) in zip(batch, scores, strict=True):
            verdict.remote_score, verdict.remote_error = score, error

    await asyncio.gather(*(one(number, batch) for number, batch in enumerate(batches)))


def preview(
    settings: Settings,
    entries: Sequence[DatasetEntry],
    preview_settings: PreviewSettings,
    credentials: Credentials | None,
    package: EvaluatorPackage | None = None,
) -> PreviewReport:
    """Score every row locally and remotely and compare; never raises for a row or a call
    (a suite that cannot be packaged raises PackagingError before anything is sent)."""
    package = package or package_settings(settings)
    return send(settings.suite, package, local_verdicts(settings, entries), preview_settings, credentials)


def send(
    suite: str,
    package: EvaluatorPackage,
    scored: list[tuple[SampleVerdict, Case | None]],
    preview_settings: PreviewSettings,
    credentials: Credentials | None,
) -> PreviewReport:
    """Each locally scored sample (its case None when it cannot be sent) previewed remotely, in batches."""
    sendable = [(verdict, case) for verdict, case in scored if case is not None]
    size = preview_settings.batch_size
    batches = [sendable[i : i + size] for i in range(0, len(sendable), size)]

    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            client = EvaluatorClient(
                session, credentials, preview_settings.account_id, api_base=preview_settings.api_base
            )
            await _preview_batches(client, package, batches, preview_settings)

    if batches:
        asyncio.run(run())
    for verdict, case in scored:
        if case is None and verdict.remote_error is None:
            verdict.remote_error = "not sent: the row has no response to score"
    return PreviewReport(suite=suite, verdicts=[verdict for verdict, _ in scored])
