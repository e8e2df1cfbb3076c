"""Settings: the suite's YAML file beside its data, the `--rk-*` options, and how they combine."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pytest_rewardkit.models import ResponseStats

RECORD_MODES = ("none", "once", "new_episodes", "all")

Aggregate = Literal["mean", "min", "max"]


class ConfigError(ValueError):
    """A settings problem the user must fix; the message names the file or option."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RewardSpec(_Strict):
    name: str = Field(min_length=1, description="built-in name or 'module:function'")
    params: dict[str, Any] = Field(default_factory=dict)


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


class SuiteConfig(_Strict):
    """`rewardkit.yaml`: what a suite scores and how."""

    name: str | None = Field(default=None, description="defaults to the folder's name")
    dataset: str = "dataset.jsonl"
    reward: RewardSpec
    threshold: float = Field(default=1.0, ge=0.0, le=1.0)
    system_prompt: str | None = None
    aggregate: Aggregate = "mean"
    generation: GenerationDefaults = Field(default_factory=GenerationDefaults)
    models: dict[str, str] = Field(default_factory=dict, description="extra model aliases")
    prices: dict[str, Price] = Field(default_factory=dict, description="per model alias or name: cost per 1M tokens")
    environment: EnvironmentSpec | None = None


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def describe_validation_error(exc: ValidationError, where: str) -> str:
    problems = [f"  {_location(e['loc'])}: {e['msg']}" for e in exc.errors()]
    return f"{where}: invalid settings\n" + "\n".join(problems)


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
    try:
        return SuiteConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, str(path))) from exc


class Options(_Strict):
    """The `--rk-*` command-line options, validated once at start-up."""

    model: str | None = Field(default=None, min_length=1)
    n: int | None = Field(default=None, ge=1, le=128)
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    min_pass_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    max_error_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    k: list[int] | None = None
    limit: int | None = Field(default=None, ge=1)
    output: Path | None = None
    html: Path | None = None
    base_url: str | None = None
    concurrency: int = Field(default=16, ge=1, le=1024)
    record_mode: Literal["none", "once", "new_episodes", "all"] = "none"
    cassette_dir: Path | None = None
    api_key_env: str = Field(default="FIREWORKS_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    request_timeout: float = Field(default=120.0, gt=0)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1)
    group_by: list[str] = Field(default_factory=list)

    @field_validator("k", mode="before")
    @classmethod
    def _parse_k(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return [int(part) for part in value.split(",") if part.strip()]
            except ValueError:
                raise ValueError("expected a comma-separated list of integers, e.g. 1,4") from None
        return value

    @field_validator("k")
    @classmethod
    def _positive_k(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or any(k < 1 for k in value)):
            raise ValueError("every k must be a positive integer")
        return sorted(set(value)) if value else value

    _check_url = field_validator("base_url")(_http_url)

    @field_validator("output")
    @classmethod
    def _output_dir(cls, value: Path | None) -> Path | None:
        if value is not None and value.exists() and not value.is_dir():
            raise ValueError(f"{value} is a file; name a directory for results.jsonl and summary.json")
        return value

    @field_validator("html")
    @classmethod
    def _html_file(cls, value: Path | None) -> Path | None:
        if value is not None and value.is_dir():
            raise ValueError(f"{value} is a directory; name the report file, e.g. report.html")
        return value

    @field_validator("group_by", mode="before")
    @classmethod
    def _parse_group_by(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        return [part.strip() for item in value for part in str(item).split(",") if part.strip()]

    @model_validator(mode="after")
    def _consistent(self) -> Options:
        if self.n is not None and self.n > 1 and self.model is None:
            raise ValueError("--rk-n > 1 needs --rk-model: without a model each row has one response")
        if self.max_error_rate is not None and self.min_pass_rate is None:
            raise ValueError("--rk-max-error-rate is the gate's tolerance: give --rk-min-pass-rate too")
        if self.k and self.n is not None and max(self.k) > self.n:
            raise ValueError(f"--rk-k {max(self.k)} exceeds --rk-n {self.n}: pass@k needs k <= n")
        return self


OPTION_FLAGS = {
    "model": "--rk-model",
    "n": "--rk-n",
    "threshold": "--rk-threshold",
    "min_pass_rate": "--rk-min-pass-rate",
    "max_error_rate": "--rk-max-error-rate",
    "k": "--rk-k",
    "limit": "--rk-limit",
    "output": "--rk-output",
    "html": "--rk-html",
    "base_url": "--rk-base-url",
    "concurrency": "--rk-concurrency",
    "record_mode": "--record-mode",
    "cassette_dir": "--rk-cassette-dir",
    "group_by": "--rk-group-by",
    "api_key_env": "--rk-api-key-env",
    "request_timeout": "--rk-request-timeout",
    "temperature": "--rk-temperature",
    "top_p": "--rk-top-p",
    "max_tokens": "--rk-max-tokens",
}


def parse_options(values: dict[str, Any]) -> Options:
    """Validate raw option values; a ConfigError names the offending flag."""
    try:
        return Options.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            flag = OPTION_FLAGS.get(field, "rewardkit options")
            problems.append(f"{flag}: {error['msg'].removeprefix('Value error, ')}")
        raise ConfigError("; ".join(problems)) from exc


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
    ks: list[int]
    sampling: SamplingParams
    base_url: str | None
    model_aliases: dict[str, str]
    prices: dict[str, Price] = {}
    limit: int | None
    group_by: list[str]
    environment: EnvironmentSpec | None = None


def combine(config_path: Path, config: SuiteConfig, options: Options, root: Path | None = None) -> Settings:
    """The suite's settings with the command line applied; `root` makes the dataset label relative."""
    model = options.model or config.generation.model
    n = (options.n or config.generation.n) if model else 1
    ks = options.k or sorted({1, n})
    if max(ks) > n:
        raise ConfigError(
            f"{config_path}: pass@{max(ks)} needs at least {max(ks)} variants per row, but n is {n}; "
            "lower --rk-k or raise --rk-n"
        )
    gen = config.generation
    dataset_path = config_path.parent / config.dataset
    try:
        label = str(dataset_path.relative_to(root)) if root else str(dataset_path)
    except ValueError:
        label = str(dataset_path)
    return Settings(
        suite=config.name or config_path.parent.name,
        config_path=config_path,
        dataset_path=dataset_path,
        dataset_label=label,
        reward=config.reward,
        threshold=options.threshold if options.threshold is not None else config.threshold,
        system_prompt=config.system_prompt,
        aggregate=config.aggregate,
        model=model,
        n=n,
        ks=ks,
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
    )
