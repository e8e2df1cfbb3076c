"""An asyncio event loop running on a daemon thread, for synchronous code that drives async work:
the generation runner (recording overlaps while pytest runs items one at a time) and the fake
server's `start_in_thread()`. Internal."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """Starts its loop at construction; `stop()` ends it (idempotent)."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule `coroutine` on the loop; the future is safe to wait on from any other thread."""
        if self.loop.is_closed() or not self._thread.is_alive():
            coroutine.close()  # else it is reported as "never awaited", far from this call
            raise RuntimeError(f"loop thread {self._thread.name!r} is stopped: nothing can run on it any more")
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coroutine` on the loop and wait for its result (TimeoutError after `timeout`)."""
        return self.submit(coroutine).result(timeout)

    def stop(self, timeout: float | None = None) -> None:
        """Cancel the loop's tasks and wait for them to unwind, stop the loop, wait for its thread
        (up to `timeout`) and close the loop: no task is left to be destroyed while pending (an
        interrupted run, a server handler still sleeping for a client that went away)."""
        if self.loop.is_closed():
            return
        if self._thread.is_alive():  # else an earlier stop() timed out waiting, and only closing is left
            # A task that ignores cancellation must not hang the run: the loop is stopped anyway.
            with contextlib.suppress(concurrent.futures.TimeoutError):
                self.run(cancel_other_tasks(), timeout)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()


async def cancel_other_tasks() -> None:
    """Cancel every other task of the running loop and wait until they have unwound."""
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
