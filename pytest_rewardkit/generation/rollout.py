"""Multi-turn rollouts: a row's user turns played against a fresh environment, every model
request one interaction of the row's cassette.

For each user turn the history and the environment's tools go to the model; every tool call of
its answer runs against the environment, in order, and its result (or error) goes back as the
tool's message; the model is asked again until it answers without a tool call or the turn's
`max_steps` requests are spent. `max_turns` and the rollout's `time_limit` end it early. Limits
reached are recorded in the trajectory.

The rollout itself (`play`) does no I/O: it yields what it needs (a model answer, a tool run) and
is driven either synchronously from the cassette (replay: no event loop, no HTTP stack) or on
the generator's event loop (recording: model calls share the process's semaphore, tool runs go
to a worker thread so a slow environment does not hold up other rows).

Replay is deterministic while the environment is: each request is looked up by its body. A
request that is not in the cassette after earlier ones of the same rollout matched means the
environment (or the suite) now answers differently from the recording: an error naming the
turn and step, never a silent new trajectory.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any

from pytest_rewardkit import errors
from pytest_rewardkit.environment import EnvironmentSession, ToolResult, load_environment
from pytest_rewardkit.evaluation import Case, RowError
from pytest_rewardkit.generation.client import ChatClient
from pytest_rewardkit.generation.runner import Generator as RowGenerator
from pytest_rewardkit.generation.runner import _to_message
from pytest_rewardkit.models import Message, Trajectory, TurnRecord
from pytest_rewardkit.recording import CassetteError, Interaction, RowCassette, match_key

# Seconds since the rollout started when the answer arrived, kept with each recorded answer so
# that replay takes the same time-limit decisions as the recording did.
ELAPSED_HEADER = "x-rewardkit-rollout-elapsed"


@dataclass(frozen=True)
class ModelRequest:
    body: dict[str, Any]
    turn: int
    step: int


@dataclass(frozen=True)
class ToolRun:
    name: Any
    arguments: Any


@dataclass(frozen=True)
class Answer:
    message: Message
    elapsed: float


Effect = ModelRequest | ToolRun
Rollout = Generator[Effect, Any, Trajectory]


class ReplayMiss(errors.ReplayMiss):
    """A request of a rollout is not in the cassette: which turn and step of which variant."""

    def __init__(self, request: ModelRequest, variant: int) -> None:
        super().__init__(f"turn {request.turn}, step {request.step}")
        self.request = request
        self.variant = variant


def _tool_calls(message: Message) -> list[dict[str, Any]]:
    return [c if isinstance(c, dict) else {} for c in message.tool_calls or []]


def play(case: Case, session: EnvironmentSession, base_body: dict[str, Any]) -> Rollout:
    """One rollout of the row against `session`; yields ModelRequest (send back an Answer) and
    ToolRun (send back a ToolResult); returns the trajectory."""
    spec = case.settings.environment
    assert spec is not None
    # A row without `turns` is one turn: its own messages.
    turns = case.row.turns or [[]]
    prompt = case.prompt()
    messages: list[Message] = list(prompt)
    history = [m.to_api() for m in prompt]
    tools = session.openai_tools()
    records: list[TurnRecord] = []
    requests = 0
    limit: Any = None
    for index, turn in enumerate(turns):
        if index >= spec.max_turns:
            limit = "max_turns"
            break
        record = TurnRecord(index=index)
        records.append(record)
        messages.extend(turn)
        history.extend(m.to_api() for m in turn)
        while limit is None:
            if record.steps >= spec.max_steps:
                record.limit = "max_steps"
                break
            body = {**base_body, "messages": list(history)}
            if tools:
                body["tools"] = tools
            answer = yield ModelRequest(body, index, record.steps)
            requests += 1
            record.steps += 1
            messages.append(answer.message)
            history.append(answer.message.to_api())
            if answer.elapsed > spec.time_limit:
                record.limit = limit = "time_limit"
                break
            calls = _tool_calls(answer.message)
            if not calls:
                break
            for number, call in enumerate(calls):
                function = call.get("function")
                if not isinstance(function, dict):
                    function = {}
                result: ToolResult = yield ToolRun(function.get("name"), function.get("arguments", "{}"))
                reply = Message(
                    role="tool",
                    content=result.content,
                    tool_call_id=str(call.get("id") or f"call_{index}_{record.steps}_{number}"),
                    name=function.get("name") if isinstance(function.get("name"), str) else None,
                )
                messages.append(reply)
                history.append(reply.to_api())
            record.tool_calls += len(calls)
        if limit is not None:
            break
    return Trajectory(
        messages=messages, turns=records, final_state=session.json_state(), limit=limit, requests=requests
    )


class RecordedAnswers:
    """The row cassette's answers by request key; each answer is given out once, in recording
    order, so n rollouts that send the same request get the n recorded answers."""

    def __init__(self, cassette: RowCassette, url: str) -> None:
        self.cassette = cassette
        self.url = url
        self.available: dict[str, collections.deque[tuple[dict[str, Any], float]]] = collections.defaultdict(
            collections.deque
        )
        for interaction in cassette.interactions:
            if interaction.status < 300:
                elapsed = _elapsed(interaction)
                for choice in interaction.choices:
                    self.available[interaction.key].append((choice, elapsed))

    def take(self, body: dict[str, Any]) -> Answer | None:
        queue = self.available.get(match_key("POST", self.url, body))
        if not queue:
            return None
        choice, elapsed = queue.popleft()
        return Answer(_to_message(choice, str(self.cassette.path)), elapsed)


def _elapsed(interaction: Interaction) -> float:
    for name, value in interaction.response_headers.items():
        if name.lower() == ELAPSED_HEADER:
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 0.0


def _start(case: Case) -> EnvironmentSession:
    spec = case.settings.environment
    assert spec is not None
    extra = case.row.extra
    try:
        environment = load_environment(spec, case.settings.config_path.parent, extra.get("environment"))
        return environment.start(extra.get("initial_config"), extra.get("excluded_function"))
    except ValueError as exc:
        raise RowError(f"row {case.row_id}: {exc}") from exc


def _drive(rollout: Rollout, session: EnvironmentSession, ask: Callable[[ModelRequest], Answer]) -> Trajectory:
    reply: Any = None
    try:
        while True:
            effect = rollout.send(reply)
            reply = ask(effect) if isinstance(effect, ModelRequest) else session.call(effect.name, effect.arguments)
    except StopIteration as done:
        return done.value


async def _drive_async(
    rollout: Rollout, session: EnvironmentSession, ask: Callable[[ModelRequest], Awaitable[Answer]]
) -> Trajectory:
    reply: Any = None
    try:
        while True:
            effect = rollout.send(reply)
            if isinstance(effect, ModelRequest):
                reply = await ask(effect)
            else:
                reply = await asyncio.to_thread(session.call, effect.name, effect.arguments)
    except StopIteration as done:
        return done.value


def miss_message(generator: RowGenerator, case: Case, miss: ReplayMiss, answers: RecordedAnswers) -> str:
    """Why a replay cannot go on: nothing recorded, too few rollouts, or a divergence."""
    cassette, n, mode = answers.cassette, case.settings.n, generator.config.record_mode
    fix = generator._miss_fix(case, cassette)
    if not cassette.exists:
        return f"no cassette {cassette.path} (record mode {mode}); {fix}"
    request = miss.request
    nearest = cassette.nearest(answers.url, request.body)
    if request.turn == 0 and request.step == 0:
        if miss.variant > 0:
            return f"{miss.variant} of {n} rollouts recorded for row {case.row_id}; {fix} (cassette {cassette.path})"
        return (
            f"no recorded request in {cassette.path} matches the first request of row {case.row_id}'s rollout "
            f"(record mode {mode}); {fix}.\nNearest recorded request, as a diff:\n{nearest}"
        )
    return (
        f"row {case.row_id}, rollout {miss.variant}: replay diverged at turn {request.turn}, step {request.step}: "
        f"this request is not in {cassette.path}, although the rollout's earlier requests were. The environment "
        "(or the suite's prompt or tools) answered differently from the recording; make the environment "
        "deterministic, or re-record the row with --record-mode=all.\n"
        f"Nearest recorded request, as a diff (recorded -> now):\n{nearest}"
    )


def replay(case: Case, cassette: RowCassette, url: str, base_body: dict[str, Any]) -> list[Trajectory]:
    """The row's n rollouts from its cassette, one after another. Raises ReplayMiss when a
    request is not recorded."""
    answers = RecordedAnswers(cassette, url)
    trajectories = []
    for variant in range(case.settings.n):
        session = _start(case)

        def ask(request: ModelRequest, variant: int = variant) -> Answer:
            answer = answers.take(request.body)
            if answer is None:
                raise ReplayMiss(request, variant)
            return answer

        trajectories.append(_drive(play(case, session, base_body), session, ask))
    return trajectories


def replay_or_none(
    generator: RowGenerator, case: Case, cassette: RowCassette, base_body: dict[str, Any], may_record: bool
) -> list[Trajectory] | None:
    """Replayed trajectories; None when recording may fill the gap; RowError otherwise."""
    url = generator._url(case)
    try:
        return replay(case, cassette, url, base_body)
    except ReplayMiss as miss:
        if may_record:
            return None
        raise errors.ReplayMiss(miss_message(generator, case, miss, RecordedAnswers(cassette, url))) from None
    except CassetteError as exc:
        raise RowError(str(exc)) from exc


async def record(
    generator: RowGenerator, case: Case, cassette: RowCassette, base_body: dict[str, Any], may_record: bool
) -> tuple[list[Trajectory], list[Interaction], BaseException | None]:
    """The row's n rollouts, concurrently: answers recorded earlier are reused, the rest are asked
    of the model. Returns the trajectories, the new interactions (in order) and the first error."""
    answers = RecordedAnswers(cassette, generator._url(case))
    client: ChatClient | None = None
    new: list[list[Interaction]] = [[] for _ in range(case.settings.n)]

    async def one(variant: int) -> Trajectory:
        nonlocal client
        session = _start(case)
        clock = [0.0, time.monotonic()]  # elapsed at the last replayed answer, and when it was taken

        async def ask(request: ModelRequest) -> Answer:
            nonlocal client
            answer = answers.take(request.body)
            if answer is not None:
                clock[:] = [answer.elapsed, time.monotonic()]
                return answer
            if not may_record:
                raise errors.ReplayMiss(miss_message(generator, case, ReplayMiss(request, variant), answers))
            if client is None:
                client = generator._client(case)
                generator._check_key(client.settings)
            exchange = await generator._call(client, request.body)
            elapsed = clock[0] + time.monotonic() - clock[1]
            exchange.response_headers[ELAPSED_HEADER] = f"{elapsed:.3f}"
            new[variant].append(exchange)
            choices = exchange.choices
            return Answer(_to_message(choices[0] if choices else {}, exchange.uri), elapsed)

        return await _drive_async(play(case, session, base_body), session, ask)

    results = await asyncio.gather(*(one(v) for v in range(case.settings.n)), return_exceptions=True)
    recorded = [exchange for per_variant in new for exchange in per_variant]
    errors = [r for r in results if isinstance(r, BaseException)]
    trajectories = [r for r in results if isinstance(r, Trajectory)]
    return trajectories, recorded, errors[0] if errors else None
