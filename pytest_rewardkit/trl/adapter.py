"""Rewards as TRL `GRPOTrainer` reward functions, and suites as TRL prompt datasets.

TRL calls each reward function as `fn(prompts=..., completions=..., completion_ids=..., **columns)`,
where every other dataset column arrives as a keyword holding one value per completion, plus a few
arguments of TRL's own. It expects one float per completion back, or `None` where no score applies.
Prompts and completions are strings ("standard" datasets) or message lists ("conversational").
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_rewardkit.config import load_suite_config
from pytest_rewardkit.errors import ConfigError, DatasetError, UnknownReward
from pytest_rewardkit.evaluation import Case
from pytest_rewardkit.models import EvaluateResult
from pytest_rewardkit.options import Options
from pytest_rewardkit.resolver import Resolver, resolver_for
from pytest_rewardkit.reward import RewardFunction, reward_function
from pytest_rewardkit.rewards import BUILTINS
from pytest_rewardkit.suite import find_config, load_suite

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger(__name__)

# Keyword arguments TRL adds to the dataset columns; they are for TRL-aware rewards, not ours.
TRL_ARGUMENTS = frozenset({"trainer_state", "log_extra", "log_metric", "environments"})
# Columns TRL itself reads or fills: a suite's extra field must not shadow them.
TRL_COLUMNS = frozenset({"prompt", "completion", "completion_ids", *TRL_ARGUMENTS})
# The row id identifies a row; like in a pytest run, it is not an argument of the reward.
DEFAULT_COLUMNS: dict[str, str | None] = {"id": None}

TOOLS_PROMPT = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{tools}\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within "
    '<tool_call></tool_call> XML tags:\n<tool_call>\n{{"name": <function-name>, "arguments": <args-json-object>}}\n'
    "</tool_call>"
)

Prompt = str | list[dict[str, Any]]
Completion = str | list[dict[str, Any]]


class _Adapter:
    """What the sync and async adapters share: turning TRL's batch into reward calls and back."""

    def __init__(
        self,
        reward: RewardFunction,
        params: Mapping[str, Any] | None = None,
        columns: Mapping[str, str | None] | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.reward = reward
        self.params = dict(params or {})
        self.columns = {**DEFAULT_COLUMNS, **(columns or {})}
        # Prepared once (a composite's components resolved beside the suite), not on every batch.
        self._call_params = (resolver or resolver_for(None)).bind_reward(reward, self.params).params
        # TRL names the reward's metrics (`rewards/<name>/mean`) after this.
        self.__name__ = reward.name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.__name__} params={self.params} columns={self.columns}>"

    def _calls(
        self, prompts: Sequence[Prompt], completions: Sequence[Completion], columns: dict[str, Any]
    ) -> list[tuple[list[Any], dict[str, Any]]]:
        """(messages, keyword arguments) of the reward call for each completion."""
        if len(prompts) != len(completions):
            raise ValueError(f"{self.__name__}: got {len(prompts)} prompts but {len(completions)} completions")
        per_row: dict[str, Sequence[Any]] = {}
        for column, values in columns.items():
            target = self.columns.get(column, column)
            if column in TRL_ARGUMENTS or target is None:
                continue
            if isinstance(values, str) or not isinstance(values, Sequence) or len(values) != len(completions):
                raise TypeError(
                    f"{self.__name__}: dataset column {column!r} must hold one value per completion "
                    f"({len(completions)}), got {type(values).__name__}; map it to None in `columns` to drop it"
                )
            per_row[target] = values
        return [
            (
                _messages(prompt, completion),
                {**self._call_params, **{name: values[i] for name, values in per_row.items()}},
            )
            for i, (prompt, completion) in enumerate(zip(prompts, completions, strict=True))
        ]

    def _guarded(self, reward: RewardFunction, messages: list[Any], kwargs: dict[str, Any]) -> EvaluateResult:
        try:
            return reward(messages, **kwargs)
        except Exception as exc:
            return self._failed(exc)

    def _failed(self, exc: BaseException) -> EvaluateResult:
        """One completion's reward raised: that completion gets None, the training step goes on."""
        logger.warning("reward %s raised on one completion: %s: %s", self.__name__, type(exc).__name__, exc)
        return EvaluateResult.invalid(f"the reward raised {type(exc).__name__}: {exc}")

    def _scores(self, results: list[EvaluateResult], columns: dict[str, Any]) -> list[float | None]:
        invalid = [r for r in results if r.is_error]
        if invalid:
            # TRL leaves a None out of the advantage; say why, or a broken grader trains on nothing unnoticed.
            logger.warning(
                "reward %s could not score %d of %d completions: %s",
                self.__name__,
                len(invalid),
                len(results),
                invalid[0].error or invalid[0].reason,
            )
        log_metric = columns.get("log_metric")
        if callable(log_metric):
            log_metric(f"rewards/{self.__name__}/invalid_fraction", len(invalid) / max(len(results), 1))
        return [None if r.is_error else r.score for r in results]


