"""examples/ci/github-actions.yml: valid against GitHub's workflow schema (SchemaStore's, vendored in
tests/data/schemastore), and its shell steps run here: 4 shards replayed with the network blocked,
merged and gated; and the record job's step against the local fake server, whose cassettes replay."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from pytest_rewardkit.generation.client import FIREWORKS_BASE_URL
from pytest_rewardkit.testing import FakeChatServer

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "examples" / "ci" / "github-actions.yml"
SCHEMA = Path(__file__).parent / "data" / "schemastore" / "github-workflow.json"


class _WorkflowLoader(yaml.SafeLoader):
    """YAML as GitHub reads it: `on` is a key, not YAML 1.1's boolean."""


_WorkflowLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_WorkflowLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf"))


def workflow() -> dict[str, Any]:
    data = yaml.load(WORKFLOW.read_text(encoding="utf-8"), Loader=_WorkflowLoader)
    assert isinstance(data, dict)
    return data


def schema_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_the_workflow_is_valid_against_githubs_workflow_schema() -> None:
    assert schema_errors(workflow()) == []


def test_the_schema_check_catches_a_broken_workflow() -> None:
    broken = copy.deepcopy(workflow())
    del broken["jobs"]["eval"]["runs-on"]
    broken["jobs"]["report"]["timeout-minutes"] = "soon"
    assert len(schema_errors(broken)) >= 2


def test_the_recipe_replays_offline_shards_merges_gates_and_records_on_demand() -> None:
    data = workflow()
    jobs = data["jobs"]
    assert jobs["eval"]["strategy"]["matrix"]["shard"] == [1, 2, 3, 4]
    assert jobs["report"]["needs"] == "eval"
    replay = next(s["run"] for s in jobs["eval"]["steps"] if "unshare --net" in s.get("run", ""))
    assert "--record-mode=none" in replay and "--rk-shard" in replay
    # Parsed cassettes are kept per shard (each parses its own rows), keyed on the cassettes, and the
    # replay keeps pytest's cache on to use them.
    (cache,) = (s["with"] for s in jobs["eval"]["steps"] if s.get("uses", "").startswith("actions/cache@"))
    assert cache["path"] == ".pytest_cache/d/rewardkit-cassettes"
    assert "${{ matrix.shard }}" in cache["key"] and "hashFiles('cassettes/**')" in cache["key"]
    assert "no:cacheprovider" not in replay
    record = jobs["record"]
    assert "inputs.record" in record["if"]
    env = next(s["env"] for s in record["steps"] if "env" in s)
    assert env["FIREWORKS_API_KEY"] == "${{ secrets.FIREWORKS_API_KEY }}"
    uploads = [
        s["with"]["name"] for job in jobs.values() for s in job["steps"] if "upload-artifact" in s.get("uses", "")
    ]
    assert uploads == ["rewardkit-shard-${{ matrix.shard }}", "rewardkit-report", "rewardkit-cassettes"]


