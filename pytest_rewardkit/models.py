"""Data that crosses a boundary: messages, reward results and dataset rows."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Role = Literal["system", "user", "assistant", "tool", "developer"]


def content_text(content: str | list[dict[str, Any]] | None) -> str:
    """A message's content as plain text: content parts of type text are joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))


def excerpt(text: str, limit: int) -> str:
    """`text` on one line, at most about `limit` characters: its start and its end (where
    answers and errors usually are), joined by an ellipsis."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    half = max(limit // 2 - 2, 1)
    return flat[:half] + " … " + flat[-half:]


class Message(BaseModel):
    """One chat message in OpenAI's format."""

    model_config = ConfigDict(extra="allow")

    role: Role
    content: str | list[dict[str, Any]] | None = ""
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    @property
    def text(self) -> str:
        """The content as plain text (content parts of type text are joined)."""
        return content_text(self.content)

    def to_api(self) -> dict[str, Any]:
        """The message as an API request expects it: unset optional fields left out."""
        return self.model_dump(exclude_none=True)


class ResponseStats(BaseModel):
    """What one response cost, from its request's recorded exchange.

    An API reports usage per request; when one request returned several responses (`n`), its
    prompt tokens are split evenly and its completion tokens by response length, so totals stay
    exact and the per-response figures are marked `estimated`."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    estimated: bool = False
    finish_reason: str | None = None
    latency_s: float | None = Field(default=None, description="wall time of the response's request, at record time")
    cost: float | None = Field(default=None, description="in the price table's currency, when the suite has one")

    @property
    def truncated(self) -> bool:
        """The response stopped at max_tokens."""
        return self.finish_reason == "length"


class MetricResult(BaseModel):
    """One named sub-score of a reward."""

    score: float = Field(ge=0.0, le=1.0)
    reason: str = ""
    is_score_valid: bool = True


class EvaluateResult(BaseModel):
    """What a reward function returns for one response."""

    score: float = Field(ge=0.0, le=1.0)
    reason: str = ""
    is_score_valid: bool = True
    metrics: dict[str, MetricResult] = Field(default_factory=dict)
    error: str | None = None

    @property
    def is_error(self) -> bool:
        """True when the score cannot be trusted: the grader failed, not the response."""
        return not self.is_score_valid or self.error is not None

    @classmethod
    def invalid(cls, reason: str, error: str | None = None) -> EvaluateResult:
        return cls(score=0.0, reason=reason, is_score_valid=False, error=error or reason)


class Row(BaseModel):
    """One dataset row. Fields other than these reach the reward as keyword arguments."""

    model_config = ConfigDict(extra="allow")

    id: str | None = None
    messages: list[Message] = Field(min_length=1)
    ground_truth: Any = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        # Integer ids are common in public datasets; they name a node id as text.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @property
    def extra(self) -> dict[str, Any]:
        return dict(self.model_extra or {})
