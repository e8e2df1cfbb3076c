"""The `--rk-*` command-line options, each declared once: one field of `Options` carries the option's
type, default, bounds, flag and help. The pytest parser's options, the raw values read back from
pytest and the validation (`config.parse_options`) are all derived from these fields.

Import-light on purpose (no pydantic): the plugin registers these options in every pytest run of
a user's project.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pytest

from pytest_rewardkit.shards import ShardSpec

RecordMode = Literal["none", "once", "new_episodes", "all"]
DEFAULT_OUTPUT = "rewardkit-results"


@dataclasses.dataclass(frozen=True)
class Flag:
    """How one option appears on the command line, and the bounds its value must meet."""

    flag: str
    help: str
    type: Callable[[str], Any] | None = None  # argparse's conversion: a bad int is its usage error
    action: str | None = None
    choices: tuple[str, ...] | None = None
    cli_default: Any = None  # what pytest reports when the flag is absent (None: the field's default applies)
    bounds: dict[str, Any] = dataclasses.field(default_factory=dict)  # pydantic Field constraints
    # The value pytest reports, as the field expects it (with the config, for paths relative to it).
    normalize: Callable[[Any, pytest.Config], Any] | None = None
    owner: str | None = None  # a plugin that registers this flag itself when installed (we read its value)

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


def option(flag: str, help: str, default: Any = None, **details: Any) -> Any:
    """One option: a dataclass field whose metadata is its `Flag` (a list default is copied per instance)."""
    metadata = {"flag": Flag(flag, help, **details)}
    if isinstance(default, list):
        return dataclasses.field(default_factory=default.copy, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _record_mode(value: str, config: pytest.Config) -> str:
    # pytest-recording's "rewrite" re-records everything, which is our "all".
    return "all" if value == "rewrite" else value


def _from_invocation_dir(value: str, config: pytest.Config) -> str | None:
    # Like --junitxml, a report path is relative to where pytest was started.
    return str(config.invocation_params.dir / value) if value else None


def _output_dir(value: str, config: pytest.Config) -> str | None:
    # The default lives under the rootdir; a directory given resolves like --junitxml's file.
    if value == DEFAULT_OUTPUT:
        return str(config.rootpath / value)
    return _from_invocation_dir(value, config)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Options:
    """The `--rk-*` options, validated once at start-up (`config.parse_options`)."""

    model: str | None = option(
        "--rk-model", "model alias or full name to generate responses with", bounds={"min_length": 1}
    )
    n: int | None = option(
        "--rk-n", "responses (variants) per row; needs --rk-model", type=int, bounds={"ge": 1, "le": 128}
    )
    threshold: float | None = option(
        "--rk-threshold", "reward a row needs to pass, in [0, 1]", type=float, bounds={"ge": 0.0, "le": 1.0}
    )
    min_pass_rate: float | None = option(
        "--rk-min-pass-rate",
        "gate: exit 0 only when every (dataset, model) pass rate reaches this, in [0, 1]",
        type=float,
        bounds={"ge": 0.0, "le": 1.0},
    )
    max_error_rate: float | None = option(
        "--rk-max-error-rate",
        "gate: share of rows per (dataset, model) that may error (not be scored), in [0, 1]; default 0",
        type=float,
        bounds={"ge": 0.0, "le": 1.0},
    )
    evaluator: Literal["fireworks-preview"] | None = option(
        "--rk-evaluator",
        "after scoring, preview the scored rows remotely with the suite's reward as an evaluator and fail "
        "on any disagreement or error: fireworks-preview (replays cassettes/<suite>/fireworks-preview/)",
        choices=("fireworks-preview",),
    )
    k: list[int] | None = option("--rk-k", "comma-separated k values for pass@k and pass^k, e.g. 1,4")
    limit: int | None = option("--rk-limit", "only the first N rows of each dataset", type=int, bounds={"ge": 1})
    output: Path | None = option(
        "--rk-output",
        "directory for results.jsonl and summary.json (default: %(default)s; '' disables)",
        cli_default=DEFAULT_OUTPUT,
        normalize=_output_dir,
    )
    html: Path | None = option(
        "--rk-html", "write a self-contained HTML report of the run to this file", normalize=_from_invocation_dir
    )
    shard: ShardSpec | None = option(
        "--rk-shard", "run shard i of n (e.g. 2/4) of every suite's rows; merge the shards' results after"
    )
    baseline: Path | None = option(
        "--rk-baseline",
        "compare with an earlier run: its summary.json or results folder",
        normalize=_from_invocation_dir,
    )
    max_regressions: int | None = option(
        "--rk-max-regressions",
        "gate: fail when more than N rows went pass->fail against --rk-baseline and the change is significant",
        type=int,
        bounds={"ge": 0},
    )
    group_by: list[str] = option(
        "--rk-group-by", "break the pass rate down by a row field", default=[], action="append"
    )
    base_url: str | None = option("--rk-base-url", "OpenAI-compatible endpoint (default: Fireworks)")
    concurrency: int = option(
        "--rk-concurrency",
        "model requests in flight per process (default 16)",
        default=16,
        type=int,
        bounds={"ge": 1, "le": 1024},
    )
    record_mode: RecordMode = option(
        "--record-mode",
        "cassette record mode: none (replay only, default), once, new_episodes, all",
        default="none",
        choices=("none", "once", "new_episodes", "all"),
        cli_default="none",
        normalize=_record_mode,
        owner="pytest_recording",
    )
    cassette_dir: Path | None = option("--rk-cassette-dir", "where cassettes live (default: <rootdir>/cassettes)")
    api_key_env: str = option(
        "--rk-api-key-env",
        "environment variable that holds the API key (default FIREWORKS_API_KEY)",
        default="FIREWORKS_API_KEY",
        bounds={"pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
    )
    request_timeout: float = option(
        "--rk-request-timeout",
        "seconds to wait for a model response (default 120)",
        default=120.0,
        type=float,
        bounds={"gt": 0},
    )
    max_repeated_errors: int = option(
        "--rk-max-repeated-errors",
        "stop recording once this many rows in a row fail with the same model error (an unknown model, "
        "a server answering only 5xx): 0 never stops (default 5)",
        default=5,
        type=int,
        bounds={"ge": 0},
    )
    temperature: float | None = option(
        "--rk-temperature", "sampling temperature (overrides the suite's)", type=float, bounds={"ge": 0.0, "le": 2.0}
    )
    top_p: float | None = option(
        "--rk-top-p", "nucleus sampling top_p (overrides the suite's)", type=float, bounds={"gt": 0.0, "le": 1.0}
    )
    max_tokens: int | None = option(
        "--rk-max-tokens", "maximum tokens per response (overrides the suite's)", type=int, bounds={"ge": 1}
    )


def flags() -> dict[str, Flag]:
    """Each option's field name and its flag, in declaration order."""
    return {field.name: field.metadata["flag"] for field in dataclasses.fields(Options)}


def add_options(group: Any, installed: Callable[[str], bool]) -> None:
    """Register every option with pytest's parser group; `installed(name)` says whether a plugin
    that owns a flag is there (then it registers the flag and we read the same value)."""
    for flag in flags().values():
        if flag.owner is not None and installed(flag.owner):
            continue
        extra = {
            key: value
            for key, value in (("type", flag.type), ("action", flag.action), ("choices", flag.choices))
            if value is not None
        }
        group.addoption(flag.flag, dest=flag.dest, default=flag.cli_default, help=flag.help, **extra)


def read_options(config: pytest.Config) -> tuple[dict[str, Any], bool]:
    """The raw option values as the Options fields name them (None: not given), and whether any
    was given explicitly (then it is validated at start-up, so a bad value is a usage error)."""
    raw: dict[str, Any] = {}
    explicit = False
    for name, flag in flags().items():
        value = config.getoption(flag.dest, flag.cli_default)
        explicit = explicit or value != flag.cli_default
        raw[name] = flag.normalize(value, config) if flag.normalize is not None and value is not None else value
    return raw, explicit
