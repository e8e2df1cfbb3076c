"""GRPO training on a suite with TRL: the implementation behind every example's `train_grpo.py`.

Without `--model`, the policy is a tiny randomly initialised Llama with a byte-level BPE tokenizer
trained on the suite's own text, built in-process: nothing is downloaded and a step takes seconds
on a CPU. Its completions are noise, so its rewards are mostly 0; the run shows that the pipeline
(prompts -> generation -> reward -> GRPO update) works. `--model` takes a real causal LM (a local
folder such as a Qwen3-0.6B checkout, or a hub name the user's cache holds).

    python examples/math/train_grpo.py --max-steps 2
    python -m pytest_rewardkit.trl.train examples/math --model ./Qwen3-0.6B --max-completion-length 512

Each field of `TrainSettings` is one option of the command line (`max_steps`: `--max-steps`), with
the field's type, default and description: a default is written once, in the model.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast, get_args

import datasets
import torch
from pydantic import BaseModel, Field, ValidationError
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)
from transformers.trainer_callback import PrinterCallback
from trl import GRPOConfig, GRPOTrainer

from pytest_rewardkit.errors import RewardkitError, validation_problems
from pytest_rewardkit.trl.adapter import suite_dataset, trl_reward

# ChatML, the format of Qwen's chat models: conversational prompts render the same way for the
# tiny model as for the real model a user is likely to swap in.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|pad|>", "<|im_start|>", "<|im_end|>"]
TINY_VOCAB = 512
TINY_COMPLETION_LENGTH = 32
MODEL_COMPLETION_LENGTH = 512


class TrainSettings(BaseModel):
    """One training run, as the command line describes it: a field without a default is a positional
    argument, every other field an option of the same name (see `build_parser`)."""

    suite: Path = Field(description="suite folder or rewardkit.yaml")
    model: str | None = Field(
        default=None, description="causal LM name or folder (default: a tiny random model built locally)"
    )
    max_steps: int = Field(default=10, ge=1, description="optimisation steps")
    num_generations: int = Field(default=4, ge=2, description="completions per prompt: GRPO compares them")
    prompts_per_step: int = Field(default=2, ge=1, description="prompts per optimisation step")
    max_completion_length: int | None = Field(
        default=None,
        ge=1,
        description=f"tokens per completion (default: {TINY_COMPLETION_LENGTH} for the tiny model, "
        f"{MODEL_COMPLETION_LENGTH} with --model)",
    )
    learning_rate: float = Field(default=1e-5, gt=0, description="optimiser learning rate")
    temperature: float = Field(default=1.0, gt=0, description="sampling temperature of the completions")
    beta: float = Field(default=0.0, ge=0, description="KL penalty coefficient; 0 needs no reference model")
    limit: int | None = Field(default=None, ge=1, description="use only the suite's first N rows")
    seed: int = Field(default=0, description="seed of the tiny model's weights, sampling and shuffling")
    output_dir: Path | None = Field(default=None, description="save the trained model here (default: not saved)")

    @property
    def completion_length(self) -> int:
        if self.max_completion_length is not None:
            return self.max_completion_length
        return TINY_COMPLETION_LENGTH if self.model is None else MODEL_COMPLETION_LENGTH


def _texts(dataset: datasets.Dataset) -> Iterator[str]:
    for row in dataset:
        for message in row["prompt"]:
            yield str(message.get("content") or "")
        yield str(row.get("ground_truth") or "")


def tiny_tokenizer(texts: Iterator[str]) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on `texts`: any text encodes, common words are one token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<|pad|>",
        eos_token="<|im_end|>",
        chat_template=CHAT_TEMPLATE,
        padding_side="left",  # GRPOTrainer generates from left-padded prompts
        # Without this, transformers 4.x adds token_type_ids, which a Llama's generate() refuses.
        model_input_names=["input_ids", "attention_mask"],
    )


def tiny_model(tokenizer: PreTrainedTokenizerFast, seed: int = 0) -> LlamaForCausalLM:
    """A 2-layer Llama with hidden size 64 and random weights (~0.1M parameters)."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    return LlamaForCausalLM(config)


class StepPrinter(TrainerCallback):
    """One line per optimisation step: loss and mean reward, the figures that show progress."""

    def __init__(self, reward_name: str) -> None:
        self.reward_name = reward_name
        self.started = time.perf_counter()

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if not logs or "loss" not in logs:
            return
        invalid = logs.get(f"rewards/{self.reward_name}/invalid_fraction", math.nan)
        print(
            f"step {state.global_step}/{state.max_steps}  loss {logs['loss']:.4f}  "
            f"mean reward {logs.get('reward', math.nan):.3f} (std {logs.get('reward_std', math.nan):.3f})  "
            f"invalid {invalid:.0%}  completion length {logs.get('completions/mean_length', math.nan):.1f}  "
            f"{time.perf_counter() - self.started:.1f}s",
            flush=True,
        )


