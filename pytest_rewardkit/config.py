"""Settings: the suite's YAML file beside its data, the `--rk-*` options, and how they combine."""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

from pytest_rewardkit.errors import ConfigError, validation_problems
from pytest_rewardkit.models import ResponseStats
from pytest_rewardkit.options import Options, flags
from pytest_rewardkit.shards import ShardSpec

__all__ = ["ConfigError", "Options", "Settings", "SuiteConfig", "combine", "load_suite_config", "parse_options"]

Aggregate = Literal["mean", "min", "max"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


DEFAULT_REWARD_TIMEOUT = 120.0


class RewardSpec(_Strict):
    name: str = Field(min_length=1, description="built-in name or 'module:function'")
    params: dict[str, Any] = Field(default_factory=dict)
    timeout: float = Field(
        default=DEFAULT_REWARD_TIMEOUT,
        gt=0,
        allow_inf_nan=False,
        description="seconds one reward call may take; past it the row is an error",
    )


class SamplingParams(_Strict):
    """Sampling parameters sent with every request (those left unset are not sent)."""

    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1)
    stop: list[str] | None = None

    @field_validator("stop", mode="before")
    @classmethod
    def _one_stop(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class EnvironmentSpec(_Strict):
    """`environment:`: the class whose instance a multi-turn row's tools act on, built fresh for
    every rollout from the row's `initial_config`, and the limits of a rollout."""

    name: str = Field(min_length=1, description="'module:Class', the module beside the suite's YAML or importable")
    tools: str | None = Field(default=None, description="function documents (JSON list or JSONL) beside the suite")
    max_turns: int = Field(default=20, ge=1, description="user turns played at most")
    max_steps: int = Field(default=20, ge=1, description="model requests per user turn at most")
    time_limit: float = Field(default=600.0, gt=0, description="seconds per rollout, checked at each model answer")


def _http_url(value: str | None) -> str | None:
    if value is not None:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{value!r} is not an http(s) URL, e.g. http://127.0.0.1:8000/v1")
    return value


class GenerationDefaults(SamplingParams):
    model: str | None = Field(default=None, min_length=1)
    n: int = Field(default=1, ge=1, le=128)
    base_url: str | None = None

    _check_url = field_validator("base_url")(_http_url)


class Price(_Strict):
    """A model's price per million tokens (any one currency, the same across a suite)."""

    prompt: float = Field(ge=0.0, description="per million prompt (input) tokens")
    completion: float = Field(ge=0.0, description="per million completion (output) tokens")

    def cost(self, stats: ResponseStats) -> float | None:
        if stats.prompt_tokens is None and stats.completion_tokens is None:
            return None
        return ((stats.prompt_tokens or 0) * self.prompt + (stats.completion_tokens or 0) * self.completion) / 1e6


class GateSpec(_Strict):
    """The bar a suite's (dataset, model) must clear: `gate:` in its YAML, or the command line's
    --rk-min-pass-rate / --rk-max-error-rate, which override it for every suite (report.gate)."""

    min_pass_rate: float = Field(ge=0.0, le=1.0)
    max_error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    # lower_bound asks for evidence, not luck: the pass rate's 95% Wilson interval must clear the bar.
    on: Literal["point", "lower_bound"] = "point"


class SuiteConfig(_Strict):
    """`rewardkit.yaml`: what a suite scores and how."""

    name: str | None = Field(
        default=None,
        min_length=1,
        description="the suite's label and cassette folder; defaults to the folder's path from the rootdir",
    )
    dataset: str = "dataset.jsonl"
    reward: RewardSpec
    threshold: float = Field(default=1.0, ge=0.0, le=1.0)
    system_prompt: str | None = None
    aggregate: Aggregate = "mean"
    generation: GenerationDefaults = Field(default_factory=GenerationDefaults)
    models: dict[str, str] = Field(default_factory=dict, description="extra model aliases")
    prices: dict[str, Price] = Field(default_factory=dict, description="per model alias or name: cost per 1M tokens")
    environment: EnvironmentSpec | None = None
    gate: GateSpec | None = None


def describe_validation_error(exc: ValidationError, where: str, what: str = "settings") -> str:
    """`where: invalid <what>` and one indented line per problem (settings files, dataset rows)."""
    return f"{where}: invalid {what}\n" + "\n".join(f"  {problem}" for problem in validation_problems(exc))


def load_suite_config(path: Path) -> SuiteConfig:
    """Read and validate a suite's YAML; every problem is a ConfigError naming the file and key."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    for section in ("reward", "environment"):
        if isinstance(data.get(section), str):
            data[section] = {"name": data[section]}
    gate = data.get("gate")
    if isinstance(gate, dict) and True in gate and "on" not in gate:
        # YAML 1.1 reads a bare `on:` key as the boolean true; the gate's `on:` is meant.
        gate["on"] = gate.pop(True)
    try:
        return SuiteConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, str(path))) from exc


class _OptionChecks(_Strict):
    """What validating the options adds to their declared types and bounds: parsing of the raw
    text, and checks that span several options."""

    @field_validator("k", mode="before", check_fields=False)
    @classmethod
    def _parse_k(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return [int(part) for part in value.split(",") if part.strip()]
            except ValueError:
                raise ValueError("expected a comma-separated list of integers, e.g. 1,4") from None
        return value

    @field_validator("k", check_fields=False)
    @classmethod
    def _positive_k(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or any(k < 1 for k in value)):
            raise ValueError("every k must be a positive integer")
        return sorted(set(value)) if value else value

    _check_url = field_validator("base_url", check_fields=False)(_http_url)

    @field_validator("output", check_fields=False)
    @classmethod
    def _output_dir(cls, value: Path | None) -> Path | None:
        if value is None:
            return value
        if value.exists() and not value.is_dir():
            raise ValueError(f"{value} is a file; name a directory for results.jsonl and summary.json")
        # Checked now, not when the first row finishes: the nearest folder that exists must be one
        # this process may create files in.
        existing = next(p for p in (value, *value.parents) if p.exists())
        if not existing.is_dir():
            raise ValueError(f"cannot create {value}: {existing} is a file")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ValueError(f"cannot create {value}: {existing} is not writable")
        return value

    @field_validator("html", check_fields=False)
    @classmethod
    def _html_file(cls, value: Path | None) -> Path | None:
        if value is not None and value.is_dir():
            raise ValueError(f"{value} is a directory; name the report file, e.g. report.html")
        return value

    @field_validator("shard", mode="before", check_fields=False)
    @classmethod
    def _parse_shard(cls, value: Any) -> Any:
        return ShardSpec.parse(value) if isinstance(value, str) else value

    @field_validator("baseline", check_fields=False)
    @classmethod
    def _baseline_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not (value / "outcomes.jsonl").is_file() and not value.is_file():
            raise ValueError(f"{value}: no such file or results folder (give an earlier run's summary.json or folder)")
        return value

    @field_validator("group_by", mode="before", check_fields=False)
    @classmethod
    def _parse_group_by(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        return [part.strip() for item in value for part in str(item).split(",") if part.strip()]

    @model_validator(mode="after")
    def _consistent(self) -> Any:
        n, model, k = getattr(self, "n", None), getattr(self, "model", None), getattr(self, "k", None)
        if n is not None and n > 1 and model is None:
            raise ValueError("--rk-n > 1 needs --rk-model: without a model each row has one response")
        if getattr(self, "max_error_rate", None) is not None and getattr(self, "min_pass_rate", None) is None:
            raise ValueError("--rk-max-error-rate is the gate's tolerance: give --rk-min-pass-rate too")
        if getattr(self, "max_regressions", None) is not None and getattr(self, "baseline", None) is None:
            raise ValueError("--rk-max-regressions needs --rk-baseline: regressions are counted against a baseline")
        if k and n is not None and max(k) > n:
            raise ValueError(f"--rk-k {max(k)} exceeds --rk-n {n}: pass@k needs k <= n")
        return self


def _options_model() -> type[BaseModel]:
    """The pydantic model that validates `Options`, built from its fields: type, default, bounds."""
    hints = typing.get_type_hints(Options)
    fields: dict[str, Any] = {}
    for field in dataclasses.fields(Options):
        bounds = dict(field.metadata["flag"].bounds)
        if float in typing.get_args(hints[field.name]) or hints[field.name] is float:
            bounds["allow_inf_nan"] = False  # nan slips past every comparison with a bound
        if field.default_factory is not dataclasses.MISSING:
            fields[field.name] = (hints[field.name], Field(default_factory=field.default_factory, **bounds))
        else:
            fields[field.name] = (hints[field.name], Field(default=field.default, **bounds))
    return create_model("Options", __base__=_OptionChecks, **fields)


_OPTIONS_MODEL = _options_model()
OPTION_FLAGS = {name: flag.flag for name, flag in flags().items()}


def _with_range(problem: str) -> str:
    """A bounded number's problem says the whole range allowed, not only the bound it crossed."""
    flag = problem.partition(":")[0]
    name = next((n for n, f in OPTION_FLAGS.items() if f == flag), None)
    bounds = flags()[name].bounds if name else {}
    if {"ge", "le"} <= bounds.keys() and ("finite number" in problem or "than or equal to" in problem):
        kind = "an integer" if isinstance(bounds["ge"], int) and isinstance(bounds["le"], int) else "a number"
        return f"{flag}: expected {kind} from {bounds['ge']:g} to {bounds['le']:g}"
    return problem


def parse_options(values: dict[str, Any]) -> Options:
    """Validate raw option values (None: not given); a ConfigError names the offending flag."""
    try:
        checked = _OPTIONS_MODEL.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        problems = validation_problems(
            exc, lambda loc: OPTION_FLAGS.get(str(loc[0]) if loc else "", "rewardkit options")
        )
        raise ConfigError("; ".join(_with_range(problem) for problem in problems)) from exc
    return Options(**dict(checked))


class Settings(BaseModel):
    """What one suite runs with: its file's settings overridden by the command line."""

    model_config = ConfigDict(frozen=True)

    suite: str
    config_path: Path
    dataset_path: Path
    dataset_label: str
    reward: RewardSpec
    threshold: float
    system_prompt: str | None
    aggregate: Aggregate
    model: str | None
    n: int
    sampling: SamplingParams
    base_url: str | None
    model_aliases: dict[str, str]
    prices: dict[str, Price] = {}
    limit: int | None
    group_by: list[str]
    environment: EnvironmentSpec | None = None
    gate: GateSpec | None = None


def suite_label(config_path: Path, root: Path | None) -> str:
    """A suite without a `name:` is known by its folder's path from the rootdir: two folders of
    the same name in different places stay two suites (and two cassette folders)."""
    folder = config_path.parent
    try:
        relative = folder.resolve().relative_to(root.resolve()) if root else None
    except ValueError:
        relative = None
    return relative.as_posix() if relative is not None and relative.parts else folder.name


def combine(config_path: Path, config: SuiteConfig, options: Options, root: Path | None = None) -> Settings:
    """The suite's settings with the command line applied; `root` makes the dataset label relative."""
    model = options.model or config.generation.model
    n = (options.n or config.generation.n) if model else 1
    # The report reads pass@k for --rk-k (default: 1 and n); only --rk-k can ask for more than n.
    k = max(options.k or [n])
    if k > n:
        # The advice must work as given: without a model each row has one stored response, and
        # --rk-n alone needs --rk-model.
        fix = (
            "lower --rk-k or raise --rk-n"
            if model
            else f"lower --rk-k to 1, or generate {k} responses per row with --rk-model <model> --rk-n {k}"
        )
        raise ConfigError(f"{config_path}: pass@{k} needs at least {k} variants per row, but n is {n}; {fix}")
    gen = config.generation
    dataset_path = config_path.parent / config.dataset
    try:
        label = str(dataset_path.relative_to(root)) if root else str(dataset_path)
    except ValueError:
        label = str(dataset_path)
    return Settings(
        suite=config.name or suite_label(config_path, root),
        config_path=config_path,
        dataset_path=dataset_path,
        dataset_label=label,
        reward=config.reward,
        threshold=options.threshold if options.threshold is not None else config.threshold,
        system_prompt=config.system_prompt,
        aggregate=config.aggregate,
        model=model,
        n=n,
        sampling=SamplingParams(
            temperature=gen.temperature if options.temperature is None else options.temperature,
            top_p=gen.top_p if options.top_p is None else options.top_p,
            max_tokens=gen.max_tokens if options.max_tokens is None else options.max_tokens,
            stop=gen.stop,
        ),
        base_url=options.base_url or gen.base_url,
        model_aliases=config.models,
        prices=config.prices,
        limit=options.limit,
        group_by=options.group_by,
        environment=config.environment,
        gate=config.gate,
    )
