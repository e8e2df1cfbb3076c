"""`python -m pytest_rewardkit serve <suite>`: the suite's reward behind an authenticated HTTP API.

    POST /v1/evaluate   {"messages": [...], "ground_truth": ..., <row fields>}      -> one result
                        {"samples": [{...}, ...]}                                 -> {"results": [...]}
    GET  /health        -> {"status": "ok", "suite": ..., "reward": ...}

Security model: every request but /health needs `Authorization: Bearer <token>`, the token taken
from an environment variable (never a flag: flags show in `ps`); without one the server does not
start, unless --insecure-local and bound to a loopback address. Bodies are capped in bytes and
samples, requests in flight are capped, and each sample has a wall-clock limit. The server scores
only with the suite's own reward and parameters: a sample may carry the fields the suite's rows
carry, never the reward's parameters (so a client cannot raise the code sandbox's limits), and the
only code from a request that runs is what the reward itself runs in its sandbox. Rewards run in a
pool of worker processes, so a slow grader cannot stall the event loop; a worker that overruns the
limit is killed and replaced.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import hmac
import ipaddress
import multiprocessing
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from pytest_rewardkit.config import ConfigError, Options
from pytest_rewardkit.errors import RewardError
from pytest_rewardkit.loop_thread import LoopThread
from pytest_rewardkit.resolver import resolver_for
from pytest_rewardkit.reward import to_messages
from pytest_rewardkit.suite import load_suite

TOKEN_ENV = "REWARDKIT_SERVER_TOKEN"
MIN_TOKEN_LENGTH = 16
# Fields a sample may always carry; others only when the suite's own rows carry them.
SAMPLE_FIELDS = frozenset({"messages", "ground_truth", "tools"})


class ServerConfigError(ConfigError):
    """The server refuses to start; the message says why and what to do."""


@dataclass(frozen=True)
class ServerLimits:
    max_body_bytes: int = 1 << 20
    max_samples: int = 64
    concurrency: int = 4
    sample_timeout: float = 30.0
    max_queued: int = 256  # samples admitted (running or waiting); beyond that, 503 and Retry-After


# -- scoring in worker processes ----------------------------------------------------------------

_worker_state: dict[str, Any] = {}


def _worker_init(config_path: str) -> None:
    # The parent's signal handlers are not this process's business: Ctrl-C goes to the parent.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    settings, entries = load_suite(Path(config_path), Options(limit=1))
    bound = resolver_for(settings.config_path.parent).bind(settings.reward.name, settings.reward.params)
    reward = _worker_state["reward"] = bound.reward
    _worker_state["params"] = bound.params
    # Rewards import their graders lazily (math-verify takes a second): score the suite's first
    # row once here, so that no client request pays for it. Its result does not matter.
    row = entries[0].row if entries else None
    if row is not None:
        with contextlib.suppress(Exception):
            reward(row.messages, ground_truth=row.ground_truth, **{**row.extra, **bound.params})


def _worker_score(sample: dict[str, Any]) -> dict[str, Any]:
    reward = _worker_state["reward"]
    fields = dict(sample)
    messages = fields.pop("messages")
    ground_truth = fields.pop("ground_truth", None)
    try:
        result = reward(messages, ground_truth=ground_truth, **{**fields, **_worker_state["params"]})
    except Exception as exc:
        return {"success": False, "error": f"reward {reward.name!r} raised {type(exc).__name__}: {exc}"}
    if result.is_error:
        return {"success": False, "error": f"reward could not score this sample: {result.error or result.reason}"}
    return {"success": True, **result.model_dump(mode="json", exclude={"error", "is_score_valid"})}


class Scorer:
    """A pool of worker processes that each hold the suite's reward."""

    def __init__(self, config_path: Path, limits: ServerLimits) -> None:
        self.config_path = config_path
        self.limits = limits
        self._pool = self._new_pool()
        self._ready: asyncio.Future[Any] | None = None
        self._slots = asyncio.Semaphore(limits.concurrency)

    def _new_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        return concurrent.futures.ProcessPoolExecutor(
            max_workers=self.limits.concurrency,
            # forkserver: the server runs threads, and forking a threaded process can deadlock.
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=_worker_init,
            initargs=(str(self.config_path),),
        )

    def _warm(self) -> asyncio.Future[Any]:
        """Start every worker of the current pool and load the reward in it."""
        loop = asyncio.get_running_loop()
        self._ready = asyncio.gather(
            *(loop.run_in_executor(self._pool, os.getpid) for _ in range(self.limits.concurrency))
        )
        return self._ready

    async def warm_up(self) -> None:
        """Before serving: a broken reward stops the server at start-up rather than per request."""
        await self._warm()

    async def score(self, sample: dict[str, Any]) -> dict[str, Any]:
        async with self._slots:
            if self._ready is not None:
                # A pool being rebuilt after an overrun: its start-up is not the sample's time.
                with contextlib.suppress(concurrent.futures.process.BrokenProcessPool):
                    await asyncio.shield(self._ready)
            pool = self._pool
            future = asyncio.get_running_loop().run_in_executor(pool, _worker_score, sample)
            try:
                return await asyncio.wait_for(future, self.limits.sample_timeout)
            except TimeoutError:
                self._replace(pool)
                return {"success": False, "error": f"no score within the {self.limits.sample_timeout:g}s limit"}
            except concurrent.futures.process.BrokenProcessPool:
                self._replace(pool)
                return {"success": False, "error": "the reward's worker process died (killed or out of memory)"}

    def _replace(self, pool: concurrent.futures.ProcessPoolExecutor) -> None:
        # A worker stuck past its deadline cannot be cancelled: the pool is killed and rebuilt.
        if pool is not self._pool:
            return
        self._pool = self._new_pool()
        self._warm()
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        for process in list(getattr(self._pool, "_processes", {}).values()):
            process.kill()
        self._pool.shutdown(wait=True, cancel_futures=True)


