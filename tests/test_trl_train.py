"""GRPO training end to end with the tiny in-process model, and the examples' training scripts."""

from __future__ import annotations

import math
import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import pytest
import torch

from pytest_rewardkit import EvaluateResult, Message, reward_function
from pytest_rewardkit.trl.train import (
    TrainSettings,
    build_parser,
    build_trainer,
    flag,
    main,
    parse_args,
    tiny_model,
    tiny_tokenizer,
)

if TYPE_CHECKING:
    from conftest import ChatRow, MakeSuite

ROOT = Path(__file__).resolve().parents[1]
CALLS: list[tuple[str, Any]] = []


def _variety(messages: list[Message], ground_truth: Any) -> EvaluateResult:
    # A score that differs between random completions, so GRPO's advantages (and gradients) are not zero.
    CALLS.append((messages[-2].text, ground_truth))
    text = messages[-1].text
    return EvaluateResult(score=len(set(text)) / max(len(text), 1), reason="distinct characters")


@reward_function
def variety(messages: list[Message], ground_truth: Any = None, **kwargs: Any) -> EvaluateResult:
    return _variety(messages, ground_truth)


@reward_function
async def async_variety(messages: list[Message], ground_truth: Any = None, **kwargs: Any) -> EvaluateResult:
    return _variety(messages, ground_truth)


@pytest.mark.parametrize("reward", ["variety", "async_variety"])
def test_two_grpo_steps_train_the_tiny_model_on_the_suites_reward(
    reward: str, make_suite: MakeSuite, chat_row: ChatRow, tmp_path: Path
) -> None:
    rows = [chat_row(f"q{i}", None, str(i * 7)) for i in range(4)]
    suite = make_suite(rows, reward=f"test_trl_train:{reward}", system_prompt="Answer with a number.")
    settings = TrainSettings(suite=suite, max_steps=2, num_generations=4, prompts_per_step=2, max_completion_length=16)
    trainer = build_trainer(settings, tmp_path)
    model = trainer.model
    assert model is not None
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    CALLS.clear()

    trainer.train()

    # 2 steps x 2 prompts x 4 completions, each scored with its own row's ground truth.
    assert len(CALLS) == 16
    assert {(prompt, truth) for prompt, truth in CALLS} <= {(f"question q{i}", str(i * 7)) for i in range(4)}
    logged = [log for log in trainer.state.log_history if "reward" in log]
    assert len(logged) == 2
    assert all(math.isfinite(log["reward"]) and math.isfinite(log["loss"]) for log in logged)
    assert all(log[f"rewards/{reward}/invalid_fraction"] == 0 for log in logged)
    changed = [name for name, p in model.named_parameters() if not torch.equal(p, before[name])]
    assert changed, "no parameter changed in 2 GRPO steps"


