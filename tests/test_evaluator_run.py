"""`--rk-evaluator=fireworks-preview` on a pytest run: the scored rows previewed remotely (replayed
from the batch cassettes), serial and -n 2; a disagreement or an error fails the run naming the rows."""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pytest_rewardkit.__main__ import main
from pytest_rewardkit.testing import FakeChatServer

ROOT = Path(__file__).parent.parent
KEY = "fw-evaluator-run-test-key-0123456789"

REWARD = textwrap.dedent(
    """
    import os

    from pytest_rewardkit import EvaluateResult, reward_function


    @reward_function
    def here_only(messages, ground_truth=None, **kwargs):
        # 1 where RK_LOCAL_ONLY is set (the changed local reward), 0 in the evaluator's environment.
        return EvaluateResult(score=float(bool(os.environ.get("RK_LOCAL_ONLY"))), reason="env")
    """
)


@pytest.fixture(params=[False, True], ids=["serial", "xdist"])
def xdist(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def run(pytester: pytest.Pytester, xdist: bool, *args: str | Path) -> pytest.RunResult:
    common = ["-p", "no:cacheprovider", "--rk-evaluator=fireworks-preview", *map(str, args)]
    if xdist:
        return pytester.runpytest_subprocess("-n", "2", *common)
    return pytester.runpytest(*common)


def copy_math(pytester: pytest.Pytester, rows: int) -> Path:
    """examples/math's suite file and its first `rows` rows, under the pytester directory."""
    folder = pytester.path / "math"
    folder.mkdir()
    shutil.copy(ROOT / "examples" / "math" / "rewardkit.yaml", folder)
    lines = (ROOT / "examples" / "math" / "dataset.jsonl").read_text(encoding="utf-8").splitlines()[:rows]
    (folder / "dataset.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture
def math_suite(quiet_pytester: pytest.Pytester) -> Path:
    return copy_math(quiet_pytester, 30)


def test_examples_math_replays_from_the_committed_preview_cassettes_and_agrees(
    quiet_pytester: pytest.Pytester, math_suite: Path, xdist: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FIREWORKS_API_KEY", raising=False)
    output = quiet_pytester.path / "out"
    # One batch of 25 rows, as the committed cassettes hold them.
    result = run(quiet_pytester, xdist, "math", "--rk-limit", "25", "--rk-cassette-dir", ROOT / "cassettes",
                 "--rk-output", output)  # fmt: skip
    assert result.ret == 0, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines(["math [[]dataset[]] *: remote preview: 25 agree, 0 disagree, 0 errors"])
    summary = json.loads((output / "summary.json").read_text(encoding="utf-8"))
    assert summary["remote_preview"] == [
        {
            "suite": "math",
            "dataset": "math/dataset.jsonl",
            "model": "dataset",
            "agree": 25,
            "disagree": 0,
            "errors": 0,
            "rows": [],
            "problems": [],
        }
    ]


def test_rows_without_a_recorded_batch_are_errors_never_scores(
    quiet_pytester: pytest.Pytester, math_suite: Path, xdist: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FIREWORKS_API_KEY", raising=False)
    result = run(quiet_pytester, xdist, "math", "--rk-limit", "2", "--rk-cassette-dir", ROOT / "cassettes",
                 "--rk-output", "")  # fmt: skip
    assert result.ret == 1
    out = result.stdout.str()
    assert "2 passed" in out and "remote preview: 0 agree, 0 disagree, 2 errors" in out
    result.stdout.fnmatch_lines(["  gsm8k-test-0000, gsm8k-test-0001: ERROR: batch 0: no recorded request in *"])
    result.stdout.fnmatch_lines(["*remote preview failed*gsm8k-test-0000*"])


# GPT-3's published GSM8K solutions (cassettes/math/gpt3-gsm8k-solutions) for the first 50 rows, previewed
# against the fake server (which runs the packaged main.py): most are wrong, so the batches hold remote
# zeros as well as ones, and an evaluator that always answered 1.0 would disagree on 41 rows.
GPT3 = "gpt3-gsm8k-solutions"
GPT3_ROWS = 50
PREVIEW_BATCHES = sorted((ROOT / "cassettes" / "math" / "fireworks-preview").glob(f"{GPT3}-batch-*.yaml"))


def recorded_remote_scores(batches: list[Path]) -> list[float]:
    """The remote scores the batch cassettes hold, in the order the samples were sent (dataset order)."""
    scores = []
    for batch in batches:
        [interaction] = yaml.safe_load(batch.read_text(encoding="utf-8"))["interactions"]
        scores += [r["score"] for r in json.loads(interaction["response"]["body"]["string"])["results"]]
    return scores


def gpt3_run(pytester: pytest.Pytester, xdist: bool, cassettes: Path, output: Path) -> pytest.RunResult:
    copy_math(pytester, GPT3_ROWS)
    # The gate turns the run's verdict into the preview's: 9 of 50 rows pass the suite's threshold.
    return run(pytester, xdist, "math", "--rk-model", GPT3, "--rk-limit", str(GPT3_ROWS), "--rk-cassette-dir",
               cassettes, "--rk-output", output, "--rk-min-pass-rate", "0.15")  # fmt: skip


def test_graded_gpt3_responses_agree_remotely_on_failing_and_passing_rows(
    quiet_pytester: pytest.Pytester, xdist: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FIREWORKS_API_KEY", raising=False)
    assert [p.name for p in PREVIEW_BATCHES] == [f"{GPT3}-batch-0000.yaml", f"{GPT3}-batch-0001.yaml"]
    output = quiet_pytester.path / "out"
    result = gpt3_run(quiet_pytester, xdist, ROOT / "cassettes", output)
    assert result.ret == 0, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines([f"math [[]{GPT3}[]] *: remote preview: 50 agree, 0 disagree, 0 errors"])
    [preview] = json.loads((output / "summary.json").read_text(encoding="utf-8"))["remote_preview"]
    assert (preview["model"], preview["agree"], preview["rows"]) == (GPT3, GPT3_ROWS, [])
    results = [json.loads(line) for line in (output / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    local = {r["row_id"]: r["score"] for r in results}
    assert list(local) == [f"gsm8k-test-{i:04d}" for i in range(GPT3_ROWS)]
    remote = dict(zip(local, recorded_remote_scores(PREVIEW_BATCHES), strict=True))
    assert remote == local  # row by row, read from the cassettes, not only the run's count
    assert sorted(set(local.values())) == [0.0, 1.0]
    assert sum(score == 0.0 for score in local.values()) == 41 and sum(score == 1.0 for score in local.values()) == 9


def test_a_tampered_remote_score_is_a_disagreement_naming_the_row(
    quiet_pytester: pytest.Pytester, xdist: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("FIREWORKS_API_KEY", raising=False)
    cassettes = tmp_path / "cassettes"
    for i in range(GPT3_ROWS):
        name = f"gsm8k-test-{i:04d}.yaml"
        (cassettes / "math" / GPT3).mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "cassettes" / "math" / GPT3 / name, cassettes / "math" / GPT3 / name)
    (cassettes / "math" / "fireworks-preview").mkdir()
    for batch in PREVIEW_BATCHES:
        shutil.copy(batch, cassettes / "math" / "fireworks-preview")
    # gsm8k-test-0000 (GPT-3 answered 26, the answer is 18) scores 0 locally; the forged remote says 1.0.
    tampered = cassettes / "math" / "fireworks-preview" / PREVIEW_BATCHES[0].name
    cassette = yaml.safe_load(tampered.read_text(encoding="utf-8"))
    body = cassette["interactions"][0]["response"]["body"]
    answer = json.loads(body["string"])
    assert answer["results"][0]["score"] == 0.0
    answer["results"][0]["score"] = 1.0
    body["string"] = json.dumps(answer, indent=1)
    tampered.write_text(yaml.safe_dump(cassette, sort_keys=False), encoding="utf-8")
    result = gpt3_run(quiet_pytester, xdist, cassettes, quiet_pytester.path / "out")
    assert result.ret == 1, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines([f"math [[]{GPT3}[]] *: remote preview: 49 agree, 1 disagree, 0 errors"])
    result.stdout.fnmatch_lines(["  gsm8k-test-0000: DISAGREE: remote 1.0 != local 0.0"])
    result.stdout.fnmatch_lines([f"*remote preview failed*math [[]{GPT3}[]]: gsm8k-test-0000"])


def test_multi_turn_rollouts_preview_100_percent_from_the_committed_cassettes(
    quiet_pytester: pytest.Pytester, xdist: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FIREWORKS_API_KEY", raising=False)
    folder = quiet_pytester.path / "multi_turn"
    folder.mkdir()
    for name in ("rewardkit.yaml", "dataset.jsonl", "bfcl_environment.py", "functions.json"):
        shutil.copy(ROOT / "examples" / "multi_turn" / name, folder)
    output = quiet_pytester.path / "out"
    # Each row's rollout (BFCL's ground-truth calls) is sent whole with its initial_config; the
    # packaged main.py rebuilds the environment from the shipped module and replays the calls.
    result = run(quiet_pytester, xdist, "multi_turn", "--rk-model", "bfcl-ground-truth", "--rk-cassette-dir",
                 ROOT / "cassettes", "--rk-output", output)  # fmt: skip
    assert result.ret == 0, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines(
        ["multi_turn [[]bfcl-ground-truth[]] *: remote preview: 25 agree, 0 disagree, 0 errors"]
    )
    [preview] = json.loads((output / "summary.json").read_text(encoding="utf-8"))["remote_preview"]
    assert (preview["agree"], preview["disagree"], preview["errors"]) == (25, 0, 0)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("FIREWORKS_API_KEY", KEY)
    monkeypatch.setenv("FIREWORKS_ACCOUNT_ID", "my-account")
    fake = FakeChatServer(api_key=KEY)
    fake.evaluators.preview_timeout = 30
    with fake.running() as base_url:
        yield base_url.removesuffix("/v1")


def test_a_local_reward_changed_since_the_recording_disagrees_and_fails_naming_the_row(
    quiet_pytester: pytest.Pytester, server: str, xdist: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = quiet_pytester.path / "changed"
    folder.mkdir()
    (folder / "rk_changed_reward.py").write_text(REWARD, encoding="utf-8")
    config = {"name": "changed", "reward": {"name": "rk_changed_reward:here_only"}, "threshold": 0.5}
    (folder / "rewardkit.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    rows = [
        {"id": f"r{i}", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
        for i in range(2)
    ]
    (folder / "dataset.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cassettes = quiet_pytester.path / "cassettes"
    # Recorded while local and remote agree (0 and 0).
    preview = ["evaluator", "preview", str(folder), "--api-base", server, "--cassette-dir", str(cassettes)]
    assert main([*preview, "--record-mode", "new_episodes"]) == 0
    monkeypatch.delenv("FIREWORKS_API_KEY")  # the run replays: it needs no key and opens no socket
    monkeypatch.setenv("RK_LOCAL_ONLY", "1")
    result = run(quiet_pytester, xdist, "changed", "--rk-cassette-dir", cassettes, "--rk-output", "")
    assert result.ret == 1, result.stdout.str()[-3000:]
    out = result.stdout.str()
    assert "2 passed" in out and "remote preview: 0 agree, 2 disagree, 0 errors" in out
    result.stdout.fnmatch_lines(["  r0: DISAGREE: remote 0.0 != local 1.0", "  r1: DISAGREE: remote 0.0 != local 1.0"])
    result.stdout.fnmatch_lines(["*remote preview failed*changed*r0, r1*"])


def test_an_invalid_evaluator_is_a_usage_error(quiet_pytester: pytest.Pytester) -> None:
    result = quiet_pytester.runpytest("--rk-evaluator=fireworks")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--rk-evaluator: invalid choice: 'fireworks' (choose from 'fireworks-preview')*"])