def run_step(script: str, cwd: Path, env: dict[str, str], shard: int | None = None) -> subprocess.CompletedProcess[str]:
    if shard is not None:
        script = script.replace("${{ matrix.shard }}", str(shard))
    assert "${{" not in script, script
    # GitHub runs `run:` steps with `bash -e {0}`.
    return subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def checkout(tmp_path: Path, data: dict[str, Any]) -> dict[str, str]:
    """A checkout to run steps in, with examples/math (the suite and its cassettes copied, so that
    results and recordings land here, not in the repository); returns the workflow's environment."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "--net", "true"], check=False).returncode:
        pytest.skip("unshare --net is not permitted here (the replay step blocks the network with it)")
    shutil.copytree(ROOT / "examples" / "math", tmp_path / "examples" / "math")
    shutil.copytree(ROOT / "cassettes" / "math", tmp_path / "cassettes" / "math")
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # This test runs as root, as CI does: sudo (absent here) only has to run its command.
    (bin_dir / "sudo").write_text('#!/bin/sh\n[ "$1" = -E ] && shift\nexec "$@"\n', encoding="utf-8")
    (bin_dir / "sudo").chmod(0o755)
    env = {**os.environ, **{k: str(v) for k, v in data["env"].items()}, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env.pop("PYTEST_ADDOPTS", None)
    return env


def test_the_shell_steps_run_here(tmp_path: Path) -> None:
    data = workflow()
    env = checkout(tmp_path, data)
    steps = {s["name"]: s["run"] for job in data["jobs"].values() for s in job["steps"] if "run" in s}
    for shard in range(1, 5):
        done = run_step(steps["Replay cassettes offline (network blocked)"], tmp_path, env, shard)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert (tmp_path / "results" / f"rewardkit-shard-{shard}" / "junit.xml").is_file()
    # What the cache step keeps for the next run: the parses of the cassettes the shards replayed.
    assert list((tmp_path / ".pytest_cache" / "d" / "rewardkit-cassettes").glob("*.pack"))
    merged = run_step(steps["Merge the shards and gate"], tmp_path, env)
    assert merged.returncode == 0, merged.stdout[-2000:] + merged.stderr[-2000:]
    assert "rows 1319  variants 5276" in merged.stdout
    assert "rewardkit gate: PASSED" in merged.stdout
    assert (tmp_path / "results" / "merged" / "report.html").is_file()
    summary = json.loads((tmp_path / "results" / "merged" / "summary.json").read_text(encoding="utf-8"))
    assert summary["summaries"][0]["rows"] == 1319 and summary["gate"]["met"] is True


RECORD_KEY = "fw-ci-recipe-secret-0123456789"


def test_the_record_step_records_from_the_endpoint_it_is_given_and_the_cassettes_replay_offline(
    tmp_path: Path, rk_fake_server: FakeChatServer
) -> None:
    data = workflow()
    env = checkout(tmp_path, data)
    # Eight rows of GSM8K, answered right by the fake endpoint except the last two, four answers each.
    dataset = tmp_path / "examples" / "math" / "dataset.jsonl"
    rows = [json.loads(line) for line in dataset.read_text(encoding="utf-8").splitlines()[:8]]
    dataset.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    answers = {row["messages"][0]["content"]: row["ground_truth"] for row in rows[:6]}

    def answer(request: dict[str, Any]) -> list[str]:
        question = request["messages"][-1]["content"]
        return [f"Step by step... so it is \\boxed{{{answers.get(question, 'no idea')}}}"]

    rk_fake_server.table = answer
    rk_fake_server.api_key = RECORD_KEY  # a request without the key from the step's secret gets 401

    record = next(s for s in data["jobs"]["record"]["steps"] if s.get("name") == "Record missing cassettes")
    # Every value the step takes from GitHub, as GitHub would give it: the secret, the input's default,
    # and the base URL (the repository variable's value; without one, Fireworks).
    assert record["env"] == {
        "FIREWORKS_API_KEY": "${{ secrets.FIREWORKS_API_KEY }}",
        "RECORD_MODEL": "${{ inputs.model }}",
        "RECORD_BASE_URL": f"${{{{ vars.REWARDKIT_BASE_URL || '{FIREWORKS_BASE_URL}' }}}}",
    }
    model = data["on"]["workflow_dispatch"]["inputs"]["model"]["default"]
    given = {"FIREWORKS_API_KEY": RECORD_KEY, "RECORD_MODEL": model, "RECORD_BASE_URL": rk_fake_server.base_url}
    recorded = run_step(record["run"], tmp_path, {**env, **given})
    assert recorded.returncode == 0, recorded.stdout[-2000:] + recorded.stderr[-2000:]
    assert len(rk_fake_server.requests) == 8  # one request per row, n=4 in it
    assert all(r.headers["Authorization"] == f"Bearer {RECORD_KEY}" for r in rk_fake_server.requests)
    cassettes = sorted((tmp_path / "cassettes" / "math" / model).glob("*.yaml"))
    assert [c.stem for c in cassettes] == [row["id"] for row in rows]
    recorded_summary = json.loads((tmp_path / "results" / "recorded" / "summary.json").read_text(encoding="utf-8"))
    assert recorded_summary["summaries"][0]["passed"] == 6

    # The eval and report jobs on the new cassettes: replayed in 4 shards with the network blocked
    # (the fake server is out of reach), merged and gated.
    steps = {s["name"]: s["run"] for job in data["jobs"].values() for s in job["steps"] if "run" in s}
    replay_env = {**env, "MODEL": model}
    for shard in range(1, 5):
        done = run_step(steps["Replay cassettes offline (network blocked)"], tmp_path, replay_env, shard)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    merged = run_step(steps["Merge the shards and gate"], tmp_path, replay_env)
    assert merged.returncode == 0, merged.stdout[-2000:] + merged.stderr[-2000:]
    summary = json.loads((tmp_path / "results" / "merged" / "summary.json").read_text(encoding="utf-8"))
    (replayed,) = summary["summaries"]
    assert (replayed["rows"], replayed["variants"], replayed["passed"], replayed["errored"]) == (8, 32, 6, 0)
    assert len(rk_fake_server.requests) == 8  # nothing more was asked of the endpoint

    # The key reached the endpoint, and no file the run wrote.
    written = [p for p in (tmp_path / "cassettes").rglob("*") if p.is_file()]
    written += [p for p in (tmp_path / "results").rglob("*") if p.is_file()]
    assert cassettes and all(RECORD_KEY.encode() not in p.read_bytes() for p in written)