def test_the_command_line_prints_loss_and_mean_reward_per_step(
    make_suite: MakeSuite, chat_row: ChatRow, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = make_suite([chat_row("q1", None, "7"), chat_row("q2", None, "8")], reward="test_trl_train:variety")
    assert main(["--max-steps", "1", "--num-generations", "2", "--max-completion-length", "8"], suite=suite) == 0
    out = capsys.readouterr().out
    assert f"GRPO on {suite}: 2 prompts, reward variety, model tiny (random weights)" in out
    assert "step 1/1  loss " in out and "mean reward " in out
    assert "done: 1 steps in " in out


def test_model_takes_a_local_model_folder(
    make_suite: MakeSuite, chat_row: ChatRow, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A saved tiny model stands in for a real checkout such as Qwen3-0.6B: TRL loads both from the folder.
    tokenizer = tiny_tokenizer(iter(["question q1", "question q2", "7", "8"]))
    tiny_model(tokenizer).save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    suite = make_suite([chat_row("q1", None, "7"), chat_row("q2", None, "8")], reward="test_trl_train:variety")
    args = ["--model", str(tmp_path / "model"), "--max-steps", "1", "--num-generations", "2"]
    assert main([*args, "--max-completion-length", "8"], suite=suite) == 0
    out = capsys.readouterr().out
    assert f"model {tmp_path / 'model'} (" in out
    assert "step 1/1  loss " in out


def test_bad_options_are_refused_with_the_flag_named(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(["--num-generations", "1"], suite=Path("examples/math"))
    assert exited.value.code == 2
    assert "--num-generations: Input should be greater than or equal to 2" in capsys.readouterr().err


OPTIONS = {name: field for name, field in TrainSettings.model_fields.items() if not field.is_required()}


def test_every_setting_is_an_option_defaulting_to_the_models_default() -> None:
    parser = build_parser()
    assert {name: parser.get_default(name) for name in OPTIONS} == {
        name: field.get_default() for name, field in OPTIONS.items()
    }
    assert parse_args(["examples/math"]) == TrainSettings(suite=Path("examples/math"))
    assert parse_args([], suite=Path("examples/math")) == TrainSettings(suite=Path("examples/math"))


@pytest.mark.parametrize("name", OPTIONS)
def test_each_option_sets_its_setting_with_the_settings_type(name: str) -> None:
    kind = next(arg for arg in (*get_args(OPTIONS[name].annotation), OPTIONS[name].annotation) if arg is not type(None))
    # A value no default has, valid for every bound (all >= 2 or > 0).
    text = {int: "3", float: "0.5", str: "some/model", Path: "some/folder"}[kind]
    settings = parse_args([flag(name), text], suite=Path("examples/math"))
    assert getattr(settings, name) == kind(text) != OPTIONS[name].get_default()
    others = settings.model_dump(exclude={name})
    assert others == TrainSettings(suite=Path("examples/math")).model_dump(exclude={name})


def test_the_training_module_is_the_command_and_its_help_comes_from_the_settings() -> None:
    command = [sys.executable, "-m", "pytest_rewardkit.trl.train", "--help"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    shown = " ".join(done.stdout.split())  # argparse wraps the help to the terminal's width
    assert shown.startswith("usage: python -m pytest_rewardkit.trl.train [-h] [--model MODEL]")
    assert "--max-steps MAX_STEPS optimisation steps (default: 10) " in shown
    for name, field in OPTIONS.items():
        default = field.get_default()
        # A None default is described in words ("default: not saved"), not shown as None.
        assert f"{flag(name)} {name.upper()} {field.description}{'' if default is None else ' (default: '}" in shown
    assert "None" not in shown


def test_a_suite_problem_is_reported_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "rewardkit.yaml").write_text("reward: math\n", encoding="utf-8")
    assert main(["--max-steps", "1"], suite=tmp_path) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "dataset.jsonl: No such file or directory" in err


def example_folders() -> list[Path]:
    # multi_turn has none: TRL's GRPO plays one user turn per rollout (see its README).
    return sorted(script.parent for script in (ROOT / "examples").glob("*/train_grpo.py"))


@pytest.mark.parametrize("folder", example_folders(), ids=lambda folder: folder.name)
def test_every_example_trains_on_its_own_folder(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[TrainSettings] = []

    def record(settings: TrainSettings) -> Any:
        seen.append(settings)
        raise SystemExit(0)

    monkeypatch.setattr("pytest_rewardkit.trl.train.train", record)
    monkeypatch.setattr(sys, "argv", ["train_grpo.py", "--max-steps", "3"])
    with pytest.raises(SystemExit):
        runpy.run_path(str(folder / "train_grpo.py"), run_name="__main__")
    assert [(s.suite, s.max_steps) for s in seen] == [(folder, 3)]


def test_the_math_example_runs_offline_as_a_script() -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    script = ROOT / "examples" / "math" / "train_grpo.py"
    args = [sys.executable, str(script), "--max-steps", "1", "--num-generations", "2", "--limit", "2"]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "GRPO on " in done.stdout and "reward math_reward" in done.stdout
    assert "step 1/1  loss " in done.stdout
