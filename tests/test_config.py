"""rewardkit.yaml validation, the --rk-* options, and how the command line overrides the file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_rewardkit.config import (
    ConfigError,
    GateSpec,
    Options,
    RewardSpec,
    SuiteConfig,
    combine,
    load_suite_config,
    parse_options,
)

if TYPE_CHECKING:
    from conftest import ChatRow, MakeSuite


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "my-suite" / "rewardkit.yaml"
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")
    return path


def test_reward_as_a_string_is_shorthand_for_its_name(tmp_path: Path) -> None:
    config = load_suite_config(write_config(tmp_path, "reward: math\n"))
    assert config.reward == RewardSpec(name="math", params={})


def test_reward_with_params(tmp_path: Path) -> None:
    path = write_config(tmp_path, "reward:\n  name: pkg.mod:fn\n  params: {strict: false, tolerance: 0.1}\n")
    assert load_suite_config(path).reward.params == {"strict": False, "tolerance": 0.1}


def test_defaults(tmp_path: Path) -> None:
    config = load_suite_config(write_config(tmp_path, "reward: math\n"))
    assert config.name is None
    assert config.dataset == "dataset.jsonl"
    assert config.threshold == 1.0
    assert config.system_prompt is None
    assert config.aggregate == "mean"
    gen = config.generation
    assert (gen.model, gen.n, gen.temperature, gen.max_tokens) == (None, 1, None, None)


def test_every_documented_key_is_read(tmp_path: Path) -> None:
    text = """