def build_trainer(settings: TrainSettings, output_dir: Path) -> GRPOTrainer:
    """A GRPOTrainer for the suite's prompts and reward; `output_dir` takes TRL's run files."""
    dataset = suite_dataset(settings.suite, settings.limit)
    reward = trl_reward(settings.suite)
    model: str | PreTrainedModel
    tokenizer: PreTrainedTokenizerFast | None
    if settings.model is None:
        tokenizer = tiny_tokenizer(_texts(dataset))
        model = tiny_model(tokenizer, settings.seed)
    else:
        model, tokenizer = settings.model, None  # TRL loads both from the name or folder
    on_gpu = torch.cuda.is_available()
    config = GRPOConfig(
        output_dir=str(output_dir),
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.num_generations * settings.prompts_per_step,
        num_generations=settings.num_generations,
        max_completion_length=settings.completion_length,
        learning_rate=settings.learning_rate,
        temperature=settings.temperature,
        beta=settings.beta,
        seed=settings.seed,
        bf16=on_gpu,
        # Recomputing activations saves memory a tiny model does not need, at a cost in CPU time.
        gradient_checkpointing=settings.model is not None,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=not on_gpu,
    )
    # TRL awaits async reward functions but annotates `reward_funcs` as synchronous callables only.
    reward_funcs: list[Any] = [reward]
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward_funcs,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[StepPrinter(reward.__name__)],
    )
    # The step lines replace the raw log dicts the printer would add.
    trainer.remove_callback(PrinterCallback)
    return trainer


def train(settings: TrainSettings) -> GRPOTrainer:
    """Run GRPO on the suite and return the trained trainer (its `state.log_history` has every step)."""
    with tempfile.TemporaryDirectory(prefix="rewardkit-grpo-") as scratch:
        trainer = build_trainer(settings, settings.output_dir or Path(scratch))
        model = cast(PreTrainedModel, trainer.model)
        prompts = len(cast(datasets.Dataset, trainer.train_dataset))
        size = sum(p.numel() for p in model.parameters())
        print(
            f"GRPO on {settings.suite}: {prompts} prompts, reward {trainer.reward_func_names[0]}, "
            f"model {settings.model or 'tiny (random weights)'} ({size / 1e6:.2f}M parameters), "
            f"{settings.num_generations} completions x {settings.prompts_per_step} prompts per step",
            flush=True,
        )
        if settings.model is None:
            print("the tiny model writes random text, so expect rewards of 0; pass --model to train a real model")
        trainer.train()
        if settings.output_dir is not None:
            trainer.save_model(str(settings.output_dir))
            print(f"saved the model to {settings.output_dir}")
    return trainer


def flag(name: str) -> str:
    """The command-line option of a `TrainSettings` field."""
    return "--" + name.replace("_", "-")


def build_parser(suite: Path | None = None) -> argparse.ArgumentParser:
    """The command line, derived from `TrainSettings`: one option per field, with the field's type
    (`int | None` takes an int), default and description. `suite` makes the suite optional."""
    parser = argparse.ArgumentParser(
        # Without a suite this is the module's command; argparse alone would show "train.py".
        prog=None if suite else "python -m pytest_rewardkit.trl.train",
        description="Train a model with GRPO on a rewardkit suite's prompts and reward.",
    )
    for name, field in TrainSettings.model_fields.items():
        kind: Any = field.annotation
        if type(None) in get_args(kind):  # `X | None`: the option takes an X; leaving it out gives None
            (kind,) = (arg for arg in get_args(kind) if arg is not type(None))
        if field.is_required():
            names, default = [name], suite
            nargs: dict[str, Any] = {"nargs": "?"} if suite else {}
        else:
            names, default, nargs = [flag(name)], field.get_default(call_default_factory=True), {}
        # A field whose default is None says in its description what leaving it out means.
        shown = "" if default is None else f" (default: {default})"
        parser.add_argument(*names, type=kind, default=default, help=f"{field.description}{shown}", **nargs)
    return parser


def parse_args(argv: Sequence[str] | None, suite: Path | None = None) -> TrainSettings:
    parser = build_parser(suite)
    args = parser.parse_args(argv)
    try:
        return TrainSettings.model_validate(vars(args))
    except ValidationError as exc:
        problems = "; ".join(validation_problems(exc, lambda loc: flag(str(loc[0]))))
        parser.error(problems)


def main(argv: Sequence[str] | None = None, suite: Path | None = None) -> int:
    """The command line; an example's `train_grpo.py` passes its own folder as `suite`."""
    settings = parse_args(argv, suite)
    started = time.perf_counter()
    try:
        trainer = train(settings)
    except RewardkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rewards = [log["reward"] for log in trainer.state.log_history if "reward" in log]
    print(
        f"done: {trainer.state.global_step} steps in {time.perf_counter() - started:.1f}s; "
        f"mean reward first step {rewards[0]:.3f}, last step {rewards[-1]:.3f}"
        if rewards
        else f"done: {trainer.state.global_step} steps, no reward logged"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