class TRLReward(_Adapter):
    """A synchronous reward function as a TRL reward function. Picklable when its reward is."""

    def __call__(
        self,
        prompts: Sequence[Prompt],
        completions: Sequence[Completion],
        completion_ids: Sequence[Sequence[int]] | None = None,
        **columns: Any,
    ) -> list[float | None]:
        results = [
            self._guarded(self.reward, messages, kwargs)
            for messages, kwargs in self._calls(prompts, completions, columns)
        ]
        return self._scores(results, columns)


class AsyncTRLReward(_Adapter):
    """An async reward function as a TRL reward function: TRL awaits it on its own event loop, and
    the completions of a batch are scored concurrently."""

    async def __call__(
        self,
        prompts: Sequence[Prompt],
        completions: Sequence[Completion],
        completion_ids: Sequence[Sequence[int]] | None = None,
        **columns: Any,
    ) -> list[float | None]:
        calls = self._calls(prompts, completions, columns)
        scoring = (self.reward.acall(messages, **kwargs) for messages, kwargs in calls)
        results = await asyncio.gather(*scoring, return_exceptions=True)
        scored = []
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result  # cancelled or interrupted: not the completion's doing
            scored.append(self._failed(result) if isinstance(result, Exception) else result)
        return self._scores(scored, columns)


def _messages(prompt: Prompt, completion: Completion) -> list[Any]:
    """The conversation the reward scores: the prompt, then the completion as the last message(s)."""
    if isinstance(prompt, str) != isinstance(completion, str):
        raise TypeError("prompt and completion must both be text (standard) or both message lists (conversational)")
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
    return [*prompt, *completion]


def trl_reward(
    source: str | Path | RewardFunction,
    params: Mapping[str, Any] | None = None,
    columns: Mapping[str, str | None] | None = None,
) -> TRLReward | AsyncTRLReward:
    """A reward as a TRL `reward_funcs` entry.

    `source` is a built-in name, an import path `module:function`, a reward function, or a suite
    (its folder or YAML file), whose reward and params are used. `params` add to or override the
    reward's parameters. `columns` maps a dataset column to the reward argument it feeds
    (`{"answer": "ground_truth"}`), or to None to drop it; other columns pass under their own name.
    """
    reward, base_params, resolver = _resolve(source)
    adapter = AsyncTRLReward if reward.is_async else TRLReward
    return adapter(reward, {**base_params, **(params or {})}, columns, resolver)


