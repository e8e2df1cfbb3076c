"""Short model names. A suite's `models:` setting adds to (or overrides) this table."""

from __future__ import annotations

MODEL_ALIASES: dict[str, str] = {
    "qwen3": "accounts/fireworks/models/qwen3-30b-a3b",
    "qwen3-235b": "accounts/fireworks/models/qwen3-235b-a22b",
    "qwen3-coder": "accounts/fireworks/models/qwen3-coder-480b-a35b-instruct",
    "llama-3.1-8b": "accounts/fireworks/models/llama-v3p1-8b-instruct",
    "llama-3.3-70b": "accounts/fireworks/models/llama-v3p3-70b-instruct",
    "deepseek-v3": "accounts/fireworks/models/deepseek-v3",
    "deepseek-r1": "accounts/fireworks/models/deepseek-r1",
}


def resolve_model(name: str, extra: dict[str, str] | None = None) -> str:
    """The full model name for an alias; a name that is no alias is used as given."""
    table = {**MODEL_ALIASES, **(extra or {})}
    return table.get(name, name)
