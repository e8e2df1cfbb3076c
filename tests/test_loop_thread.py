"""The event loop on a daemon thread that synchronous code (the generation runner, the fake server's
`start_in_thread()`) drives async work with: results and exceptions come back to the caller, one
thread serves every call, `stop()` leaves no thread and no pending task, and a stopped loop says so."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import warnings
from collections.abc import Iterator

import pytest

from pytest_rewardkit.loop_thread import LoopThread


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    runner = LoopThread("rk-test-loop")
    yield runner
    runner.stop(timeout=5)


def threads_named(name: str) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == name]


async def answer(value: int) -> int:
    await asyncio.sleep(0)
    return value * 2


async def fail() -> None:
    await asyncio.sleep(0)
    raise ValueError("grader exploded")


def test_run_returns_the_coroutines_result_and_raises_its_exception(loop_thread: LoopThread) -> None:
    assert loop_thread.run(answer(21)) == 42
    assert loop_thread.submit(answer(5)).result(timeout=5) == 10
    with pytest.raises(ValueError, match="grader exploded"):
        loop_thread.run(fail())
    assert loop_thread.run(answer(1)) == 2  # an exception does not break the loop


def test_run_gives_up_after_its_timeout(loop_thread: LoopThread) -> None:
    with pytest.raises(TimeoutError):
        loop_thread.run(asyncio.sleep(30), timeout=0.05)


def test_every_call_runs_on_the_same_one_thread_and_loop(loop_thread: LoopThread) -> None:
    async def where() -> tuple[int, asyncio.AbstractEventLoop]:
        return threading.get_ident(), asyncio.get_running_loop()

    seen = {loop_thread.run(where()) for _ in range(5)}
    seen |= {loop_thread.submit(where()).result(timeout=5) for _ in range(5)}
    ((ident, loop),) = seen
    (thread,) = threads_named("rk-test-loop")
    assert ident == thread.ident != threading.get_ident()
    assert loop is loop_thread.loop and thread.daemon


def test_stop_cancels_pending_tasks_and_leaves_no_thread(caplog: pytest.LogCaptureFixture) -> None:
    runner = LoopThread("rk-test-stop")
    unwound: list[str] = []

    async def forever(label: str) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            unwound.append(label)

    async def spawn() -> None:
        # A task the loop holds that nobody waits on: what an interrupted run leaves behind.
        asyncio.get_running_loop().create_task(forever("spawned"))

    waited = runner.submit(forever("submitted"))
    runner.run(spawn())
    runner.run(asyncio.sleep(0.01))  # both tasks reach their sleep
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        runner.stop(timeout=5)
        del waited
        gc.collect()
    assert sorted(unwound) == ["spawned", "submitted"]
    assert threads_named("rk-test-stop") == []
    assert runner.loop.is_closed()
    assert "Task was destroyed but it is pending" not in caplog.text
    assert caplog.records == []


def test_stop_is_idempotent_and_bounded_by_a_task_that_ignores_cancellation() -> None:
    runner = LoopThread("rk-test-stubborn")
    release = threading.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                continue

    runner.submit(stubborn())
    try:
        runner.stop(timeout=0.2)  # returns although the task never ends
    finally:
        release.set()
    for _ in range(200):
        if not threads_named("rk-test-stubborn"):
            break
        threading.Event().wait(0.01)
    assert threads_named("rk-test-stubborn") == []
    runner.stop(timeout=0.2)


def test_a_call_after_stop_is_a_clear_error_and_leaves_no_unawaited_coroutine() -> None:
    runner = LoopThread("rk-test-closed")
    runner.stop(timeout=5)
    runner.stop(timeout=5)  # idempotent
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError, match="loop thread 'rk-test-closed' is stopped"):
            runner.run(answer(1), timeout=1)
        with pytest.raises(RuntimeError, match="loop thread 'rk-test-closed' is stopped"):
            runner.submit(answer(1))
        gc.collect()
    assert [str(w.message) for w in caught] == []
