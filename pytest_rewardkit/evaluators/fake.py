"""The Fireworks evaluator endpoints on the local fake server: create / get / delete / preview.

Requests are validated against the gateway's Swagger definitions (400 naming the field otherwise);
preview really runs the submitted `main.py` over the samples, in a child process with a time limit
and no inherited secrets, so a preview that agrees with local scoring proves the package works.
The server's scripted faults (401, 5xx, timeouts, ...) apply to these routes as to chat.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from pytest_rewardkit.evaluators.api import EVALUATOR_ID, schema_errors

CREATE_TIME = "2023-11-14T22:13:20Z"  # fixed, so recordings are byte-identical
# What a child process may see of the environment: no keys, no tokens.
CHILD_ENV = ("PATH", "LANG", "LC_ALL", "TMPDIR", "HF_HUB_OFFLINE", "PYTHONPATH", "VIRTUAL_ENV")

Answer = Callable[[web.Request, Any], Awaitable[web.StreamResponse]]


def gateway_error(status: int, message: str) -> web.Response:
    """The gateway's error shape (gRPC status JSON)."""
    codes = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6}
    return web.json_response({"code": codes.get(status, 13), "message": message, "details": []}, status=status)


@dataclass
class FakeEvaluators:
    """Evaluators kept in memory per account. `preview_timeout` bounds one preview's child process."""

    preview_timeout: float = 120.0
    evaluators: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def routes(self) -> list[tuple[str, str, Answer]]:
        base = "/v1/accounts/{account_id}/evaluators"
        return [
            ("POST", base + ":previewEvaluator", self.preview),
            ("POST", base, self.create),
            ("GET", base + "/{evaluator_id}", self.get),
            ("DELETE", base + "/{evaluator_id}", self.delete),
        ]

    async def create(self, request: web.Request, body: Any) -> web.StreamResponse:
        problem = _invalid("GatewayCreateEvaluatorBody", body)
        if problem:
            return problem
        account, evaluator_id = request.match_info["account_id"], body.get("evaluatorId")
        if not isinstance(evaluator_id, str) or not EVALUATOR_ID.match(evaluator_id):
            return gateway_error(400, f"evaluatorId {evaluator_id!r} must match {EVALUATOR_ID.pattern}")
        if (account, evaluator_id) in self.evaluators:
            return gateway_error(409, f"evaluator accounts/{account}/evaluators/{evaluator_id} already exists")
        stored = {
            **body["evaluator"],
            "name": f"accounts/{account}/evaluators/{evaluator_id}",
            "createTime": CREATE_TIME,
            "updateTime": CREATE_TIME,
            "createdBy": "fake@127.0.0.1",
            "state": "ACTIVE",
        }
        self.evaluators[(account, evaluator_id)] = stored
        return web.json_response(stored)

    async def get(self, request: web.Request, body: Any) -> web.StreamResponse:
        key = (request.match_info["account_id"], request.match_info["evaluator_id"])
        if key not in self.evaluators:
            return gateway_error(404, f"evaluator accounts/{key[0]}/evaluators/{key[1]} not found")
        return web.json_response(self.evaluators[key])

    async def delete(self, request: web.Request, body: Any) -> web.StreamResponse:
        key = (request.match_info["account_id"], request.match_info["evaluator_id"])
        if self.evaluators.pop(key, None) is None:
            return gateway_error(404, f"evaluator accounts/{key[0]}/evaluators/{key[1]} not found")
        return web.json_response({})

    async def preview(self, request: web.Request, body: Any) -> web.StreamResponse:
        problem = _invalid("GatewayPreviewEvaluatorBody", body)
        if problem:
            return problem
        evaluator = body["evaluator"]
        files = _main_files(evaluator)
        if isinstance(files, web.Response):
            return files
        samples = body["sampleData"][: body.get("maxSamples", 10)]
        started = time.monotonic()
        results = await self.run(files, samples)
        if isinstance(results, web.Response):
            return results
        return web.json_response(
            {
                "results": results,
                "totalSamples": len(results),
                "totalRuntimeMs": str(int((time.monotonic() - started) * 1000)),
            }
        )

    async def run(self, files: dict[str, str], samples: list[str]) -> list[dict[str, Any]] | web.Response:
        """The samples through main.py in a child process with a time limit."""
        with tempfile.TemporaryDirectory(prefix="rk-fake-evaluator-") as folder:
            for name, text in files.items():
                target = Path(folder) / name
                if not target.resolve().is_relative_to(Path(folder).resolve()):
                    return gateway_error(400, f"fileContents: {name!r} points outside the evaluator")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
            env = {k: v for k, v in os.environ.items() if k in CHILD_ENV}
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "pytest_rewardkit.evaluators.snippet",
                folder,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=folder,
                env={**env, "HOME": folder},
            )
            try:
                out, err = await asyncio.wait_for(child.communicate(json.dumps(samples).encode()), self.preview_timeout)
            except TimeoutError:
                child.kill()
                await child.wait()
                return gateway_error(504, f"preview did not finish within {self.preview_timeout:g}s")
        try:
            answer = json.loads(out)
        except ValueError:
            tail = err.decode("utf-8", "replace")[-500:]
            return gateway_error(500, f"evaluator process exited {child.returncode}: {tail}")
        if isinstance(answer, dict):
            return gateway_error(400, str(answer.get("error")))
        return list(answer)


def _invalid(definition: str, body: Any) -> web.Response | None:
    if not isinstance(body, dict):
        return gateway_error(400, "the request body is not a JSON object")
    problems = schema_errors(definition, body)
    return gateway_error(400, f"invalid {definition}: " + "; ".join(problems[:5])) if problems else None


def _main_files(evaluator: dict[str, Any]) -> dict[str, str] | web.Response:
    criteria = [c for c in evaluator.get("criteria", []) if c.get("type") == "CODE_SNIPPETS"]
    if len(criteria) != 1:
        return gateway_error(400, f"evaluator.criteria: expected one CODE_SNIPPETS criterion, got {len(criteria)}")
    snippets = criteria[0].get("codeSnippets") or {}
    files = snippets.get("fileContents") or {}
    if snippets.get("language") != "python" or "main.py" not in files:
        return gateway_error(400, "evaluator.criteria[0].codeSnippets: needs language python and a main.py")
    return dict(files)
