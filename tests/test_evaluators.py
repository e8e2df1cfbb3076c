"""Fireworks evaluators: packaging, preview against the fake server (which runs the packaged main.py
for real), create / get / delete with --force, cassettes, and every payload checked against the spec."""

from __future__ import annotations

import json
import random
import shutil
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_rewardkit.__main__ import main
from pytest_rewardkit.config import Options
from pytest_rewardkit.evaluators.api import schema_errors
from pytest_rewardkit.evaluators.packaging import PackagingError, package_settings
from pytest_rewardkit.retry import RetryPolicy
from pytest_rewardkit.suite import load_suite
from pytest_rewardkit.testing import FakeChatServer, Fault

KEY = "fw-evaluator-test-key-0123456789"
ACCOUNT = "my-account"

REWARDS = textwrap.dedent(
    """
    import os

    from pytest_rewardkit import EvaluateResult, MetricResult, reward_function


    @reward_function
    def exact(messages, ground_truth=None, bonus=0.0, **kwargs):
        ok = messages[-1].content.strip() == str(ground_truth)
        score = min(1.0, (1.0 if ok else 0.0) + bonus)
        return EvaluateResult(score=score, reason="exact", metrics={"exact": MetricResult(score=float(ok))})


    @reward_function
    def only_here(messages, ground_truth=None, **kwargs):
        # Scores 1 where RK_LOCAL_ONLY is set (this process), 0 in the evaluator's clean environment.
        return EvaluateResult(score=float(bool(os.environ.get("RK_LOCAL_ONLY"))), reason="env")


    @reward_function
    def fails_on(messages, ground_truth=None, **kwargs):
        if ground_truth == "boom":
            raise RuntimeError("grader exploded")
        return EvaluateResult(score=1.0, reason="ok")


    @reward_function
    def slow(messages, ground_truth=None, **kwargs):
        import time

        if not os.environ.get("RK_LOCAL_ONLY"):
            time.sleep(float(ground_truth))
        return EvaluateResult(score=1.0, reason="slept")
    """
)

Suite = Callable[..., Path]


@pytest.fixture
def suite(tmp_path: Path) -> Suite:
    """A suite folder with its own reward module beside the YAML (a fresh module name per test)."""
    module = f"rk_eval_{uuid.uuid4().hex[:8]}"

    def build(reward: str = "exact", rows: list[tuple[str, str]] | None = None, **config: Any) -> Path:
        folder = tmp_path / "suite"
        folder.mkdir(exist_ok=True)
        (folder / f"{module}.py").write_text(REWARDS, encoding="utf-8")
        name = reward if reward in ("math", "tool_call") else f"{module}:{reward}"
        settings = {"reward": {"name": name, "params": config.pop("params", {})}, **config}
        (folder / "rewardkit.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
        rows = rows if rows is not None else [("4", "4"), ("5", "5"), ("6", "7")]
        lines = [
            json.dumps(
                {
                    "id": f"r{i}",
                    "messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": answer}],
                    "ground_truth": truth,
                }
            )
            for i, (answer, truth) in enumerate(rows)
        ]
        (folder / "dataset.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        return folder

    return build


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeChatServer, str]]:
    monkeypatch.setenv("FIREWORKS_API_KEY", KEY)
    monkeypatch.setenv("FIREWORKS_ACCOUNT_ID", ACCOUNT)
    fake = FakeChatServer(api_key=KEY)
    fake.evaluators.preview_timeout = 30
    with fake.running() as base_url:
        yield fake, base_url.removesuffix("/v1")


def cli(*args: str | Path) -> int:
    return main([str(a) for a in args])


def preview_args(folder: Path, base: str, cassettes: Path, mode: str = "new_episodes", *extra: str) -> list[Any]:
    return [
        "evaluator",
        "preview",
        folder,
        "--api-base",
        base,
        "--cassette-dir",
        cassettes,
        "--record-mode",
        mode,
        *extra,
    ]


# -- packaging -----------------------------------------------------------------------------------


