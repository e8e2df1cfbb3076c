"""`composite`: a weighted combination of named rewards, configured in the suite's YAML.

    reward:
      name: composite
      params:
        components:
          - {name: math, weight: 0.5, params: {strict: true}}
          - {name: code, weight: 0.5, params: {mode: all}}

Each component is a built-in or a `module:function` reward (a module beside the suite's YAML is
found there, as for the suite's own reward), called with the same messages, ground truth and row
fields, plus its own `params`. The components are validated and resolved once per suite. The
score is the weighted mean of the component scores; `metrics` keeps every component's score under
its `key` (default: its name) and the component's own metrics as `key.metric`. A component that
errors makes the whole result invalid: a grader failure is not a 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pytest_rewardkit.errors import RewardError, validation_problems
from pytest_rewardkit.models import EvaluateResult, Message, MetricResult
from pytest_rewardkit.resolver import BoundReward, Resolver, resolver_for
from pytest_rewardkit.reward import reward_function


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


@dataclass(frozen=True)
class BoundComponents:
    """The components, validated, each reward resolved beside the suite and bound to its params."""

    parts: tuple[tuple[Component, BoundReward], ...]


@reward_function
def composite_reward(
    messages: list[Message],
    ground_truth: Any = None,
    components: Any = None,
    **kwargs: Any,
) -> EvaluateResult:
    """Weighted mean of the `components` rewards' scores; each score is kept in `metrics`."""
    if not isinstance(components, BoundComponents):
        try:
            components = _bind_components({"components": components}, resolver_for(None))["components"]
        except RewardError as exc:
            return EvaluateResult.invalid(str(exc))
    metrics: dict[str, MetricResult] = {}
    parts = []
    total = weighted = 0.0
    for component, bound in components.parts:
        label = component.label
        try:
            result = bound.reward(messages, ground_truth=ground_truth, **{**kwargs, **bound.params})
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


@composite_reward.preparer
def _bind_components(params: dict[str, Any], resolver: Resolver) -> dict[str, Any]:
    """Validate the components and bind each reward, resolved beside the suite: once per suite."""
    if isinstance(params.get("components"), BoundComponents):
        return params
    try:
        config = CompositeParams.model_validate({"components": params.get("components")})
    except ValidationError as exc:
        problems = "; ".join(validation_problems(exc))
        raise RewardError(
            f"composite reward params: {problems} (expected components: [{{name, weight, params}}, ...])"
        ) from None
    try:
        parts = tuple((c, resolver.bind(c.name, c.params)) for c in config.components)
    except RewardError as exc:
        raise RewardError(f"composite reward: {exc}") from exc
    return {**params, "components": BoundComponents(parts)}
