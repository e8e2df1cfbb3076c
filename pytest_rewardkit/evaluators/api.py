"""The Fireworks evaluator endpoints (preview, create, get, delete), through cassettes.

Every call goes through a `Tape`, the vcrpy-format cassette the chat client records into: replay
answers from the file (no socket), recording calls the gateway and saves the scrubbed exchange.
Errors are typed; none of them is ever turned into a score.
"""

from __future__ import annotations

import collections
import copy
import functools
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from pytest_rewardkit.auth import Credentials
from pytest_rewardkit.errors import RewardkitError
from pytest_rewardkit.generation.client import error_message
from pytest_rewardkit.recording import CassetteError, Interaction, RowCassette, match_key
from pytest_rewardkit.retry import RetryPolicy, retry_after, retryable_status

FIREWORKS_API_BASE = "https://api.fireworks.ai"
API_BASE_ENV = "FIREWORKS_API_BASE"
# Answers worth replaying: success, and the definite "no such evaluator" / "already exists" /
# "bad request" verdicts that --force decides on. Auth failures, rate limits and 5xx are transient.
RECORDED_STATUSES = frozenset({200, 400, 404, 409})
# The gateway's 409 is gRPC's ALREADY_EXISTS, a verdict --force acts on, not a conflict worth retrying.
DEFINITE_STATUSES = frozenset({409})
_ACCOUNT = re.compile(r"/accounts/[^/:]+")
EVALUATOR_ID = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


class EvaluatorAPIError(RewardkitError):
    """A call to the evaluator API failed; `status` is the HTTP status (None: no answer)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class EvaluatorAuthError(EvaluatorAPIError):
    """401/403: the key was rejected or lacks the permission."""


class EvaluatorNotFound(EvaluatorAPIError):
    """404: no evaluator with that id in the account."""


class EvaluatorExists(EvaluatorAPIError):
    """409: an evaluator with that id already exists."""


class EvaluatorServerError(EvaluatorAPIError):
    """5xx, 408, 429, a timeout or a dropped connection: retried (after the server's Retry-After,
    `retry_after`, when it gave one), then reported."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after


class ReplayMiss(EvaluatorAPIError):
    """Replay-only and the cassette has no answer for this request."""


# -- the spec ---------------------------------------------------------------------------------------


@functools.cache
def swagger() -> dict[str, Any]:
    """The gateway's published Swagger spec for these endpoints (copied into the package)."""
    text = resources.files("pytest_rewardkit.evaluators").joinpath("evaluators.swagger.yaml").read_text("utf-8")
    spec: dict[str, Any] = yaml.load(text, Loader=yaml.CSafeLoader)
    return spec


# Fields the client sends that the vendored spec does not declare, by definition. Each one is
# documented by Fireworks (issue 18) but missing from the published Swagger subset; anything else
# unknown is an error, so a misspelt field fails here rather than being silently ignored by the gateway.
SPEC_ADDITIONS: dict[str, dict[str, Any]] = {
    # "rollupSettings": {"skipRollup": true} makes the gateway report the criterion's own score
    # (multiMetrics) instead of a weighted rollup; gatewayRollupSettings predates it.
    "gatewayRollupSettings": {"skipRollup": {"type": "boolean"}},
}


@functools.cache
def strict_definitions() -> dict[str, Any]:
    """The spec's definitions with `additionalProperties: false` wherever properties are declared
    (and none is said about others), plus `SPEC_ADDITIONS`: unknown fields are errors at every level."""
    definitions = copy.deepcopy(swagger()["definitions"])
    for name, extra in SPEC_ADDITIONS.items():
        definitions[name]["properties"].update(copy.deepcopy(extra))

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("properties"), dict):
                node.setdefault("additionalProperties", False)
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    for definition in definitions.values():
        close(definition)
    return definitions