def test_package_is_byte_for_byte_reproducible_and_holds_main_module_and_pinned_requirements(
    suite: Suite, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = suite(params={"bonus": 0.25, "a": [1, 2]})
    (folder / "requirements.txt").write_text("# extra\nsympy>=1.12\n\n", encoding="utf-8")
    assert cli("evaluator", "package", folder, "--out", tmp_path / "one") == 0
    assert cli("evaluator", "package", folder / "rewardkit.yaml", "--out", tmp_path / "two") == 0
    one = {p.relative_to(tmp_path / "one"): p.read_bytes() for p in (tmp_path / "one").rglob("*") if p.is_file()}
    two = {p.relative_to(tmp_path / "two"): p.read_bytes() for p in (tmp_path / "two").rglob("*") if p.is_file()}
    assert one == two
    module = next(p for p in one if p.name.startswith("rk_eval_"))
    assert one[module] == REWARDS.encode()
    assert one[Path("requirements.txt")] == b"pytest-rewardkit==0.1.0\nsympy>=1.12\n"
    main_py = one[Path("main.py")].decode()
    assert "def evaluate(messages, ground_truth=None, tools=None, **kwargs):" in main_py
    assert '{"a": [1, 2], "bonus": 0.25}' in main_py
    evaluator = json.loads(one[Path("evaluator.json")])
    assert schema_errors("gatewayEvaluator", evaluator) == []
    [criterion] = evaluator["criteria"]
    assert criterion["type"] == "CODE_SNIPPETS" and criterion["codeSnippets"]["language"] == "python"
    assert sorted(criterion["codeSnippets"]["fileContents"]) == sorted(["main.py", module.name])


def test_packaged_main_scores_like_the_plugin_with_row_fields_winning_over_params(suite: Suite, tmp_path: Path) -> None:
    folder = suite(params={"bonus": 0.5})
    settings, _ = load_suite(folder, Options())
    package_settings(settings).write(tmp_path / "pkg")
    namespace: dict[str, Any] = {"__file__": str(tmp_path / "pkg" / "main.py")}
    exec(compile((tmp_path / "pkg" / "main.py").read_text(), "main.py", "exec"), namespace)
    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "4"}]
    assert namespace["evaluate"](messages, ground_truth="9")["score"] == 0.5
    assert namespace["evaluate"](messages, ground_truth="9", bonus=0.0)["score"] == 0.0