# -- HTTP ----------------------------------------------------------------------------------------


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"message": message}}, status=status)


@dataclass
class RewardServer:
    """The app around a Scorer. `token` None means no authentication (loopback only)."""

    suite: Path
    token: str | None
    limits: ServerLimits = field(default_factory=ServerLimits)
    host: str = "127.0.0.1"
    port: int = 0
    _runner: web.AppRunner | None = field(default=None, init=False, repr=False)
    _scorer: Scorer | None = field(default=None, init=False, repr=False)
    _allowed: frozenset[str] = field(default=frozenset(), init=False, repr=False)
    _info: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    _admitted: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        settings, entries = load_suite(self.suite)
        self.config_path = settings.config_path
        try:  # here, where the error can be shown, rather than as a broken worker pool
            resolver_for(settings.config_path.parent).bind(settings.reward.name, settings.reward.params)
        except RewardError as exc:
            raise ServerConfigError(f"{settings.config_path}: {exc}") from exc
        row_fields = {key for entry in entries if entry.row is not None for key in entry.row.extra}
        self._allowed = frozenset(SAMPLE_FIELDS | (row_fields - set(settings.reward.params)))
        self._info = {"suite": settings.suite, "reward": settings.reward.name}

    async def start(self) -> str:
        self._scorer = Scorer(self.config_path, self.limits)
        await self._scorer.warm_up()
        app = web.Application(client_max_size=self.limits.max_body_bytes, middlewares=[self._auth])
        app.router.add_post("/v1/evaluate", self._evaluate)
        app.router.add_get("/health", self._health)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._scorer is not None:
            self._scorer.close()
            self._scorer = None

    @contextlib.contextmanager
    def running(self) -> Iterator[str]:
        """Serve from a thread (tests, benchmarks); yields the base URL."""
        loop = LoopThread("RewardServer")
        try:
            yield loop.run(self.start(), timeout=120)
        finally:
            try:
                loop.run(self.stop(), timeout=60)
            finally:
                loop.stop()

    # -- handlers ---------------------------------------------------------------------------------

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path != "/health" and self.token is not None:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                return _error(401, "missing or wrong bearer token: send `Authorization: Bearer <token>`")
        return await handler(request)

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", **self._info})

    async def _evaluate(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"request body over {self.limits.max_body_bytes} bytes")
        except ValueError:
            return _error(400, "the body is not JSON")
        many = isinstance(body, dict) and "samples" in body
        samples = body["samples"] if many else [body]
        if not isinstance(samples, list) or not samples:
            return _error(400, "'samples' must be a non-empty list of samples")
        if len(samples) > self.limits.max_samples:
            return _error(413, f"{len(samples)} samples in one request; the limit is {self.limits.max_samples}")
        for number, sample in enumerate(samples):
            problem = self._check(sample)
            if problem:
                where = f"samples[{number}]" if many else "sample"
                return _error(400, f"{where}: {problem}")
        if self._admitted + len(samples) > self.limits.max_queued:
            response = _error(503, f"busy: {self._admitted} samples in progress; retry shortly")
            response.headers["Retry-After"] = "1"
            return response
        assert self._scorer is not None
        self._admitted += len(samples)
        try:
            results = await asyncio.gather(*(self._scorer.score(sample) for sample in samples))
        finally:
            self._admitted -= len(samples)
        return web.json_response({"results": results} if many else results[0])

    def _check(self, sample: Any) -> str | None:
        if not isinstance(sample, dict):
            return "must be a JSON object with 'messages'"
        if "messages" not in sample:
            return "has no 'messages'"
        unknown = sorted(set(sample) - self._allowed)
        if unknown:
            return (
                f"fields {unknown} are not accepted: a sample carries messages, ground_truth, tools and the "
                f"fields of the suite's rows ({sorted(self._allowed - SAMPLE_FIELDS)}); the reward's "
                "parameters are fixed by the suite"
            )
        try:
            to_messages(sample["messages"])
        except (TypeError, ValidationError) as exc:
            return f"messages: {str(exc).splitlines()[0]}"
        return None