def _resolve(source: str | Path | RewardFunction) -> tuple[RewardFunction, dict[str, Any], Resolver]:
    """The reward, the suite's params for it, and where its names resolve (beside the suite)."""
    if callable(source):
        return reward_function(source), {}, resolver_for(None)
    if isinstance(source, str) and (source in BUILTINS or ":" in source):
        return resolver_for(None).reward(source), {}, resolver_for(None)
    path = Path(source)
    if not path.exists():
        known = ", ".join(sorted(BUILTINS))
        raise UnknownReward(
            f"{str(source)!r} is not a built-in reward ({known}), an import path 'module:function', "
            "or a suite folder / rewardkit.yaml"
        )
    config_path = find_config(path)
    spec = load_suite_config(config_path).reward
    resolver = resolver_for(config_path.parent)
    try:
        return resolver.reward(spec.name), dict(spec.params), resolver
    except UnknownReward as exc:
        raise ConfigError(f"{config_path}: reward: {exc}") from exc


def suite_dataset(path: str | Path, limit: int | None = None) -> datasets.Dataset:
    """A suite's rows as a TRL prompt dataset in conversational format.

    `prompt` is what a model is asked in a pytest run (the suite's system prompt and the row's
    messages, without a reference answer); `id`, `ground_truth` and the row's extra fields are kept
    as columns. Values of varying shape (tool calls, structured ground truths) are stored as JSON,
    so each row reads back exactly as written rather than padded to a common schema.
    """
    import datasets

    settings, entries = load_suite(Path(path), Options(limit=limit))
    problems = [entry.problem for entry in entries if entry.problem]
    if problems:
        shown = "\n".join(problems[:3])
        raise DatasetError(f"{settings.dataset_path}: {len(problems)} invalid row(s); fix or remove them:\n{shown}")
    records = []
    for entry in entries:
        row = entry.row
        if row is None:
            continue
        clash = TRL_COLUMNS & row.extra.keys()
        if clash:
            raise DatasetError(
                f"{settings.dataset_path}:{entry.line}: field(s) {sorted(clash)} are reserved by TRL; rename them"
            )
        # A multi-turn row's prompt is its first user turn: TRL plays one turn per rollout.
        first_turn = (row.turns or [[]])[0]
        prompt = [m.to_api() for m in [*Case(settings=settings, row=row, row_id=entry.row_id).prompt(), *first_turn]]
        records.append(
            {
                "id": entry.row_id,
                "prompt": _with_tools(prompt, row.extra.get("tools")),
                "ground_truth": row.ground_truth,
                **row.extra,
            }
        )
    names = list(dict.fromkeys(name for record in records for name in record))
    features = datasets.Features(
        {name: _feature(name, [record.get(name) for record in records], datasets) for name in names}
    )
    # from_list takes the columns of the first record only: give every record every column.
    return datasets.Dataset.from_list([{name: r.get(name) for name in names} for r in records], features=features)


def _with_tools(prompt: list[dict[str, Any]], tools: Any) -> list[dict[str, Any]]:
    """The prompt with the row's tools (OpenAI format) described in its system message.

    A pytest run sends a row's tools with the request, for the server's chat template to render;
    TRL renders only the trainer-wide tools, so the row's go into the text, in the wording of
    Hermes/Qwen templates, asking for the `<tool_call>` blocks the tool_call reward reads.
    """
    if not tools:
        return prompt
    listing = "\n".join(json.dumps(tool, ensure_ascii=False) for tool in tools)
    described = TOOLS_PROMPT.format(tools=listing)
    if prompt and prompt[0]["role"] == "system":
        return [{**prompt[0], "content": f"{prompt[0]['content']}\n\n{described}"}, *prompt[1:]]
    return [{"role": "system", "content": described}, *prompt]


def _feature(name: str, values: list[Any], datasets: Any) -> Any:
    """Plain Arrow type for a column of one scalar type; JSON for anything else, which Arrow
    would otherwise merge into one struct, filling the keys a row lacks with None."""
    if name == "prompt":
        return datasets.List(datasets.Json())
    kinds = {type(value) for value in values if value is not None}
    if len(kinds) == 1 and (kind := kinds.pop()) in _ARROW_SCALARS:
        return datasets.Value(_ARROW_SCALARS[kind])
    return datasets.Json()


_ARROW_SCALARS = {str: "string", int: "int64", float: "float64", bool: "bool"}