def schema_errors(definition: str, value: Any) -> list[str]:
    """Where `value` breaks the spec's definition `definition`, strictly (empty: it conforms).
    An unknown field is named by its own path (`evaluator.displayNmae: unknown field ...`)."""
    import jsonschema

    schema = {"$ref": f"#/definitions/{definition}", "definitions": strict_definitions()}
    validator = jsonschema.Draft4Validator(schema)
    problems = []
    for error in validator.iter_errors(value):
        path = [str(p) for p in error.absolute_path]
        if error.validator == "additionalProperties" and error.validator_value is False:
            known = error.schema.get("properties", {})
            for key in sorted(k for k in error.instance if k not in known):
                where = ".".join([*path, key])
                problems.append((where, f"{where}: unknown field (the spec declares {', '.join(sorted(known))})"))
        else:
            where = ".".join(path)
            problems.append((where, f"{where or '(body)'}: {error.message}"))
    return [message for _, message in sorted(problems)]


# -- cassettes --------------------------------------------------------------------------------------


def request_key(method: str, uri: str, body: dict[str, Any]) -> str:
    """Cassette matching ignores the account id, so committed cassettes replay for any account."""
    return match_key(method, _ACCOUNT.sub("/accounts/-", uri), body)


@dataclass
class Tape:
    """One cassette file and the record mode (none / once / new_episodes / all) it is used with.
    Successive identical requests replay successive recordings (a get before and after a create)."""

    path: Path
    record_mode: str = "none"
    cassette: RowCassette = field(init=False)
    _used: collections.Counter[str] = field(default_factory=collections.Counter, init=False)

    def __post_init__(self) -> None:
        self.cassette = RowCassette(self.path) if self.record_mode == "all" else RowCassette.load(self.path)

    @property
    def may_record(self) -> bool:
        mode = self.record_mode
        return mode in ("new_episodes", "all") or (mode == "once" and not self.cassette.exists)

    def replay(self, method: str, uri: str, body: dict[str, Any]) -> Interaction | None:
        key = request_key(method, uri, body)
        matches = [i for i in self.cassette.interactions if request_key(i.method, i.uri, i.request_body) == key]
        used = self._used[key]
        if used >= len(matches):
            return None
        self._used[key] += 1
        return matches[used]

    def record(self, exchange: Interaction, secrets: list[str]) -> None:
        self.cassette.append(exchange.scrubbed(secrets))
        self._used[request_key(exchange.method, exchange.uri, exchange.request_body)] += 1
        self.cassette.save(secrets)

    def miss(self, method: str, uri: str, body: dict[str, Any]) -> ReplayMiss:
        fix = "run with --record-mode=new_episodes (and credentials) to record it"
        if not self.cassette.exists:
            return ReplayMiss(f"no cassette {self.path} (record mode {self.record_mode}); {fix}")
        nearest = self.cassette.nearest(_ACCOUNT.sub("/accounts/-", uri), body)
        return ReplayMiss(
            f"no recorded request in {self.path} matches {method} {uri} (record mode {self.record_mode}); {fix}.\n"
            f"Nearest recorded request, as a diff:\n{nearest}"
        )


# -- the client -------------------------------------------------------------------------------------