# -- command line --------------------------------------------------------------------------------

DOCKERFILE = """\
# Generated by `python -m pytest_rewardkit serve {suite} --dockerfile`: the suite's reward server.
# Build from the project root: docker build -f {dockerfile} -t rewardkit-{name} .
# Run: docker run -e {token_env}=<a long random token> -p {port}:{port} rewardkit-{name}
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends bubblewrap \\
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 10001 rewardkit
WORKDIR /app
COPY {suite} /app/suite
RUN pip install --no-cache-dir "pytest-rewardkit=={version}"{extra_requirements}
USER rewardkit
ENV HF_HUB_OFFLINE=1
EXPOSE {port}
# The token comes from the environment at run time; without it the server refuses to start.
CMD ["python", "-m", "pytest_rewardkit", "serve", "/app/suite", "--host", "0.0.0.0", "--port", "{port}", \\
     "--token-env", "{token_env}"]
"""


def dockerfile(suite: Path, dockerfile_path: Path, port: int, token_env: str) -> str:
    from pytest_rewardkit.evaluators.packaging import REQUIREMENTS_FILE, package_version
    from pytest_rewardkit.suite import find_config

    folder = find_config(suite).parent
    extra = " -r /app/suite/requirements.txt" if (folder / REQUIREMENTS_FILE).is_file() else ""
    name = "".join(c if c.isalnum() else "-" for c in folder.name.lower()).strip("-") or "suite"
    return DOCKERFILE.format(
        suite=os.path.relpath(folder),
        dockerfile=os.path.relpath(dockerfile_path),
        name=name,
        version=package_version(),
        extra_requirements=extra,
        port=port,
        token_env=token_env,
    )


def check_exposure(host: str, token: str | None, insecure_local: bool, token_env: str) -> None:
    """Refuse to serve without a token, except explicitly and on loopback only."""
    if token is not None:
        if len(token) < MIN_TOKEN_LENGTH:
            raise ServerConfigError(
                f"{token_env} is shorter than {MIN_TOKEN_LENGTH} characters; use a long random token, e.g. "
                f"export {token_env}=\"$(python -c 'import secrets; print(secrets.token_urlsafe(32))')\""
            )
        return
    if not insecure_local:
        raise ServerConfigError(
            f"no bearer token: set {token_env} to a long random token (clients send `Authorization: Bearer "
            "<token>`), or pass --insecure-local to serve without one on 127.0.0.1 only"
        )
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ServerConfigError(
            f"--insecure-local serves without authentication, so only on a loopback address, not {host}; "
            f"set {token_env} to serve on {host}"
        )


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve a suite's reward over HTTP (POST /v1/evaluate, GET /health)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("suite", type=Path, help="suite folder or its rewardkit.yaml")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    parser.add_argument(
        "--token-env", default=TOKEN_ENV, help=f"variable holding the bearer token (default {TOKEN_ENV})"
    )
    parser.add_argument("--insecure-local", action="store_true", help="allow no token, on a loopback address only")
    parser.add_argument("--max-body-bytes", type=int, default=ServerLimits.max_body_bytes, help="default 1 MiB")
    parser.add_argument("--max-samples", type=int, default=ServerLimits.max_samples, help="per request (default 64)")
    parser.add_argument(
        "--concurrency", type=int, default=ServerLimits.concurrency, help="worker processes (default 4)"
    )
    parser.add_argument(
        "--sample-timeout", type=float, default=ServerLimits.sample_timeout, help="seconds per sample (default 30)"
    )
    parser.add_argument(
        "--max-queued", type=int, default=ServerLimits.max_queued, help="samples in progress before 503 (default 256)"
    )
    parser.add_argument("--dockerfile", type=Path, help="write a Dockerfile that serves this suite, and exit")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for name in ("max_body_bytes", "max_samples", "concurrency", "sample_timeout", "max_queued"):
        if getattr(args, name) <= 0:
            print(f"error: --{name.replace('_', '-')} must be positive", file=sys.stderr)
            return 2
    try:
        if args.dockerfile is not None:
            args.dockerfile.write_text(
                dockerfile(args.suite, args.dockerfile, args.port, args.token_env), encoding="utf-8"
            )
            print(args.dockerfile)
            return 0
        token = os.environ.get(args.token_env) or None
        check_exposure(args.host, token, args.insecure_local, args.token_env)
        limits = ServerLimits(
            args.max_body_bytes, args.max_samples, args.concurrency, args.sample_timeout, args.max_queued
        )
        server = RewardServer(args.suite, token, limits, host=args.host, port=args.port)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    asyncio.run(_serve(server))
    return 0


async def _serve(server: RewardServer) -> None:
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    try:
        url = await server.start()
        print(f"serving {server.suite} on {url} (POST /v1/evaluate, GET /health)", flush=True)
        await stopped.wait()
    finally:
        await server.stop()