def test_a_reward_that_cannot_be_packaged_is_a_usage_error_naming_the_file(
    suite: Suite, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = suite()
    (folder / "rewardkit.yaml").write_text("reward: no_such_module:fn\n", encoding="utf-8")
    assert cli("evaluator", "package", folder, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "rewardkit.yaml" in err and "no_such_module" in err
    settings, _ = load_suite(suite(reward="math"), Options())
    nested = settings.model_copy(update={"reward": settings.reward.model_copy(update={"name": "json.decoder:f"})})
    with pytest.raises(PackagingError):
        package_settings(nested)


# -- preview -------------------------------------------------------------------------------------


def test_preview_records_then_replays_offline_row_by_row(
    suite: Suite, server: tuple[FakeChatServer, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, base = server
    folder = suite(rows=[(str(i), str(i)) for i in range(7)])
    cassettes = tmp_path / "cassettes"
    assert cli(*preview_args(folder, base, cassettes, "new_episodes", "--batch-size", "3", "-v")) == 0
    out = capsys.readouterr().out
    assert "suite: 7/7 rows agree (100.0%), 0 disagree, 0 errors" in out and "r6: agree (1)" in out
    previews = [r for r in fake.requests if r.path.endswith(":previewEvaluator")]
    assert [len(r.json["sampleData"]) for r in previews] == [3, 3, 1]
    assert all(r.path == f"/v1/accounts/{ACCOUNT}/evaluators:previewEvaluator" for r in previews)
    for request in previews:
        assert schema_errors("GatewayPreviewEvaluatorBody", request.json) == []
        assert request.json["maxSamples"] == len(request.json["sampleData"])
    sample = json.loads(previews[0].json["sampleData"][0])
    assert sample == {
        "messages": [{"role": "user", "content": "q0"}, {"role": "assistant", "content": "0"}],
        "ground_truth": "0",
    }
    files = sorted(p.name for p in (cassettes / "suite" / "fireworks-preview").iterdir())
    assert files == ["batch-0000.yaml", "batch-0001.yaml", "batch-0002.yaml"]
    assert not any(KEY in p.read_text() for p in (cassettes / "suite" / "fireworks-preview").iterdir())

    fake.stop()  # replay opens no socket: the server is gone
    assert cli(*preview_args(folder, "http://127.0.0.1:9", cassettes, "none", "--batch-size", "3")) == 0
    assert "7/7 rows agree" in capsys.readouterr().out


def test_a_remote_score_that_differs_from_the_local_one_is_a_disagreement(
    suite: Suite,
    server: tuple[FakeChatServer, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RK_LOCAL_ONLY", "1")
    folder = suite(reward="only_here", rows=[("1", "1")])
    assert cli(*preview_args(folder, server[1], tmp_path / "c")) == 1
    out = capsys.readouterr().out
    assert "r0: DISAGREE: remote 0.0 != local 1.0" in out and "0 rows agree" not in out
    assert "0/1 rows agree (0.0%), 1 disagree, 0 errors" in out


def test_a_sample_that_fails_remotely_is_an_error_never_a_score(
    suite: Suite, server: tuple[FakeChatServer, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = suite(reward="fails_on", rows=[("1", "1"), ("2", "boom")])
    assert cli(*preview_args(folder, server[1], tmp_path / "c")) == 1
    out = capsys.readouterr().out
    assert "1/2 rows agree" in out and "1 errors" in out
    assert "r1: ERROR: local: reward 'fails_on' raised RuntimeError: grader exploded" in out
    assert "remote evaluation failed" in out and "grader exploded" in out.split("r1: ERROR:")[1]


@pytest.mark.parametrize(
    ("faults", "expected"),
    [
        ([Fault.status(401)], "answered 401"),
        ([Fault.status(400, body={"code": 3, "message": "bad evaluator"})], "answered 400: bad evaluator"),
        ([Fault.status(503)] * RetryPolicy().max_attempts, "answered 503"),
        ([Fault.status(200, body={"results": [], "totalSamples": 0})], "preview answered 0 results for 3 samples"),
        (
            [Fault.status(200, body={"results": [{"success": True}] * 3})],
            "remote result has no numeric score",
        ),
    ],
    ids=["401", "400", "5xx-after-retries", "wrong-count", "no-score"],
)
def test_api_errors_are_reported_once_naming_the_rows_and_fail_the_preview(
    suite: Suite,
    server: tuple[FakeChatServer, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    faults: list[Fault],
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: low)  # backoff waits of 0
    fake, base = server
    fake.script(*faults)
    assert cli(*preview_args(suite(), base, tmp_path / "c")) == 1
    out = capsys.readouterr().out
    # Rows that failed alike share one line naming them: one error, not one per row.
    assert out.count(expected) == 1 and "r0, r1, r2: ERROR: " in out
    assert "0/3 rows agree" in out and "3 errors" in out
    if "401" in expected or "503" in expected:  # transient answers are never recorded
        assert not list((tmp_path / "c").rglob("*.yaml"))


def test_a_preview_over_the_time_limit_is_an_error(
    suite: Suite,
    server: tuple[FakeChatServer, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: low)  # backoff waits of 0
    monkeypatch.setenv("RK_LOCAL_ONLY", "1")  # the reward sleeps only on the remote side
    fake, base = server
    fake.evaluators.preview_timeout = 0.5
    assert cli(*preview_args(suite(reward="slow", rows=[("x", "30")]), base, tmp_path / "c")) == 1
    out = capsys.readouterr().out
    assert "r0: ERROR:" in out and "did not finish within 0.5s" in out


def test_replay_without_a_cassette_names_it_and_the_fix(
    suite: Suite, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FIREWORKS_API_KEY", raising=False)
    assert cli(*preview_args(suite(), "http://127.0.0.1:9", tmp_path / "c", "none")) == 1
    out = capsys.readouterr().out
    assert "no cassette" in out and "batch-0000.yaml" in out and "--record-mode=new_episodes" in out


def test_recording_without_credentials_is_a_usage_error_naming_every_place(
    suite: Suite, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FIREWORKS_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cli(*preview_args(suite(), "http://127.0.0.1:9", tmp_path / "c", "new_episodes")) == 2
    err = capsys.readouterr().err
    assert "FIREWORKS_API_KEY" in err and str(tmp_path / ".fireworks" / "auth.ini") in err


# -- create / get / delete -----------------------------------------------------------------------


def test_create_get_delete_with_force_are_idempotent_and_replay_from_their_cassettes(
    suite: Suite, server: tuple[FakeChatServer, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, base = server
    folder = suite()
    steps: list[tuple[Any, ...]] = [
        ("delete", "my-eval"),  # 404 without --force
        ("delete", "my-eval", "--force"),  # nothing to delete: fine
        ("create", folder, "--id", "my-eval"),
        ("create", folder, "--id", "my-eval"),  # 409 without --force
        ("create", folder, "--id", "my-eval", "--force"),  # identical: left as it is
        ("get", "my-eval"),
        ("delete", "my-eval"),
    ]

    def run(number: int, mode: str) -> tuple[int, str]:
        # A cassette records one session; each command is its own session here.
        tape = tmp_path / f"step-{number}.yaml"
        status = cli("evaluator", *steps[number], "--api-base", base, "--cassette", tape, "--record-mode", mode)
        captured = capsys.readouterr()
        return status, captured.out + captured.err

    live = [run(number, "new_episodes") for number in range(len(steps))]
    assert [status for status, _ in live] == [1, 0, 0, 1, 0, 0, 0]
    assert "answered 404" in live[0][1] and "does not exist: nothing to delete" in live[1][1]
    assert f"created evaluator accounts/{ACCOUNT}/evaluators/my-eval" in live[2][1]
    assert "answered 409" in live[3][1] and "pass --force" in live[3][1]
    assert "is up to date" in live[4][1]
    assert json.loads(live[5][1])["state"] == "ACTIVE"
    assert fake.evaluators.evaluators == {}
    for request in fake.requests:
        if request.method == "POST":
            assert schema_errors("GatewayCreateEvaluatorBody", request.json) == []
    assert not any(KEY in p.read_text() for p in tmp_path.glob("step-*.yaml"))

    fake.stop()
    replayed = [run(number, "none") for number in range(len(steps))]
    assert [status for status, _ in replayed] == [status for status, _ in live]
    assert [
        out.replace(" (replayed from " + str(tmp_path / f"step-{n}.yaml") + ")", "")
        for n, (_, out) in enumerate(replayed)
    ] == [out for _, out in live]


def test_create_with_force_replaces_a_changed_evaluator(
    suite: Suite, server: tuple[FakeChatServer, str], capsys: pytest.CaptureFixture[str]
) -> None:
    fake, base = server
    folder = suite()
    assert cli("evaluator", "create", folder, "--id", "e1", "--api-base", base) == 0
    (folder / "rewardkit.yaml").write_text(
        (folder / "rewardkit.yaml").read_text().replace("params: {}", "params: {bonus: 0.5}")
    )
    assert cli("evaluator", "create", folder, "--id", "e1", "--api-base", base, "--force") == 0
    assert "deleted the outdated evaluator e1" in capsys.readouterr().out
    stored = fake.evaluators.evaluators[(ACCOUNT, "e1")]
    assert '"bonus": 0.5' in stored["criteria"][0]["codeSnippets"]["fileContents"]["main.py"]


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (("get", "Bad_ID"), 2, "use lowercase letters"),
        (("get", "missing"), 1, "answered 404"),
    ],
)
def test_get_errors(
    server: tuple[FakeChatServer, str],
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    status: int,
    message: str,
) -> None:
    assert cli("evaluator", *args, "--api-base", server[1]) == status
    assert message in capsys.readouterr().err


def test_the_fake_server_rejects_payloads_that_break_the_spec(server: tuple[FakeChatServer, str]) -> None:
    import urllib.request

    base = server[1]
    request = urllib.request.Request(
        f"{base}/v1/accounts/a/evaluators:previewEvaluator",
        data=json.dumps({"evaluator": {"criteria": "nope"}, "sampleData": [1]}).encode(),
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    body = json.loads(info.value.read())
    assert info.value.code == 400 and "criteria" in body["message"] and "sampleData.0" in body["message"]


# -- the spec, strictly ----------------------------------------------------------------------------


def client_payloads() -> dict[str, dict[str, Any]]:
    """The preview and create bodies the client sends for examples/math, as it sends them."""
    import asyncio

    from pytest_rewardkit.evaluators.api import EvaluatorClient

    settings, _ = load_suite(Path(__file__).parent.parent / "examples" / "math", Options())
    evaluator = package_settings(settings).evaluator()
    sent: dict[str, dict[str, Any]] = {}

    async def capture(method: str, uri: str, body: dict[str, Any], tape: Any) -> dict[str, Any]:
        sent["preview" if uri.endswith(":previewEvaluator") else "create"] = body
        return {}

    client = EvaluatorClient(None, None, ACCOUNT)  # type: ignore[arg-type]  # no call reaches a session
    client.call = capture  # type: ignore[method-assign]
    samples = [json.dumps({"messages": [{"role": "user", "content": "q"}], "ground_truth": "1"})]
    asyncio.run(client.preview(evaluator, samples, None))  # type: ignore[arg-type]
    asyncio.run(client.create("math", evaluator, None))
    return sent


def test_the_client_payloads_pass_the_strict_spec_and_pin_the_documented_fields() -> None:
    sent = client_payloads()
    assert schema_errors("GatewayPreviewEvaluatorBody", sent["preview"]) == []
    assert schema_errors("GatewayCreateEvaluatorBody", sent["create"]) == []
    assert sorted(sent["preview"]) == ["evaluator", "maxSamples", "sampleData"]
    assert sent["preview"]["maxSamples"] == 1 and sent["create"]["evaluatorId"] == "math"
    for body in sent.values():
        evaluator = body["evaluator"]
        assert evaluator["displayName"] == "math (math)"
        assert evaluator["multiMetrics"] is True
        assert evaluator["rollupSettings"] == {"skipRollup": True}
        [criterion] = evaluator["criteria"]
        assert criterion["type"] == "CODE_SNIPPETS" and "main.py" in criterion["codeSnippets"]["fileContents"]


@pytest.mark.parametrize(
    ("path", "misspelt"),
    [
        (["evaluator", "displayName"], "displayNmae"),
        (["evaluator", "multiMetrics"], "multiMetric"),
        (["maxSamples"], "maxSample"),
        (["evaluator", "criteria", 0, "codeSnippets"], "codeSnippet"),
        (["evaluator", "rollupSettings", "skipRollup"], "skipRolup"),  # the allow-list is that one name
    ],
)
def test_a_misspelt_field_is_rejected_naming_its_path(path: list[str | int], misspelt: str) -> None:
    for definition, which in (("GatewayPreviewEvaluatorBody", "preview"), ("GatewayCreateEvaluatorBody", "create")):
        body = client_payloads()[which]
        if path == ["maxSamples"] and which == "create":
            continue  # create has no maxSamples
        parent: Any = body
        for step in path[:-1]:
            parent = parent[step]
        parent[misspelt] = parent.pop(path[-1])
        where = ".".join(str(p) for p in [*path[:-1], misspelt])
        [problem] = schema_errors(definition, body)
        assert problem.startswith(f"{where}: unknown field (the spec declares ")
        assert str(path[-1]) in problem  # the right name is among those offered


def test_the_strict_copy_leaves_open_maps_open_and_the_vendored_spec_untouched() -> None:
    from pytest_rewardkit.evaluators.api import strict_definitions, swagger

    files = {"main.py": "x", "helpers/util.py": "y"}  # fileContents is a map: any file name is allowed
    criterion = {"type": "CODE_SNIPPETS", "codeSnippets": {"language": "python", "fileContents": files}}
    assert schema_errors("gatewayCriterion", criterion) == []
    assert "additionalProperties" not in swagger()["definitions"]["gatewayEvaluator"]
    assert "skipRollup" not in swagger()["definitions"]["gatewayRollupSettings"]["properties"]
    assert strict_definitions()["gatewayEvaluator"]["additionalProperties"] is False


def test_the_fake_server_rejects_a_misspelt_field_naming_its_path(server: tuple[FakeChatServer, str]) -> None:
    import urllib.request

    body = client_payloads()["preview"]
    body["evaluator"]["displayNmae"] = body["evaluator"].pop("displayName")
    request = urllib.request.Request(
        f"{server[1]}/v1/accounts/a/evaluators:previewEvaluator",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 400
    assert "evaluator.displayNmae: unknown field" in json.loads(info.value.read())["message"]


# -- the committed cassettes ----------------------------------------------------------------------

EXAMPLES = sorted(p.parent.name for p in (Path(__file__).parent.parent / "examples").glob("*/rewardkit.yaml"))
# Their rows hold no responses: they are previewed with recorded rollouts, by a pytest run with
# --rk-model (tests/test_evaluator_run.py), not by the CLI.
ROLLOUT_EXAMPLES = ["multi_turn"]


def test_the_cli_sends_a_suite_with_an_environment_to_a_pytest_run_with_a_model(
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = Path(__file__).parent.parent / "examples" / "multi_turn"
    assert cli("evaluator", "preview", folder) == 2
    err = capsys.readouterr().err
    assert "previewed with a model's rollouts" in err
    assert f"pytest {folder} --rk-model ALIAS --rk-evaluator=fireworks-preview" in err


def test_a_suite_with_an_environment_ships_its_module_and_tools_file(tmp_path: Path) -> None:
    root = Path(__file__).parent.parent / "examples" / "multi_turn"
    settings, _ = load_suite(root, Options())
    package = package_settings(settings)
    assert sorted(package.files) == ["bfcl_environment.py", "functions.json", "main.py"]
    assert package.files["bfcl_environment.py"] == (root / "bfcl_environment.py").read_text(encoding="utf-8")
    assert package.files["functions.json"] == (root / "functions.json").read_text(encoding="utf-8")
    assert schema_errors("gatewayEvaluator", package.evaluator()) == []
    # main.py builds the environment itself: a rollout replayed in it is judged, right or wrong.
    package.write(tmp_path / "pkg")
    namespace: dict[str, Any] = {"__file__": str(tmp_path / "pkg" / "main.py")}
    exec(compile((tmp_path / "pkg" / "main.py").read_text(), "main.py", "exec"), namespace)
    row = json.loads((root / "dataset.jsonl").read_text(encoding="utf-8").splitlines()[0])
    fields = {k: row[k] for k in ("initial_config", "excluded_function")}
    call = {"id": "c0", "type": "function", "function": {"name": "ls", "arguments": '{"a": true}'}}
    played = [
        {"role": "user", "content": row["turns"][0][0]["content"]},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c0", "content": "forged"},
        {"role": "assistant", "content": "Done."},
    ]
    result = namespace["evaluate"](played, ground_truth=row["ground_truth"][:1], **fields)
    assert result["score"] == 1.0
    call["function"] = {"name": "cd", "arguments": '{"folder": "workspace"}'}  # another state: a 0
    result = namespace["evaluate"](played, ground_truth=row["ground_truth"][:1], **fields)
    assert result["score"] == 0.0
    with pytest.raises(RuntimeError, match="environment 'other:Env' is not packaged"):
        namespace["evaluate"](played, ground_truth=row["ground_truth"][:1], environment="other:Env", **fields)


@pytest.mark.parametrize("example", [e for e in EXAMPLES if e not in ROLLOUT_EXAMPLES])
def test_every_example_previews_100_percent_in_replay(
    example: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FIREWORKS_API_KEY", raising=False)
    root = Path(__file__).parent.parent
    status = cli("evaluator", "preview", root / "examples" / example, "--cassette-dir", root / "cassettes")
    out = capsys.readouterr().out
    assert status == 0, out[-2000:]
    assert "rows agree (100.0%), 0 disagree, 0 errors" in out


def test_a_broken_batch_cassette_is_one_error_naming_its_file_line_and_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FIREWORKS_API_KEY", raising=False)
    root = Path(__file__).parent.parent
    shutil.copytree(root / "cassettes" / "math" / "fireworks-preview", tmp_path / "math" / "fireworks-preview")
    broken = tmp_path / "math" / "fireworks-preview" / "batch-0001.yaml"
    whole = broken.read_text(encoding="utf-8")
    cut = whole[: whole.index('"sampleData"') + len('"sampleDa')]  # mid-key, inside the request body
    broken.write_text(cut, encoding="utf-8")
    status = cli("evaluator", "preview", root / "examples" / "math", "--cassette-dir", tmp_path, "--limit", "50")
    out = capsys.readouterr().out
    assert status == 1
    (error,) = [line for line in out.splitlines() if "ERROR" in line]
    rows = ", ".join(f"gsm8k-test-{i:04d}" for i in range(25, 50))
    assert error.startswith(f"{rows}: ERROR: batch 1: {broken}:{len(cut.splitlines())}: truncated cassette")
    assert f"git checkout -- {broken}" in error
    assert "math: 25/50 rows agree (50.0%), 0 disagree, 25 errors" in out
    assert broken.read_text(encoding="utf-8") == cut
