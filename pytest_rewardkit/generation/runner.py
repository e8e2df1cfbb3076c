"""Responses for rows: replayed from their cassettes, or generated and recorded.

One `Generator` per process. Replay runs on the calling thread straight from the cassette.
Recording runs on one background event loop shared by all rows, so generation for many rows
overlaps (bounded by one semaphore per process) while pytest runs items one after another.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr, ValidationError

from pytest_rewardkit.auth import describe_places
from pytest_rewardkit.cassette_cache import CassetteCache
from pytest_rewardkit.errors import ReplayMiss, RowError, SessionStop
from pytest_rewardkit.evaluation import Case, Responses
from pytest_rewardkit.generation.aliases import resolve_model
from pytest_rewardkit.generation.client import (
    FIREWORKS_BASE_URL,
    AuthenticationError,
    BadResponse,
    ChatClient,
    ClientSettings,
    GenerationError,
    failure_signature,
)
from pytest_rewardkit.loop_thread import LoopThread, cancel_other_tasks
from pytest_rewardkit.models import Message, Response
from pytest_rewardkit.recording import (
    CassetteError,
    Interaction,
    RowCassette,
    cassette_path,
    match_key,
)

if TYPE_CHECKING:
    # Imported when a row is recorded: replay-only runs never pay for the HTTP stack.
    import aiohttp

WAIT_TICK = 1.0  # seconds


@dataclass(frozen=True)
class GenerationConfig:
    cassette_root: Path
    record_mode: str = "none"
    concurrency: int = 16
    api_key: SecretStr | None = None
    api_key_env: str = "FIREWORKS_API_KEY"
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    max_attempts: int = 5
    # Consecutive rows failing with the same model error before the session stops (0: never).
    max_repeated_errors: int = 5
    # Where parsed cassettes are kept between runs (pytest's cache directory); None: parse every time.
    cache_dir: Path | None = None


@dataclass
class Progress:
    """This process's live generation: rows sent to the endpoint (`total`), finished (`done`, of
    which `errors` failed) and responses recorded. Rows answered from their cassettes do not count."""

    total: int = 0
    done: int = 0
    errors: int = 0
    recorded: int = 0


def request_body(case: Case, model: str) -> dict[str, Any]:
    """The chat-completions body for a row: model, system prompt + prompt messages, sampling
    parameters and the row's tools (OpenAI format), never `n` (that is added per request)."""
    body: dict[str, Any] = {"model": model, "messages": [m.to_api() for m in case.prompt()]}
    body.update(case.settings.sampling.model_dump(exclude_none=True))
    tools = case.row.extra.get("tools")
    if tools:
        body["tools"] = tools
    return body


def _to_message(choice: dict[str, Any], where: str) -> Message:
    try:
        return Message.model_validate({"role": "assistant", **choice["message"]})
    except (KeyError, TypeError, ValidationError) as exc:
        raise BadResponse(f"{where}: a recorded choice is not an assistant message: {exc}") from exc


def _responses(cassette: RowCassette, key: str, choices: list[dict[str, Any]], n: int) -> Responses:
    """The first `n` of the request's recorded `choices` as messages, with what each cost."""
    where = str(cassette.path)
    return Responses([_to_message(c, where) for c in choices[:n]], cassette.recorded_stats(key)[:n])


