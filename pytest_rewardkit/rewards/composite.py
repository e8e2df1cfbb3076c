"""`composite`: a weighted combination of named rewards, configured in the suite's YAML.

    reward:
      name: composite
      params:
        components:
          - {name: math, weight: 0.5, params: {strict: true}}
          - {name: code, weight: 0.5, params: {mode: all}}

Each component is a built-in or a `module:function` reward, called with the same messages,
ground truth and row fields, plus its own `params`. The score is the weighted mean of the
component scores; `metrics` keeps every component's score under its `key` (default: its name)
and the component's own metrics as `key.metric`. A component that errors makes the whole
result invalid: a grader failure is not a 0.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pytest_rewardkit.errors import validation_problems
from pytest_rewardkit.models import EvaluateResult, Message, MetricResult
from pytest_rewardkit.reward import reward_function
from pytest_rewardkit.rewards import UnknownReward, resolve_reward


class Component(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="built-in name or 'module:function'")
    weight: float = Field(default=1.0, ge=0.0)
    params: dict[str, Any] = Field(default_factory=dict)
    key: str | None = Field(default=None, min_length=1, description="name in metrics; default: name")

    @property
    def label(self) -> str:
        return self.key or self.name


class CompositeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    components: list[Component] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> CompositeParams:
        labels = [c.label for c in self.components]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise ValueError(f"components share the name(s) {repeated}: give each a distinct `key`")
        if not any(c.weight > 0 for c in self.components):
            raise ValueError("at least one component needs a weight above 0")
        return self


@reward_function
def composite_reward(
    messages: list[Message],
    ground_truth: Any = None,
    components: Any = None,
    **kwargs: Any,
) -> EvaluateResult:
    """Weighted mean of the `components` rewards' scores; each score is kept in `metrics`."""
    try:
        config = CompositeParams.model_validate({"components": components})
        rewards = [resolve_reward(c.name) for c in config.components]
    except ValidationError as exc:
        problems = "; ".join(validation_problems(exc))
        return EvaluateResult.invalid(
            f"composite reward params: {problems} (expected components: [{{name, weight, params}}, ...])"
        )
    except UnknownReward as exc:
        return EvaluateResult.invalid(f"composite reward: {exc}")
    metrics: dict[str, MetricResult] = {}
    parts = []
    total = weighted = 0.0
    for component, reward in zip(config.components, rewards, strict=True):
        label = component.label
        try:
            result = reward(messages, ground_truth=ground_truth, **{**kwargs, **component.params})
        except Exception as exc:
            return EvaluateResult.invalid(f"composite component {label!r} raised {type(exc).__name__}: {exc}")
        if result.is_error:
            return EvaluateResult.invalid(
                f"composite component {label!r} could not score: {result.error or result.reason}"
            )
        metrics[label] = MetricResult(score=result.score, reason=result.reason)
        metrics.update({f"{label}.{name}": metric for name, metric in result.metrics.items()})
        weighted += component.weight * result.score
        total += component.weight
        parts.append(f"{label} {result.score:.2f} (x{component.weight:g}): {result.reason}")
    # min(): float rounding of the weighted mean must not step outside [0, 1].
    return EvaluateResult(score=min(1.0, weighted / total), reason="; ".join(parts), metrics=metrics)
