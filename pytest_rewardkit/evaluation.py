"""Scoring one row: get its responses, score each variant, aggregate, decide.

Shared by the YAML-collected items and by Python tests that opt in with the `rewardkit` marker.
"""

from __future__ import annotations

import statistics
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, model_validator

from pytest_rewardkit.config import Settings
from pytest_rewardkit.errors import RewardError, RewardkitError, RowError
from pytest_rewardkit.models import EvaluateResult, Message, Response, ResponseStats, Row, Trajectory, excerpt
from pytest_rewardkit.resolver import BoundReward, Resolver, resolver_for
from pytest_rewardkit.reward import RewardFunction
from pytest_rewardkit.watchdog import CallTimeout, run_with_deadline

if TYPE_CHECKING:
    from pytest_rewardkit.environment import Environment

EXCERPT = 160
MISSING = "(missing)"  # the group of a row without the --rk-group-by field


class RewardFailure(AssertionError):
    """The row was scored and its reward is below the threshold."""


class ErrorInfo(BaseModel):
    """Why a row or a variant could not be scored. `type` is a name to count and filter by: the
    error behind it (ReplayMiss, RateLimitError, UnknownReward, ... from pytest_rewardkit.errors and
    generation, or whatever a reward raised), else RewardTimeout, InvalidScore or MalformedRow;
    `message` says what happened and the fix."""

    type: str
    message: str

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        # A plain message (outcomes.jsonl version 1 had nothing else) is a row problem of no known kind.
        return {"type": RowError.__name__, "message": value} if isinstance(value, str) else value

    @classmethod
    def of(cls, exc: BaseException) -> ErrorInfo:
        return cls(type=error_type(exc), message=str(exc))

    def __str__(self) -> str:
        return self.message


def error_type(exc: BaseException) -> str:
    """The name of the error behind `exc`: a plain RowError that only carries another error's
    message (`raise RowError(str(exc)) from exc`) is that error."""
    if type(exc) is RowError and isinstance(exc.__cause__, RewardkitError):
        return error_type(exc.__cause__)
    return type(exc).__name__


class VariantResult(BaseModel):
    index: int
    response: Message | None
    result: EvaluateResult | None
    error: ErrorInfo | None = None
    passed: bool = False
    stats: ResponseStats | None = None  # tokens, finish reason, latency, cost: when the source knows them
    trajectory: Trajectory | None = None  # a multi-turn row's rollout; `response` is its last answer


class Responses(list[Message]):
    """A row's responses in variant order, with what each cost (`stats`, same order). A response
    source may return a plain list instead: then nothing is known about cost."""

    def __init__(self, messages: list[Message], stats: list[ResponseStats]) -> None:
        super().__init__(messages)
        self.stats = stats


class RowOutcome(BaseModel):
    """Everything known about one scored row; crosses from xdist workers to the controller."""

    suite: str
    dataset: str
    row_id: str
    model: str
    parameters: dict[str, Any]
    prompt: list[Message]
    threshold: float
    aggregate: str
    variants: list[VariantResult]
    reward: float | None
    passed: bool
    error: ErrorInfo | None = None
    group: dict[str, str] = {}
    ground_truth: Any = None

    @property
    def status(self) -> str:
        """pass, fail (scored, below the threshold) or error (could not be scored): the one word
        the results, the HTML report, JUnit properties and baselines all use for a row."""
        if self.error is not None:
            return "error"
        return "pass" if self.passed else "fail"

    def without_texts(self) -> RowOutcome:
        """What the summary needs of a row already written to results.jsonl (verdicts, errors,
        cost), without its conversation, the reward's reasons and the ground truth (a code row's
        tests): a fraction of the memory."""
        # Validated, not model_construct: pydantic-core checks these few fields faster than
        # model_construct's Python code sets them.
        variants = [
            VariantResult(index=v.index, response=None, result=None, error=v.error, passed=v.passed, stats=v.stats)
            for v in self.variants
        ]
        return self.model_copy(update={"prompt": [], "variants": variants, "ground_truth": None})

    def verdict_message(self) -> str:
        if self.reward is not None:
            head = (
                f"row {self.row_id}: reward {self.reward:.3f} < threshold {self.threshold:g} "
                f"({self.aggregate} of {len(self.variants)} variant(s))"
            )
        else:
            error = self.error.message if self.error else "not scored"
            head = error if f"row {self.row_id}" in error else f"row {self.row_id}: {error}"
        lines = [head]
        for v in self.variants:
            shown = excerpt(v.response.text if v.response else "", EXCERPT)
            if v.error:
                lines.append(f"  [{v.index}] error: {v.error.message}")
            elif v.result is not None:
                lines.append(f"  [{v.index}] score {v.result.score:.3f}: {v.result.reason}")
            lines.append(f"      response: {shown}")
        return "\n".join(lines)

    def check(self) -> None:
        """Raise the item's verdict: RowError for an error, RewardFailure for a low reward."""
        if self.error is not None:
            raise RowError(self.verdict_message())
        if not self.passed:
            raise RewardFailure(self.verdict_message())


