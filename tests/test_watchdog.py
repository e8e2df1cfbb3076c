"""The reward deadline (watchdog): an overrunning call is interrupted in time, however many calls
with whatever limits came before it (the watching thread is woken only when a deadline comes
earlier than it would wake by itself)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

from pytest_rewardkit.watchdog import CallTimeout, run_with_deadline

T = TypeVar("T")


def overrun(limit: float) -> float:
    """Seconds until a call that would sleep 5 s is interrupted under `limit`."""
    started = time.monotonic()
    with pytest.raises(CallTimeout):
        run_with_deadline(lambda: time.sleep(5), limit)
    return time.monotonic() - started


def napping(value: T, seconds: float) -> Callable[[], T]:
    """A call that sleeps `seconds` (releasing the GIL, so the watching thread gets to run), then returns `value`."""

    def call() -> T:
        time.sleep(seconds)
        return value

    return call


def test_a_short_limit_after_long_ones_interrupts_at_its_own_deadline() -> None:
    # Each call sleeps a little, so that the watching thread settles on the long deadline meanwhile.
    for _ in range(3):
        assert run_with_deadline(napping("done", 0.02), 60) == "done"
    assert 0.2 <= overrun(0.2) < 2


def test_an_overrun_after_many_quick_calls_with_the_same_limit_is_interrupted() -> None:
    for number in range(300):
        assert run_with_deadline(napping(number, 0.001), 0.3) == number
    assert 0.3 <= overrun(0.3) < 2
    # The watchdog still works after it fired.
    assert run_with_deadline(lambda: "after", 0.3) == "after"
    assert 0.3 <= overrun(0.3) < 2