class Generator:
    def __init__(self, config: GenerationConfig, on_wait: Callable[[float], None] | None = None) -> None:
        self.config = config
        # Called every WAIT_TICK seconds while a caller waits for a row, with the seconds it has
        # waited so far (progress reporting).
        self.on_wait = on_wait
        self.progress = Progress()
        # Per endpoint URL, whether it honours `n`: learnt from its first answer to an n>1 request.
        self.n_supported: dict[str, bool] = {}
        self.stopped: SessionStop | None = None
        self._folder_urls: dict[Path, list[str]] = {}
        self._parsed = CassetteCache(config.cache_dir) if config.cache_dir is not None else None
        self._futures: dict[tuple[str, str, str], concurrent.futures.Future[Sequence[Response]]] = {}
        self._loop: LoopThread | None = None
        self._session: aiohttp.ClientSession | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._lock = threading.Lock()
        self._repeated: tuple[str, int] = ("", 0)  # the last failed rows' error signature, and how many

    # -- what callers use -------------------------------------------------------------------

    @property
    def records(self) -> bool:
        return self.config.record_mode != "none"

    def responses(self, case: Case) -> Sequence[Response]:
        """The row's n responses, in variant order. Raises RowError for this row's problem,
        SessionStop when no row can be generated."""
        if self.stopped is not None:
            raise self.stopped
        future = self._futures.pop(self._key(case), None)
        if future is None:
            replayed = self._replay_only(case)
            if replayed is not None:
                return replayed
            future = self._submit(case)
        try:
            waiting_since = time.monotonic()
            while True:
                try:
                    return future.result(timeout=WAIT_TICK if self.on_wait is not None else None)
                except concurrent.futures.TimeoutError:
                    if self.on_wait is not None:
                        self.on_wait(time.monotonic() - waiting_since)
        except (SessionStop, RowError):
            raise
        except (GenerationError, CassetteError) as exc:
            raise RowError(str(exc)) from exc

    def prefetch(self, cases: list[Case]) -> None:
        """Start generating rows that will run soon, so that their calls overlap."""
        if not self.records or self.stopped is not None:
            return
        for case in cases:
            if self._key(case) not in self._futures:
                self._futures[self._key(case)] = self._submit(case)

    def close(self) -> None:
        """Cancel what is still generating (an interrupted run), wait for it to unwind, close the
        HTTP session and the loop: no task is left pending for the interpreter to complain about."""
        if self._loop is None:
            return
        loop, self._loop = self._loop, None

        async def shutdown() -> None:
            # Rows still generating first, then their HTTP session.
            await cancel_other_tasks()
            if self._session is not None:
                await self._session.close()

        try:
            loop.run(shutdown(), timeout=10)
        finally:
            loop.stop(timeout=10)

    # -- cassettes --------------------------------------------------------------------------

    def _key(self, case: Case) -> tuple[str, str, str]:
        return (case.settings.suite, case.model_label, case.row_id)

    def _cassette_path(self, case: Case) -> Path:
        return cassette_path(self.config.cassette_root, case.settings.suite, case.model_label, case.row_id)

    def _model(self, case: Case) -> str:
        assert case.settings.model is not None
        return resolve_model(case.settings.model, case.settings.model_aliases)

    def _base_url(self, case: Case) -> str:
        return case.settings.base_url or FIREWORKS_BASE_URL

    def _url(self, case: Case) -> str:
        return self._base_url(case).rstrip("/") + "/chat/completions"

    def _open(self, case: Case) -> tuple[RowCassette, bool]:
        """The row's cassette, and whether recording may add to it."""
        path = self._cassette_path(case)
        mode = self.config.record_mode
        try:
            cassette = RowCassette(path) if mode == "all" else RowCassette.load(path, self._parsed)
        except CassetteError as exc:
            raise RowError(str(exc)) from exc
        return cassette, mode in ("new_episodes", "all") or (mode == "once" and not cassette.exists)

    def _plan(self, case: Case) -> tuple[RowCassette, dict[str, Any], str, list[dict[str, Any]], bool]:
        """The row's cassette, request body and key, the choices recorded for it, and whether
        recording may add."""
        cassette, may_record = self._open(case)
        body = request_body(case, self._model(case))
        key = match_key("POST", self._url(case), body)
        return cassette, body, key, cassette.recorded_choices(key), may_record

    def _replay_only(self, case: Case) -> Sequence[Response] | None:
        """Responses straight from the cassette, or None when recording must fill the gap."""
        if case.settings.environment is not None:
            from pytest_rewardkit.generation import rollout

            cassette, may_record = self._open(case)
            body = request_body(case, self._model(case))
            replayed = rollout.replay_or_none(self, case, cassette, body, may_record)
            return replayed
        cassette, body, key, choices, may_record = self._plan(case)
        if len(choices) >= case.settings.n:
            return _responses(cassette, key, choices, case.settings.n)
        if may_record:
            return None
        raise ReplayMiss(self._miss_message(case, cassette, body, len(choices)))

    def _miss_message(self, case: Case, cassette: RowCassette, body: dict[str, Any], have: int) -> str:
        n = case.settings.n
        mode = self.config.record_mode
        fix = self._miss_fix(case, cassette)
        if not cassette.exists:
            return f"no cassette {cassette.path} (record mode {mode}); {fix}"
        if have:
            return f"{have} of {n} variants recorded for row {case.row_id}; {fix} (cassette {cassette.path})"
        nearest = cassette.nearest(self._url(case), body)
        return (
            f"no recorded request in {cassette.path} matches this one (record mode {mode}); "
            f"{fix}.\nNearest recorded request, as a diff (endpoint and body):\n{nearest}"
        )

    def _miss_fix(self, case: Case, cassette: RowCassette) -> str:
        """How to record what a replay misses, given where the suite's cassettes were recorded."""
        base_url = self._base_url(case)
        recorded = cassette.base_urls() or self._folder_base_urls(cassette.path.parent)
        elsewhere = [url for url in recorded if url.rstrip("/") != base_url.rstrip("/")]
        if elsewhere and case.settings.base_url is None:
            # Recording now would call Fireworks, which is not where these cassettes came from.
            fix = (
                f"recorded against {elsewhere[0]}, not {base_url}: to record what is missing from that endpoint, "
                f"run with --rk-base-url {elsewhere[0]} --record-mode=new_episodes"
            )
        elif elsewhere:
            fix = (
                f"run with --record-mode=new_episodes to record what is missing from {base_url} "
                f"(this cassette was recorded against {elsewhere[0]})"
            )
        else:
            fix = "run with --record-mode=new_episodes to record what is missing"
        return fix

    def _folder_base_urls(self, folder: Path) -> list[str]:
        """Where the other rows of a cassette folder were recorded: what a row without a cassette of
        its own would most likely have been recorded against. Read once per folder, on misses only."""
        if folder not in self._folder_urls:
            sibling = next(iter(sorted(folder.glob("*.yaml"))), None) if folder.is_dir() else None
            try:
                self._folder_urls[folder] = RowCassette.load(sibling).base_urls() if sibling else []
            except CassetteError:
                self._folder_urls[folder] = []
        return self._folder_urls[folder]

    # -- recording --------------------------------------------------------------------------

    def _submit(self, case: Case) -> concurrent.futures.Future[Sequence[Response]]:
        loop = self._ensure_loop()
        with self._lock:
            self.progress.total += 1
        return loop.submit(self._generate_row(case))

    def _ensure_loop(self) -> LoopThread:
        with self._lock:
            if self._loop is None:
                self._loop = LoopThread("rewardkit-generation")
            return self._loop

    async def _generate_row(self, case: Case) -> Sequence[Response]:
        if self._semaphore is None:
            import aiohttp

            self._semaphore = asyncio.Semaphore(self.config.concurrency)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.config.concurrency, ttl_dns_cache=300)
            )
        try:
            messages, generated = await self._generate(case)
        except BaseException as exc:
            with self._lock:
                self.progress.errors += 1
                self.progress.done += 1
            if isinstance(exc, GenerationError) and not isinstance(exc, AuthenticationError):
                self._count_failure(exc)
            raise
        with self._lock:
            if generated:
                self.progress.done += 1
                self._repeated = ("", 0)
            else:
                # Replayed from its cassette: not live generation.
                self.progress.total -= 1
        return messages

    def _count_failure(self, error: GenerationError) -> None:
        """A hopeless run (unknown model, a server answering only 5xx) stops after a few rows
        failing alike, instead of paying for every row and showing the same error on each."""
        limit = self.config.max_repeated_errors
        with self._lock:
            last, count = self._repeated
            signature = failure_signature(error)
            count = count + 1 if signature == last else 1
            self._repeated = (signature, count)
            if not limit or count < limit or self.stopped is not None:
                return
            self.stopped = SessionStop(
                f"{count} rows in a row failed with the same error, so recording stops here "
                f"(--rk-max-repeated-errors {limit}; everything recorded so far is kept): {error}"
            )
        raise self.stopped from error

    async def _generate(self, case: Case) -> tuple[Sequence[Response], bool]:
        """The row's responses, and whether the endpoint was called for them."""
        if case.settings.environment is not None:
            return await self._generate_rollouts(case)
        cassette, body, key, have, may_record = self._plan(case)
        if len(have) >= case.settings.n:
            return _responses(cassette, key, have, case.settings.n), False
        if not may_record:
            raise ReplayMiss(self._miss_message(case, cassette, body, len(have)))
        client = self._client(case)
        self._check_key(client.settings)
        exchanges, error = await self._record(client, body, case.settings.n - len(have))
        await self._keep(cassette, exchanges, error)
        return _responses(cassette, key, cassette.recorded_choices(key), case.settings.n), True

    async def _generate_rollouts(self, case: Case) -> tuple[Sequence[Response], bool]:
        """A multi-turn row's n trajectories (see rollout.py); what was recorded is saved before
        any error surfaces."""
        from pytest_rewardkit.generation import rollout

        cassette, may_record = self._open(case)
        body = request_body(case, self._model(case))
        trajectories, exchanges, error = await rollout.record(self, case, cassette, body, may_record)
        await self._keep(cassette, exchanges, error)
        return trajectories, bool(exchanges)

    async def _keep(self, cassette: RowCassette, exchanges: list[Interaction], error: BaseException | None) -> None:
        """Append the scrubbed exchanges and save the cassette, then raise the call's error:
        what was recorded is never lost. An authentication error stops the session."""
        secrets = [self.config.api_key.get_secret_value()] if self.config.api_key else []
        for exchange in exchanges:
            cassette.append(exchange.scrubbed(secrets))
        if exchanges:
            await asyncio.to_thread(cassette.save, secrets)
            with self._lock:
                self.progress.recorded += sum(len(e.response_body["choices"]) for e in exchanges)
        if isinstance(error, AuthenticationError):
            self.stopped = self.stopped or SessionStop(str(error))
            raise self.stopped
        if error is not None:
            raise error

    async def _record(
        self, client: ChatClient, body: dict[str, Any], missing: int
    ) -> tuple[list[Interaction], BaseException | None]:
        """Request `missing` more choices: one request with `n` where the endpoint honours it,
        else one request per variant, all concurrently. Returns what succeeded, in order, and the
        first error."""
        exchanges: list[Interaction] = []
        if missing > 1 and self.n_supported.get(client.settings.url, True):
            try:
                exchange = await self._call(client, {**body, "n": missing})
            except GenerationError as exc:
                return exchanges, exc
            exchanges.append(exchange)
            got = len(exchange.response_body["choices"])
            self.n_supported[client.settings.url] = got >= missing
            missing -= got
        if missing <= 0:
            return exchanges, None
        results = await asyncio.gather(*(self._call(client, body) for _ in range(missing)), return_exceptions=True)
        first_error: BaseException | None = None
        for result in results:
            if isinstance(result, BaseException):
                first_error = first_error or result
            else:
                exchanges.append(result)
        return exchanges, first_error

    async def _call(self, client: ChatClient, body: dict[str, Any]) -> Interaction:
        assert self._semaphore is not None
        async with self._semaphore:
            # Checked once a slot is free: calls queued behind a 401 or a hopeless run stay unsent.
            if self.stopped is not None:
                raise self.stopped
            try:
                return await client.create(body)
            except AuthenticationError as exc:
                # At once, not when the row finishes: its sibling calls are already waiting for slots.
                self.stopped = self.stopped or SessionStop(str(exc))
                raise

    def _client(self, case: Case) -> ChatClient:
        assert self._session is not None
        settings = ClientSettings(
            base_url=self._base_url(case),
            api_key=self.config.api_key,
            api_key_env=self.config.api_key_env,
            connect_timeout=self.config.connect_timeout,
            read_timeout=self.config.read_timeout,
            max_attempts=self.config.max_attempts,
        )
        return ChatClient(settings, self._session)

    def _check_key(self, settings: ClientSettings) -> None:
        if not settings.api_key and settings.base_url.rstrip("/") == FIREWORKS_BASE_URL:
            self.stopped = SessionStop(
                f"recording needs an API key: set {settings.api_key_env} (Fireworks API key; looked in "
                f"{describe_places(settings.api_key_env)}), or replay committed cassettes with --record-mode=none"
            )
            raise self.stopped