# A source of responses: given the case, returns the n responses (answers, or rollouts for a
# multi-turn row) in variant order.
ResponseSource = Callable[["Case"], Sequence[Response]]


@dataclass
class Case:
    """One row of one suite, ready to evaluate."""

    settings: Settings
    row: Row
    row_id: str
    source: ResponseSource | None = None
    _prompt: list[Message] | None = field(default=None, repr=False)

    @property
    def model_label(self) -> str:
        return self.settings.model or "dataset"

    def prompt(self) -> list[Message]:
        """System prompt + the row's messages, without a trailing reference answer."""
        if self._prompt is None:
            messages = list(self.row.messages)
            if messages and messages[-1].role == "assistant":
                messages.pop()
            if self.settings.system_prompt and not (messages and messages[0].role == "system"):
                messages.insert(0, Message(role="system", content=self.settings.system_prompt))
            self._prompt = messages
        return list(self._prompt)

    def resolver(self) -> Resolver:
        """Resolves names beside the suite (its YAML file's folder)."""
        return resolver_for(self.settings.config_path.parent)

    def bound_reward(self, reward: RewardFunction | None = None) -> BoundReward:
        """The suite's reward (or `reward` instead) with the suite's params, prepared: resolved and
        validated once per suite. RewardError if it cannot be used."""
        spec = self.settings.reward
        if reward is None:
            return self.resolver().bind(spec.name, spec.params)
        return self.resolver().bind_reward(reward, spec.params)

    def environment(self) -> Environment | None:
        """The suite's (or the row's own) environment class with its tools, for multi-turn rows."""
        spec = self.settings.environment
        if spec is None:
            return None
        from pytest_rewardkit.environment import load_environment

        return load_environment(spec, self.settings.config_path.parent, self.row.extra.get("environment"))

    def responses(self) -> Sequence[Response]:
        if self.source is not None:
            return self.source(self)
        if not self.row.messages or self.row.messages[-1].role != "assistant":
            raise RowError(
                f"row {self.row_id} has no assistant turn to score and no model to generate one: "
                "add the response as the last message, or pass --rk-model"
            )
        return [self.row.messages[-1]]


def score_variant(
    reward: RewardFunction, kwargs: dict[str, Any], case: Case, index: int, response: Response
) -> VariantResult:
    """Score one variant. A rollout is scored on its whole conversation; the reward also gets
    `trajectory` (turns, limits reached) and `final_state` (the environment's public attributes)."""
    trajectory = response if isinstance(response, Trajectory) else None
    if isinstance(response, Trajectory):
        answer, messages = response.final_message, response.messages
        kwargs = {
            **kwargs,
            "trajectory": response,
            "final_state": response.final_state,
            "environment": case.environment(),
        }
    else:
        answer, messages = response, [*case.prompt(), response]
    known = {"index": index, "response": answer, "trajectory": trajectory}
    timeout = case.settings.reward.timeout
    try:
        result = run_with_deadline(lambda: reward(messages, ground_truth=case.row.ground_truth, **kwargs), timeout)
    except CallTimeout:
        message = (
            f"reward {reward.name!r} did not finish within {timeout:g} s (reward.timeout in "
            f"{case.settings.config_path.name}); the run goes on"
        )
        return VariantResult(**known, result=None, error=ErrorInfo(type="RewardTimeout", message=message))
    except Exception as exc:
        message = f"reward {reward.name!r} raised {type(exc).__name__}: {exc}{user_location(exc)}"
        return VariantResult(**known, result=None, error=ErrorInfo(type=type(exc).__name__, message=message))
    if result.is_error:
        message = f"reward {reward.name!r} returned an invalid score: {result.error or result.reason}"
        return VariantResult(**known, result=result, error=ErrorInfo(type="InvalidScore", message=message))
    return VariantResult(**known, result=result, passed=result.score >= case.settings.threshold)


