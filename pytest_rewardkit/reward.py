"""The `@reward_function` decorator: one calling convention for every reward."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import importlib
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from pytest_rewardkit.errors import validation_problems
from pytest_rewardkit.models import EvaluateResult, Message

if TYPE_CHECKING:
    from pytest_rewardkit.resolver import Resolver

MessagesLike = Sequence[Message | dict[str, Any]]
# Turns a suite's params for a reward into what its calls receive, once per suite: validated, with
# sub-rewards resolved beside the suite. Raises RewardError for params the reward refuses.
Prepare = Callable[[dict[str, Any], "Resolver"], dict[str, Any]]


class RewardFunction:
    """A reward wrapped so that it takes messages in any form and returns an `EvaluateResult`.

    Calling it runs the reward synchronously (an async reward is run to completion);
    `acall` awaits it, which is what the evaluation loop uses.
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        _check_signature(fn)
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.name: str = fn.__name__
        self.is_async = inspect.iscoroutinefunction(fn)
        self.prepare: Prepare | None = None

    def __repr__(self) -> str:
        return f"<reward_function {self.fn.__module__}.{self.fn.__qualname__}>"

    def __call__(self, messages: MessagesLike, ground_truth: Any = None, **kwargs: Any) -> EvaluateResult:
        if not self.is_async:
            return self._coerce(self.fn(to_messages(messages), ground_truth=ground_truth, **kwargs))
        coroutine = self.acall(messages, ground_truth, **kwargs)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(coroutine)
        # Called from async code (an async test, a notebook): the running loop cannot be
        # re-entered, so the reward runs to completion in a loop of its own on a helper thread.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, coroutine).result()

    async def acall(self, messages: MessagesLike, ground_truth: Any = None, **kwargs: Any) -> EvaluateResult:
        if not self.is_async:
            # On a worker thread: a CPU-bound grader must not stall the caller's event loop.
            return await asyncio.to_thread(self.__call__, messages, ground_truth, **kwargs)
        outcome: Awaitable[Any] = self.fn(to_messages(messages), ground_truth=ground_truth, **kwargs)
        return self._coerce(await outcome)

    def preparer(self, prepare: Prepare) -> Prepare:
        """Register, as a decorator, how this reward's params are prepared once per suite (see
        `pytest_rewardkit.resolver`): a composite resolves its components there."""
        self.prepare = prepare
        return prepare

    def _coerce(self, value: Any) -> EvaluateResult:
        if isinstance(value, EvaluateResult):
            return value
        if isinstance(value, dict):
            try:
                return EvaluateResult.model_validate(value)
            except ValidationError as exc:
                problems = "; ".join(validation_problems(exc))
                raise TypeError(
                    f"reward function {self.name!r} ({self.location}) returned a dict that is not an "
                    f"EvaluateResult: {problems}"
                ) from exc
        raise TypeError(
            f"reward function {self.name!r} ({self.location}) returned {type(value).__name__}; "
            "it must return an EvaluateResult or a dict with at least 'score'"
        )

    @property
    def location(self) -> str:
        """`file:line` of the user's function, for messages about what it returned."""
        code = getattr(inspect.unwrap(self.fn), "__code__", None)
        return f"{code.co_filename}:{code.co_firstlineno}" if code is not None else self.fn.__module__

    def __reduce__(self) -> tuple[Callable[[str], Any], tuple[str]]:
        # Pickled by reference (TRL and multiprocessing pickle rewards): the module attribute is
        # this wrapper, so pickling the raw function by name would find a different object.
        return import_object, (f"{self.fn.__module__}:{self.fn.__qualname__}",)


def _check_signature(fn: Callable[..., Any]) -> None:
    if not callable(fn):
        raise TypeError(f"@reward_function needs a function, got {type(fn).__name__}")
    params = inspect.signature(fn).parameters.values()
    name = getattr(fn, "__qualname__", repr(fn))
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        raise TypeError(
            f"reward function {name!r} must accept **kwargs: rows pass their extra fields as keyword "
            "arguments. Write it as def "
            f"{getattr(fn, '__name__', 'fn')}(messages, ground_truth=None, **kwargs)."
        )
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not positional:
        raise TypeError(f"reward function {name!r} must take the messages as its first argument")


def reward_function(fn: Callable[..., Any]) -> RewardFunction:
    """Declare `fn(messages, ground_truth=None, **kwargs)` (sync or async) as a reward function."""
    if isinstance(fn, RewardFunction):
        return fn
    return RewardFunction(fn)


def to_messages(messages: MessagesLike) -> list[Message]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise TypeError(f"messages must be a list of messages, got {type(messages).__name__}")
    return [m if isinstance(m, Message) else Message.model_validate(m) for m in messages]


def split_import_path(path: str) -> tuple[str, list[str]]:
    """`package.module:attr.path` as its module and attribute names; ValueError if malformed."""
    module_name, sep, attr_path = path.partition(":")
    if not sep or not module_name or not attr_path:
        raise ValueError(f"{path!r} is not an import path of the form 'module:function' (or 'module:Class')")
    return module_name, attr_path.split(".")


def import_object(path: str) -> Any:
    """Import `package.module:attribute.path` from sys.path (how a pickled reward finds itself;
    names in a suite resolve with `pytest_rewardkit.resolver`, which also looks beside the suite)."""
    module_name, attrs = split_import_path(path)
    obj: Any = importlib.import_module(module_name)
    for attr in attrs:
        obj = getattr(obj, attr)
    return obj
