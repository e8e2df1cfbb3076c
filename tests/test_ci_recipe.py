"""examples/ci/github-actions.yml: valid against GitHub's workflow schema (SchemaStore's, vendored in
tests/data/schemastore), and its shell steps run here: 4 shards replayed with the network blocked,
merged and gated."""

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


def test_the_shell_steps_run_here(tmp_path: Path) -> None:
    if shutil.which("unshare") is None or subprocess.run(["unshare", "--net", "true"], check=False).returncode:
        pytest.skip("unshare --net is not permitted here (the replay step blocks the network with it)")
    data = workflow()
    # A copy of the suite and its cassettes: the results land in this checkout, not the repository.
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
    steps = {s["name"]: s["run"] for job in data["jobs"].values() for s in job["steps"] if "run" in s}
    for shard in range(1, 5):
        done = run_step(steps["Replay cassettes offline (network blocked)"], tmp_path, env, shard)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert (tmp_path / "results" / f"rewardkit-shard-{shard}" / "junit.xml").is_file()
    merged = run_step(steps["Merge the shards and gate"], tmp_path, env)
    assert merged.returncode == 0, merged.stdout[-2000:] + merged.stderr[-2000:]
    assert "rows 1319  variants 5276" in merged.stdout
    assert "rewardkit gate: PASSED" in merged.stdout
    assert (tmp_path / "results" / "merged" / "report.html").is_file()
    summary = json.loads((tmp_path / "results" / "merged" / "summary.json").read_text(encoding="utf-8"))
    assert summary["summaries"][0]["rows"] == 1319 and summary["gate"]["met"] is True