def user_location(exc: BaseException) -> str:
    """` (file:line)` of the innermost frame of `exc` in the user's code (not this package's nor
    Python's import machinery), or '' when there is none: a message points at the user's mistake."""
    package = Path(__file__).resolve().parent
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.startswith("<") or Path(frame.filename).resolve().is_relative_to(package):
            continue
        return f" ({frame.filename}:{frame.lineno})"
    return ""


def _aggregate(how: str, scores: list[float]) -> float:
    if how == "min":
        return min(scores)
    if how == "max":
        return max(scores)
    return statistics.fmean(scores)


def suite_key(settings: Settings) -> tuple[str, str, str]:
    """(suite, dataset, model): what a row's outcome is summarized and gated under."""
    return settings.suite, settings.dataset_label, settings.model or "dataset"


def _outcome_fields(settings: Settings, row_id: str) -> dict[str, Any]:
    suite, dataset, model = suite_key(settings)
    return {
        "suite": suite,
        "dataset": dataset,
        "row_id": row_id,
        "model": model,
        "parameters": {"n": settings.n, **settings.sampling.model_dump(exclude_none=True)},
        "threshold": settings.threshold,
        "aggregate": settings.aggregate,
    }


def unscored_outcome(settings: Settings, row_id: str, error: str) -> RowOutcome:
    """The outcome of a row that could not even be read (a malformed dataset line)."""
    return RowOutcome(
        **_outcome_fields(settings, row_id),
        prompt=[],
        variants=[],
        reward=None,
        passed=False,
        error=ErrorInfo(type="MalformedRow", message=error),
    )


def evaluate_case(case: Case, reward: RewardFunction | None = None) -> RowOutcome:
    """Score every variant of the row and decide the item. Never raises for a row problem:
    the outcome carries the error, so it is recorded and counted before the item fails."""
    settings = case.settings
    extra = case.row.extra
    base = {
        **_outcome_fields(settings, case.row_id),
        "group": {key: str(extra[key]) if key in extra else MISSING for key in settings.group_by},
        "ground_truth": case.row.ground_truth,
    }
    try:
        prompt = case.prompt()
        responses = case.responses()
        bound = case.bound_reward(reward)
    except (RowError, RewardError) as exc:
        return RowOutcome(
            **base, prompt=case.row.messages, variants=[], reward=None, passed=False, error=ErrorInfo.of(exc)
        )
    # The suite's params, then the row's extra fields (which win).
    kwargs = {**bound.params, **extra}
    variants = [score_variant(bound.reward, kwargs, case, i, response) for i, response in enumerate(responses)]
    if isinstance(responses, Responses):
        price = settings.prices.get(settings.model or "")
        for variant, stats in zip(variants, responses.stats, strict=False):
            variant.stats = stats if price is None else stats.model_copy(update={"cost": price.cost(stats)})
    errors = [v.error for v in variants if v.error]
    if errors:
        # Typed as the first variant's error: a row is found by what went wrong with it.
        message = f"{len(errors)} of {len(variants)} variant(s) could not be scored"
        error = ErrorInfo(type=errors[0].type, message=message)
        return RowOutcome(**base, prompt=prompt, variants=variants, reward=None, passed=False, error=error)
    scores = [v.result.score for v in variants if v.result is not None]
    value = _aggregate(settings.aggregate, scores)
    return RowOutcome(**base, prompt=prompt, variants=variants, reward=value, passed=value >= settings.threshold)