name: arithmetic
dataset: data/rows.jsonl
reward: {name: math, params: {strict: true}}
threshold: 0.5
system_prompt: Think, then answer in \\boxed{}.
aggregate: min
generation: {model: gpt-x, n: 4, temperature: 0.7, max_tokens: 256}
"""
    config = load_suite_config(write_config(tmp_path, text))
    assert (config.name, config.dataset, config.threshold, config.aggregate) == (
        "arithmetic",
        "data/rows.jsonl",
        0.5,
        "min",
    )
    assert config.system_prompt == "Think, then answer in \\boxed{}."
    assert config.generation.model_dump(include={"model", "n", "temperature", "max_tokens"}) == {
        "model": "gpt-x",
        "n": 4,
        "temperature": 0.7,
        "max_tokens": 256,
    }


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("reward: math\ntreshold: 0.5\n", "treshold"),
        ("reward: {name: math, parms: {}}\n", "reward.parms"),
        ("reward: math\ngeneration: {model: m, temprature: 1}\n", "generation.temprature"),
    ],
)
def test_an_unknown_key_is_an_error_naming_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_suite_config(path)
    assert str(path) in str(caught.value)
    assert f"{key}: Extra inputs are not permitted" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("reward: math\nthreshold: high\n", "threshold"),
        ("reward: math\nthreshold: 1.5\n", "threshold"),
        ("reward: math\naggregate: median\n", "aggregate"),
        ("reward: {name: math, params: [strict]}\n", "reward.params"),
        ("reward: math\ngeneration: {n: 0}\n", "generation.n"),
        ("reward: math\ngeneration: {temperature: hot}\n", "generation.temperature"),
        ("reward: math\ngeneration: {max_tokens: 0}\n", "generation.max_tokens"),
        ("reward: math\ndataset: [a, b]\n", "dataset"),
        ("reward: math\nsystem_prompt: {a: 1}\n", "system_prompt"),
        ("reward: 3\n", "reward"),
        ("threshold: 0.5\n", "reward"),
        ("reward: math\ngate: {min_pass_rate: 1.5}\n", "gate.min_pass_rate"),
        ("reward: math\ngate: {min_pass_rate: 0.8, max_error_rate: -0.1}\n", "gate.max_error_rate"),
        ("reward: math\ngate: {min_pass_rate: 0.8, on: mean}\n", "gate.on"),
        ("reward: math\ngate: {max_error_rate: 0.1}\n", "gate.min_pass_rate"),
        ("reward: math\ngate: {min_pass_rate: 0.8, min_rows: 10}\n", "gate.min_rows"),
    ],
)
def test_a_wrong_type_or_value_is_an_error_naming_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_suite_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: invalid settings")
    assert f"\n  {key}: " in message


@pytest.mark.parametrize(
    ("text", "problem"), [("- a\n- b\n", "expected a mapping"), ("reward: [\n", "cannot read YAML")]
)
def test_a_file_that_is_not_a_mapping_is_an_error_naming_it(tmp_path: Path, text: str, problem: str) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError, match=problem) as caught:
        load_suite_config(path)
    assert str(path) in str(caught.value)


def settings_for(tmp_path: Path, options: Options, **config: Any) -> Any:
    config.setdefault("reward", RewardSpec(name="math"))
    path = tmp_path / "suites" / "algebra" / "rewardkit.yaml"
    return combine(path, SuiteConfig(**config), options, root=tmp_path)


def test_combine_without_options_keeps_the_file_settings(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, Options(), threshold=0.75, system_prompt="be brief")
    assert settings.suite == "suites/algebra"  # the folder's path from the rootdir: unique in the run
    assert settings.dataset_path == tmp_path / "suites" / "algebra" / "dataset.jsonl"
    assert settings.dataset_label == "suites/algebra/dataset.jsonl"
    assert (settings.threshold, settings.system_prompt, settings.model, settings.n) == (0.75, "be brief", None, 1)


def test_the_suite_name_setting_wins_over_the_folder_name(tmp_path: Path) -> None:
    assert settings_for(tmp_path, Options(), name="gsm8k").suite == "gsm8k"


def test_threshold_and_limit_come_from_the_command_line(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, Options(threshold=0.25, limit=3), threshold=0.75)
    assert (settings.threshold, settings.limit) == (0.25, 3)
    assert settings_for(tmp_path, Options(threshold=0.0), threshold=0.75).threshold == 0.0


def test_without_a_model_each_row_has_one_response_whatever_the_file_says(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, Options(), generation={"n": 8})
    # The report's pass@k are for 1 and n, so pass@1 only.
    assert (settings.model, settings.n) == (None, 1)


def test_model_and_n_from_the_file_and_from_the_command_line(tmp_path: Path) -> None:
    from_file = settings_for(tmp_path, Options(), generation={"model": "m-file", "n": 4})
    assert (from_file.model, from_file.n) == ("m-file", 4)
    from_cli = settings_for(tmp_path, Options(model="m-cli", n=2, k=[2]), generation={"model": "m-file", "n": 4})
    assert (from_cli.model, from_cli.n) == ("m-cli", 2)  # --rk-k 2 <= n: accepted; the report reads it


def test_k_above_the_suites_n_is_refused_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"rewardkit\.yaml: pass@4 needs at least 4 variants per row, but n is 2"):
        settings_for(tmp_path, Options(k=[1, 4]), generation={"model": "m", "n": 2})


def test_parse_options_reads_raw_values() -> None:
    options = parse_options({"k": "4,1,4", "n": 4, "model": "m", "threshold": 0.5, "limit": 10, "group_by": ["a,b"]})
    assert (options.k, options.n, options.threshold, options.limit, options.group_by) == (
        [1, 4],
        4,
        0.5,
        10,
        ["a", "b"],
    )
    assert parse_options({"model": None, "k": None}) == Options()


@pytest.mark.parametrize(
    ("raw", "flag"),
    [
        ({"n": 0}, "--rk-n"),
        ({"threshold": 1.5}, "--rk-threshold"),
        ({"min_pass_rate": -0.1}, "--rk-min-pass-rate"),
        ({"k": "one"}, "--rk-k"),
        ({"k": "0"}, "--rk-k"),
        ({"limit": 0}, "--rk-limit"),
    ],
)
def test_parse_options_names_the_flag(raw: dict[str, Any], flag: str) -> None:
    with pytest.raises(ConfigError, match=f"^{flag}: "):
        parse_options(raw)


# Start-up: every invalid --rk-* value stops pytest with a usage error (exit 4) naming the option.
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--rk-n", "0"], "--rk-n: expected an integer from 1 to 128"),
        (["--rk-n", "two"], "argument --rk-n: invalid int value: 'two'"),
        (["--rk-n", "3"], "--rk-n > 1 needs --rk-model"),
        (["--rk-threshold", "1.5"], "--rk-threshold: expected a number from 0 to 1"),
        (["--rk-threshold", "-0.5"], "--rk-threshold: expected a number from 0 to 1"),
        (["--rk-threshold", "nan"], "--rk-threshold: "),
        (["--rk-threshold", "high"], "argument --rk-threshold: invalid float value: 'high'"),
        (["--rk-min-pass-rate", "95"], "--rk-min-pass-rate: expected a number from 0 to 1"),
        (["--rk-min-pass-rate", "nan"], "--rk-min-pass-rate: "),
        (["--rk-min-pass-rate", "most"], "argument --rk-min-pass-rate: invalid float value: 'most'"),
        (["--rk-k", "0"], "--rk-k: every k must be a positive integer"),
        (["--rk-k", "1,x"], "--rk-k: expected a comma-separated list of integers"),
        (["--rk-k", ""], "--rk-k: every k must be a positive integer"),
        (["--rk-model", "m", "--rk-n", "2", "--rk-k", "1,4"], "--rk-k 4 exceeds --rk-n 2"),
        (["--rk-limit", "0"], "--rk-limit: Input should be greater than or equal to 1"),
        (["--rk-limit", "ten"], "argument --rk-limit: invalid int value: 'ten'"),
        (["--rk-concurrency", "0"], "--rk-concurrency: expected an integer from 1 to 1024"),
        (["--rk-concurrency", "many"], "argument --rk-concurrency: invalid int value: 'many'"),
        (["--rk-request-timeout", "0"], "--rk-request-timeout: Input should be greater than 0"),
        (["--rk-request-timeout", "soon"], "argument --rk-request-timeout: invalid float value: 'soon'"),
        (["--rk-api-key-env", "MY-KEY"], "--rk-api-key-env: String should match pattern"),
        (["--record-mode", "sometimes"], "argument --record-mode: invalid choice: 'sometimes'"),
        (["--rk-temperature", "3"], "--rk-temperature: expected a number from 0 to 2"),
        (["--rk-top-p", "0"], "--rk-top-p: Input should be greater than 0"),
        (["--rk-max-tokens", "0"], "--rk-max-tokens: Input should be greater than or equal to 1"),
    ],
)
def test_an_invalid_option_value_is_a_usage_error_at_start_up(
    quiet_pytester: pytest.Pytester, args: list[str], expected: str
) -> None:
    result = quiet_pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert expected in result.stderr.str()


def test_an_empty_model_name_is_a_usage_error(quiet_pytester: pytest.Pytester) -> None:
    result = quiet_pytester.runpytest("--rk-model", "", "--rk-n", "4")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--rk-model" in result.stderr.str()


def test_a_base_url_that_is_not_an_http_url_is_a_usage_error(quiet_pytester: pytest.Pytester) -> None:
    result = quiet_pytester.runpytest("--rk-base-url", "localhost-8000/v1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--rk-base-url" in result.stderr.str()


def test_an_output_path_that_is_a_file_is_a_usage_error(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    make_suite([chat_row("a", "1", "1")])
    pytester.makefile(".txt", taken="")
    result = pytester.runpytest("--rk-output", "taken.txt")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--rk-output" in result.stderr.str()


def test_k_above_the_suites_n_stops_the_run_naming_the_file(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    make_suite([chat_row("a", "1", "1")])
    result = pytester.runpytest("--rk-k", "2")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*suite/rewardkit.yaml: pass@2 needs at least 2 variants per row, but n is 1*"])


def test_an_invalid_suite_file_stops_the_run_naming_file_and_key(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    make_suite([chat_row("a", "1", "1")], treshold=0.5)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["*suite/rewardkit.yaml: invalid settings*", "*treshold: Extra inputs are not permitted*"]
    )
    assert "passed" not in result.stdout.str()


def test_rk_threshold_overrides_the_suite_threshold(
    pytester: pytest.Pytester, make_suite: MakeSuite, chat_row: ChatRow
) -> None:
    make_suite([chat_row("low", "0.4"), chat_row("mid", "0.6")], reward="rk_rewards:graded", threshold=0.9)
    pytester.runpytest("--rk-output", "").assert_outcomes(failed=2)
    pytester.runpytest("--rk-output", "", "--rk-threshold", "0.5").assert_outcomes(passed=1, failed=1)
    pytester.runpytest("--rk-output", "", "--rk-threshold", "0").assert_outcomes(passed=2)


def test_sampling_options_override_the_suites_generation_settings(tmp_path: Path) -> None:
    config_path = tmp_path / "rewardkit.yaml"
    config_path.write_text("reward: math\ngeneration: {temperature: 0.7, top_p: 0.9, max_tokens: 100, stop: ['END']}\n")
    suite = load_suite_config(config_path)
    kept = combine(config_path, suite, Options()).sampling
    assert (kept.temperature, kept.top_p, kept.max_tokens, kept.stop) == (0.7, 0.9, 100, ["END"])
    cli = combine(config_path, suite, Options(temperature=0.0, top_p=1.0, max_tokens=8)).sampling
    assert (cli.temperature, cli.top_p, cli.max_tokens, cli.stop) == (0.0, 1.0, 8, ["END"])


def test_every_option_is_declared_once_and_registered_from_its_declaration(
    quiet_pytester: pytest.Pytester,
) -> None:
    from pytest_rewardkit.options import flags

    declared = flags()
    assert set(declared) == set(Options.__dataclass_fields__)
    help_text = quiet_pytester.runpytest("--help").stdout.str()
    for flag in declared.values():
        assert flag.flag in help_text
    # The raw dict and the validation come from the same fields: every flag's value reaches Options.
    assert parse_options({name: None for name in declared}) == Options()


def test_the_command_line_gate_overrides_the_yaml_gate_for_every_suite(tmp_path: Path) -> None:
    from pytest_rewardkit.report import effective_gate

    yaml_gate = GateSpec(min_pass_rate=0.9, max_error_rate=0.2, on="lower_bound")
    assert settings_for(tmp_path, Options(), gate=yaml_gate).gate == yaml_gate
    assert effective_gate(yaml_gate, None) == yaml_gate
    assert effective_gate(None, None) is None
    cli = GateSpec(min_pass_rate=0.5, max_error_rate=0.1)
    assert effective_gate(yaml_gate, cli) == GateSpec(min_pass_rate=0.5, max_error_rate=0.1, on="lower_bound")
    assert effective_gate(None, cli) == cli


def test_a_bare_on_key_in_the_gate_is_read_as_on_not_as_yaml_true(tmp_path: Path) -> None:
    path = write_config(tmp_path, "reward: math\ngate: {min_pass_rate: 0.8, on: lower_bound}\n")
    assert load_suite_config(path).gate == GateSpec(min_pass_rate=0.8, on="lower_bound")