@dataclass
class EvaluatorClient:
    """The four calls, for one account. `credentials` may be None for replay-only use."""

    session: aiohttp.ClientSession
    credentials: Credentials | None
    account_id: str
    api_base: str = FIREWORKS_API_BASE
    timeout: float = 300.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def url(self, suffix: str) -> str:
        return f"{self.api_base.rstrip('/')}/v1/accounts/{self.account_id}/evaluators{suffix}"

    async def preview(self, evaluator: dict[str, Any], samples: list[str], tape: Tape) -> dict[str, Any]:
        body = {"evaluator": evaluator, "sampleData": samples, "maxSamples": len(samples)}
        return await self.call("POST", self.url(":previewEvaluator"), body, tape)

    async def create(self, evaluator_id: str, evaluator: dict[str, Any], tape: Tape | None) -> dict[str, Any]:
        body = {"evaluator": evaluator, "evaluatorId": evaluator_id}
        return await self.call("POST", self.url(""), body, tape)

    async def get(self, evaluator_id: str, tape: Tape | None) -> dict[str, Any]:
        return await self.call("GET", self.url(f"/{evaluator_id}"), {}, tape)

    async def delete(self, evaluator_id: str, tape: Tape | None) -> dict[str, Any]:
        return await self.call("DELETE", self.url(f"/{evaluator_id}"), {}, tape)

    async def call(self, method: str, uri: str, body: dict[str, Any], tape: Tape | None) -> dict[str, Any]:
        """The answer's JSON body, or a typed error. With a tape, replayed when recorded."""
        if tape is not None:
            recorded = tape.replay(method, uri, body)
            if recorded is not None:
                return _verdict(recorded, f"{method} {uri} (replayed from {tape.path})")
            if not tape.may_record:
                raise tape.miss(method, uri, body)
        if self.credentials is None:
            raise EvaluatorAuthError(f"{method} {uri}: needs credentials; none were given")
        retrying = self.retry.retrying(EvaluatorServerError)
        try:
            async for attempt in retrying:
                with attempt:
                    exchange = await self._once(method, uri, body)
        except EvaluatorServerError as exc:
            why = self.retry.why_stopped(exc, retrying.statistics)
            raise EvaluatorServerError(f"{exc} ({why})", exc.status, exc.retry_after) from exc
        if tape is not None and exchange.status in RECORDED_STATUSES:
            try:
                tape.record(exchange, self.credentials.secrets)
            except CassetteError as exc:
                raise EvaluatorAPIError(str(exc)) from exc
        return _verdict(exchange, f"{method} {uri}")

    async def _once(self, method: str, uri: str, body: dict[str, Any]) -> Interaction:
        assert self.credentials is not None
        headers = {"Content-Type": "application/json", "Accept": "application/json", **self.credentials.headers()}
        timeout = aiohttp.ClientTimeout(total=self.timeout, sock_connect=10)
        data = json.dumps(body).encode() if method == "POST" else None
        try:
            async with self.session.request(method, uri, data=data, headers=headers, timeout=timeout) as response:
                raw = await response.read()
                status = response.status
                response_headers = {str(k): str(v) for k, v in response.headers.items()}
        except TimeoutError as exc:
            raise EvaluatorServerError(f"{method} {uri}: no answer within {self.timeout:g}s") from exc
        except aiohttp.ClientError as exc:
            raise EvaluatorServerError(f"{method} {uri}: {type(exc).__name__}: {exc}") from exc
        if status in (401, 403):
            raise EvaluatorAuthError(
                f"{method} {uri} answered {status} ({error_message(raw)}): the API key from "
                f"{self.credentials.api_key_source} was rejected for account {self.account_id!r}",
                status,
            )
        if retryable_status(status, DEFINITE_STATUSES):
            raise EvaluatorServerError(
                f"{method} {uri} answered {status}: {error_message(raw)}", status, retry_after(response_headers)
            )
        try:
            parsed = json.loads(raw) if raw.strip() else {}
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            if status < 300:
                raise EvaluatorAPIError(
                    f"{method} {uri} answered {status} with a body that is not a JSON object: {error_message(raw)}",
                    status,
                )
            parsed = {"message": error_message(raw)}
        return Interaction(method, uri, headers, body, status, response_headers, parsed)


def _verdict(exchange: Interaction, what: str) -> dict[str, Any]:
    status, body = exchange.status, exchange.response_body
    if status < 300:
        return body
    message = f"{what} answered {status}: {error_message(json.dumps(body).encode())}"
    if status == 404:
        raise EvaluatorNotFound(message, status)
    if status == 409:
        raise EvaluatorExists(message, status)
    raise EvaluatorAPIError(message, status)
