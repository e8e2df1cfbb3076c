"""A local fake of the OpenAI/Fireworks chat-completions endpoint, for tests, benchmarks and demo recordings.

It binds to 127.0.0.1 only, answers from a table (or echoes), and can be scripted to fail the way real endpoints
fail (rate limits, server errors, slow answers, HTML error pages, dropped connections, malformed JSON). With
`gzip=True` it gzips every answer to a client that accepts gzip, as many real servers and proxies do.

    server = FakeChatServer(table={"2+2?": ["4", "5"]}, latency=0.2)
    with server.running() as base_url:   # or: async with server as base_url
        ...                              # POST {base_url}/chat/completions

Command line: ``python -m pytest_rewardkit.testing --table FILE.jsonl --latency 0.2 --port 0`` prints the base
URL on one line and serves until SIGINT/SIGTERM; FILE rows are ``{"prompt": ..., "responses": [...]}``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import functools
import hashlib
import json
import signal
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pytest_rewardkit.errors import dotted, validation_problems
from pytest_rewardkit.evaluators.fake import Answer, FakeEvaluators
from pytest_rewardkit.loop_thread import LoopThread
from pytest_rewardkit.models import content_text

# `main` stays reachable as `python -m pytest_rewardkit.testing`; the fixture is `rk_fake_server`.
__all__ = ["FakeChatServer", "Fault", "RecordedRequest", "TableRow", "read_table"]

Candidate = str | dict[str, Any]
Table = Mapping[str, Sequence[Candidate]] | Callable[[dict[str, Any]], Sequence[Candidate]]

HOST = "127.0.0.1"
CHAT_PATHS = ("/v1/chat/completions", "/inference/v1/chat/completions")
# A fixed `created` and ids derived from the exchange make two recordings of the same run byte-identical
# (sequential or under xdist), so cassette diffs show only real changes.
CREATED = 1_700_000_000
# Handlers still sleeping in a scripted timeout must not hold up stop().
SHUTDOWN_TIMEOUT = 0.1

_ERROR_TYPES = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", "permission_denied"),
    404: ("invalid_request_error", "not_found"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour, consumed by the next request the server receives. Build with the class methods."""

    kind: Literal["status", "timeout", "garbage", "disconnect", "bad_json_shape"]
    status_code: int = 200
    retry_after: float | None = None
    body: dict[str, Any] | str | bytes | None = None
    seconds: float = 0.0

    @classmethod
    def status(cls, code: int, retry_after: float | None = None, body: dict[str, Any] | str | None = None) -> Fault:
        """Answer `code` with an OpenAI-style JSON error (or `body`: a dict as JSON, a str as text/plain)."""
        return cls("status", status_code=code, retry_after=retry_after, body=body)

    @classmethod
    def timeout(cls, seconds: float) -> Fault:
        """Sleep `seconds` before answering normally (long enough to trip a client's read timeout)."""
        return cls("timeout", seconds=seconds)

    @classmethod
    def garbage(cls, body: bytes = b"<html><body>502 Bad Gateway</body></html>") -> Fault:
        """Answer 200 with a non-JSON `text/html` body, like a proxy error page."""
        return cls("garbage", body=body)

    @classmethod
    def disconnect(cls) -> Fault:
        """Close the connection without sending any response."""
        return cls("disconnect")

    @classmethod
    def bad_json_shape(cls) -> Fault:
        """Answer 200 with valid JSON that lacks `choices`."""
        return cls("bad_json_shape")


