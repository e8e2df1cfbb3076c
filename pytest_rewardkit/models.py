"""Data that crosses a boundary: messages, reward results and dataset rows."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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


class TurnRecord(BaseModel):
    """One user turn of a rollout: how many model requests and tool calls it took, and the limit
    that ended it, if one did."""

    index: int
    steps: int = 0
    tool_calls: int = 0
    limit: Literal["max_steps", "time_limit"] | None = None


class Trajectory(BaseModel):
    """A multi-turn rollout: the whole conversation (prompt, user turns, model answers with their
    tool calls, tool results), per-turn records, the environment's final state (its public
    attributes) and the limit that ended the rollout early, if one did."""

    messages: list[Message]
    turns: list[TurnRecord]
    final_state: dict[str, Any]
    limit: Literal["max_turns", "time_limit"] | None = None
    requests: int = 0

    @property
    def final_message(self) -> Message:
        """The model's last answer (an empty one if it never answered)."""
        answers = [m for m in self.messages if m.role == "assistant"]
        return answers[-1] if answers else Message(role="assistant", content="")

    @property
    def limits_hit(self) -> list[str]:
        """Every limit reached, as `turn N: max_steps` or `max_turns`, for reasons and reports."""
        hit = [f"turn {t.index}: {t.limit}" for t in self.turns if t.limit]
        return hit + ([self.limit] if self.limit else [])


# What a row's source gives per variant: one answer, or a multi-turn rollout.
Response = Message | Trajectory


def _turn_messages(turn: Any) -> list[Message]:
    if isinstance(turn, str):
        return [Message(role="user", content=turn)]
    if not isinstance(turn, list) or not turn:
        raise ValueError("each turn is a user message text or a non-empty list of messages")
    return [Message.model_validate(m) for m in turn]


class Row(BaseModel):
    """One dataset row. Fields other than these reach the reward as keyword arguments.

    A multi-turn row gives `turns`: the user turns, each a text or a list of messages (BFCL's
    `question` form); its `messages` (optional then) come before the first turn."""

    model_config = ConfigDict(extra="allow")

    id: str | None = None
    messages: list[Message] = Field(default_factory=list)
    ground_truth: Any = None

    @model_validator(mode="after")
    def _messages_or_turns(self) -> Row:
        turns = (self.model_extra or {}).get("turns")
        if turns is None:
            if not self.messages:
                raise ValueError("messages: give at least one message (or `turns` for a multi-turn row)")
            return self
        if not isinstance(turns, list) or not turns:
            raise ValueError("turns: a non-empty list of user turns (texts or lists of messages)")
        for index, turn in enumerate(turns):
            try:
                _turn_messages(turn)
            except ValueError as exc:
                raise ValueError(f"turns[{index}]: {exc}") from None
        return self

    @property
    def turns(self) -> list[list[Message]] | None:
        """The user turns of a multi-turn row, as messages; None for a single-turn row."""
        turns = (self.model_extra or {}).get("turns")
        return None if turns is None else [_turn_messages(turn) for turn in turns]

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        # Integer ids are common in public datasets; they name a node id as text.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @property
    def extra(self) -> dict[str, Any]:
        return dict(self.model_extra or {})
