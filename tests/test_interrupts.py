"""The held-back Ctrl-C: a SIGINT inside the block arrives after it, not in its middle."""

from __future__ import annotations

import os
import signal

import pytest

from pytest_rewardkit.interrupts import sigint_held


def test_a_sigint_inside_the_block_is_raised_after_the_whole_block() -> None:
    steps = []
    with pytest.raises(KeyboardInterrupt), sigint_held():
        os.kill(os.getpid(), signal.SIGINT)
        steps.append("after the signal")
    assert steps == ["after the signal"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_ignored_sigint_stays_ignored() -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with sigint_held():
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_without_a_sigint_the_block_runs_and_the_handler_is_put_back() -> None:
    with sigint_held():
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