@dataclass(frozen=True)
class RecordedRequest:
    """A request as the server received it; `json` is None when the body was not JSON."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any


class _ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    role: Literal["system", "user", "assistant", "tool", "developer", "function"]
    content: str | list[dict[str, Any]] | None = None


class _ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    model: str = Field(min_length=1)
    messages: list[_ChatMessage] = Field(min_length=1)
    n: int = Field(default=1, ge=1, le=128)
    # Answers are whole JSON bodies; a client asking for server-sent events must learn that here, not by choking.
    stream: Literal[False] = False


class TableRow(BaseModel):
    """One line of a `--table` JSONL file."""

    model_config = ConfigDict(extra="forbid")

    prompt: str
    responses: list[str | dict[str, Any]] = Field(min_length=1)


@dataclass(eq=False)
class FakeChatServer:
    """Serves `POST /v1/chat/completions` (and Fireworks' `/inference/v1/...`) on 127.0.0.1.

    `table` maps the content of a request's last user message to candidate responses (content strings or
    assistant message dicts, e.g. with `tool_calls`); successive requests for one key get successive candidates,
    cycling. A callable receives the request JSON and returns the candidates. Unknown keys are echoed.
    It also serves Fireworks' evaluator endpoints (`evaluators`, see pytest_rewardkit.evaluators.fake).
    """

    table: Table | None = None
    latency: float = 0.0
    honour_n: bool = True
    api_key: str | None = None
    port: int = 0
    gzip: bool = False
    # Fireworks' evaluator endpoints (create/get/delete/preview), behind the same faults and key check.
    evaluators: FakeEvaluators = field(default_factory=FakeEvaluators)
    requests: list[RecordedRequest] = field(default_factory=list, init=False)
    _faults: collections.deque[Fault] = field(default_factory=collections.deque, init=False, repr=False)
    _cursors: collections.Counter[str] = field(default_factory=collections.Counter, init=False, repr=False)
    _runner: web.AppRunner | None = field(default=None, init=False, repr=False)
    _loop: LoopThread | None = field(default=None, init=False, repr=False)
    _base_url: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.table, Mapping):
            empty = [key for key, candidates in self.table.items() if not candidates]
            if empty:
                raise ValueError(f"FakeChatServer table has no responses for {empty!r}; give each key at least one")

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/v1` while the server runs."""
        if self._base_url is None:
            raise RuntimeError("FakeChatServer is not running; use start_in_thread(), running() or `async with`")
        return self._base_url

    def script(self, *faults: Fault) -> None:
        """Queue faults; each following request consumes one, in order, before normal handling."""
        self._faults.extend(faults)

    def reset(self) -> None:
        """Forget received requests, pending faults and table positions."""
        self.requests.clear()
        self._faults.clear()
        self._cursors.clear()

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def __aenter__(self) -> str:
        return await self._start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stop()

    def start_in_thread(self) -> str:
        """Serve from an event loop in a daemon thread; returns the base URL."""
        if self._base_url is not None:
            raise RuntimeError(f"FakeChatServer is already running at {self._base_url}")
        loop = LoopThread("FakeChatServer")
        try:
            base_url = loop.run(self._start())
        except BaseException:
            loop.stop()
            raise
        self._loop = loop
        return base_url

    def stop(self) -> None:
        """Stop the server started by start_in_thread() and free its port; does nothing when not running."""
        loop = self._loop
        if loop is None:
            return
        try:
            loop.run(self._stop())
        finally:
            self._loop = None
            loop.stop()

    @contextlib.contextmanager
    def running(self) -> Iterator[str]:
        """start_in_thread() ... stop() as a context manager yielding the base URL."""
        base_url = self.start_in_thread()
        try:
            yield base_url
        finally:
            self.stop()

    async def _start(self) -> str:
        if self._base_url is not None:
            raise RuntimeError(f"FakeChatServer is already running at {self._base_url}")
        app = web.Application(middlewares=[self._compress])
        for path in CHAT_PATHS:
            app.router.add_post(path, self._handle)
        for method, path, answer in self.evaluators.routes():
            app.router.add_route(method, path, functools.partial(self._handle, answer=answer))
        # No access log: it costs time per request and floods the output of tests and benchmarks.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
        await runner.setup()
        try:
            await web.TCPSite(runner, HOST, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        port = runner.addresses[0][1]
        self._runner, self._base_url = runner, f"http://{HOST}:{port}/v1"
        return self._base_url

    async def _stop(self) -> None:
        runner, self._runner, self._base_url = self._runner, None, None
        if runner is not None:
            await runner.cleanup()

    # -- protocol --------------------------------------------------------------------------------------------

    @web.middleware
    async def _compress(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        response = await handler(request)
        if self.gzip and "gzip" in request.headers.get("Accept-Encoding", "").lower():
            response.enable_compression(web.ContentCoding.gzip)
        return response

    async def _handle(self, request: web.Request, answer: Answer | None = None) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        self.requests.append(RecordedRequest(request.method, request.path, dict(request.headers), body))
        fault = self._faults.popleft() if self._faults else None
        if self.latency:
            await asyncio.sleep(self.latency)
        if fault is not None and fault.kind != "timeout":
            return self._apply(fault, request, body)
        if fault is not None:
            await asyncio.sleep(fault.seconds)
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided. Pass it as `Authorization: Bearer <key>`.")
        if answer is not None:
            return await answer(request, body)
        if not isinstance(body, dict):
            return _error(400, "The request body is not a JSON object.")
        try:
            chat = _ChatRequest.model_validate(body)
        except ValidationError as exc:
            param = dotted(exc.errors()[0]["loc"])
            return _error(400, f"Invalid request: {validation_problems(exc)[0]}", param=param)
        return web.json_response(self._completion(body, chat))

    def _apply(self, fault: Fault, request: web.Request, body: Any) -> web.StreamResponse:
        if fault.kind == "disconnect":
            # Dropping the transport leaves the client with a closed connection and no status line at all.
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError
        if fault.kind == "garbage":
            assert isinstance(fault.body, bytes)
            return web.Response(body=fault.body, content_type="text/html")
        if fault.kind == "bad_json_shape":
            model = body.get("model") if isinstance(body, dict) else None
            return web.json_response({"id": "chatcmpl-fake-bad", "object": "chat.completion", "model": model})
        headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
        if isinstance(fault.body, dict):
            return web.json_response(fault.body, status=fault.status_code, headers=headers)
        if isinstance(fault.body, str):
            return web.Response(text=fault.body, status=fault.status_code, headers=headers)
        return _error(fault.status_code, f"Scripted fault: HTTP {fault.status_code}.", headers=headers)

    def _completion(self, body: dict[str, Any], chat: _ChatRequest) -> dict[str, Any]:
        key = _last_user_text(chat.messages)
        candidates: Sequence[Candidate]
        if callable(self.table):
            candidates = self.table(body)
        elif self.table is not None:
            candidates = self.table.get(key, ())
        else:
            candidates = ()
        count = chat.n if self.honour_n else 1
        start = self._cursors[key]
        self._cursors[key] += count
        answers = [
            _assistant_message(candidates[(start + index) % len(candidates)] if candidates else f"echo: {key}")
            for index in range(count)
        ]
        choices = [
            {"index": index, "message": answer, "finish_reason": "tool_calls" if answer.get("tool_calls") else "stop"}
            for index, answer in enumerate(answers)
        ]
        prompt_tokens = sum(_words(message.content) for message in chat.messages)
        completion_tokens = sum(_words(answer.get("content")) for answer in answers)
        digest = hashlib.sha256(f"{chat.model}\0{key}\0{start}\0{count}".encode()).hexdigest()[:24]
        return {
            "id": f"chatcmpl-{digest}",
            "object": "chat.completion",
            "created": CREATED,
            "model": chat.model,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def _error(
    status: int, message: str, param: str | None = None, headers: Mapping[str, str] | None = None
) -> web.Response:
    kind, code = _ERROR_TYPES.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    payload = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return web.json_response(payload, status=status, headers=headers)


def _words(content: Any) -> int:
    return len(content_text(content).split()) if isinstance(content, str | list) else 0


def _last_user_text(messages: Sequence[_ChatMessage]) -> str:
    user = [message for message in messages if message.role == "user"]
    return content_text(user[-1].content) if user else ""


def _assistant_message(candidate: Candidate) -> dict[str, Any]:
    if isinstance(candidate, str):
        return {"role": "assistant", "content": candidate}
    return {"role": "assistant", "content": None, **candidate}


# -- command line ----------------------------------------------------------------------------------------------


def read_table(path: Path) -> dict[str, list[Candidate]]:
    """A `--table` JSONL file as a table; a bad line raises ValueError naming the file and line."""
    table: dict[str, list[Candidate]] = {}
    first_line: dict[str, int] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = TableRow.model_validate_json(line)
        except ValidationError as exc:
            problem = validation_problems(exc, lambda loc: dotted(loc) if loc else "line")[0]
            raise ValueError(f'{path}:{number}: {problem}; expected {{"prompt": "...", "responses": [...]}}') from None
        if row.prompt in table:
            raise ValueError(
                f"{path}:{number}: prompt already given on line {first_line[row.prompt]}; "
                "put all its responses in one row"
            )
        table[row.prompt], first_line[row.prompt] = row.responses, number
    return table


async def _serve_until_signalled(server: FakeChatServer) -> None:
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    async with server as base_url:
        print(base_url, flush=True)
        await stopped.wait()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m pytest_rewardkit.testing`."""
    parser = argparse.ArgumentParser(
        prog="python -m pytest_rewardkit.testing",
        description="Serve a fake chat-completions endpoint on 127.0.0.1: prints the base URL, stops on SIGTERM.",
    )
    parser.add_argument("--table", type=Path, help='JSONL file of {"prompt": <last user content>, "responses": [...]}')
    parser.add_argument("--latency", type=float, default=0.0, help="seconds to wait before each answer")
    parser.add_argument("--port", type=int, default=0, help="port to bind (0: a free one)")
    parser.add_argument("--api-key", help="require `Authorization: Bearer <key>`")
    parser.add_argument("--ignore-n", action="store_true", help="answer one choice whatever `n` asks for")
    parser.add_argument("--gzip", action="store_true", help="gzip answers to clients that accept gzip")
    args = parser.parse_args(argv)
    try:
        table = read_table(args.table) if args.table else None
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    server = FakeChatServer(
        table=table,
        latency=args.latency,
        honour_n=not args.ignore_n,
        api_key=args.api_key,
        port=args.port,
        gzip=args.gzip,
    )
    asyncio.run(_serve_until_signalled(server))


if __name__ == "__main__":
    main()
