"""Running one sandboxed command from outside: its wall time, its streams, its end and its status.

The caller waits on the process, not on its pipes, and keeps at most `output_bytes` of each
stream, discarding the rest. On expiry the whole tree is killed (the sandbox's pid namespace dies
with its pid 1) and the verdict waits for that pid 1 to be gone, so no daemon outlives it.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from pytest_rewardkit.sandbox.cgroups import Cgroup
from pytest_rewardkit.sandbox.models import Limits, RunResult


class Status(NamedTuple):
    """What bubblewrap reported on `--json-status-fd`: the sandbox's pid 1 (as this process's pid
    namespace numbers it) and the program's exit status, present only when the program was started."""

    child_pid: int | None
    exit_code: int | None


def supervise(
    argv: list[str],
    popen: dict[str, Any],
    stdin: bytes,
    limits: Limits,
    cgroup: Cgroup | None,
    status_read: int,
    hand_over: Sequence[int],
) -> tuple[RunResult, Status]:
    """Run `argv` to its end or its wall time. Closes the fds in `hand_over` (the write end of the
    status pipe, the program's own) once the run has started: only the run holds them then."""
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            **popen,
        )
    finally:
        for fd in hand_over:
            os.close(fd)
    # The clock starts once the first stage runs: a pre-exec waiting for the kernel (see
    # `kernel`) is not the program's time.
    start = time.monotonic()
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    streams = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
    truncated = dict.fromkeys(streams, False)
    pidfd = os.pidfd_open(proc.pid)
    pending = memoryview(stdin)
    selector = selectors.DefaultSelector()
    for fd in streams:
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ)
    selector.register(pidfd, selectors.EVENT_READ)
    stdin_fd = proc.stdin.fileno()
    if pending:
        os.set_blocking(stdin_fd, False)
        selector.register(stdin_fd, selectors.EVENT_WRITE)
    else:
        proc.stdin.close()
    deadline = start + limits.wall_time
    exited = False
    try:
        while not exited and time.monotonic() < deadline:
            for key, _ in selector.select(deadline - time.monotonic()):
                fd = int(key.fd)
                if fd == pidfd:
                    exited = True
                elif fd == stdin_fd:
                    try:
                        written = os.write(fd, pending[:65536])
                    except BrokenPipeError:
                        written = len(pending)
                    pending = pending[written:]
                    if not pending:
                        selector.unregister(fd)
                        proc.stdin.close()
                elif not _read_some(fd, streams[fd], limits.output_bytes):
                    selector.unregister(fd)
                if fd in streams and len(streams[fd]) >= limits.output_bytes:
                    truncated[fd] = True
        # Also on a normal exit: in `process` mode, children left in the group are ended here.
        _kill_tree(proc, cgroup)
        proc.wait()
        status = _status(status_read)
        _wait_gone(status.child_pid, cgroup)
        for fd, buf in streams.items():
            # What the run wrote before it ended; never wait for end-of-file, which a process
            # being killed may hold off.
            while _read_some(fd, buf, limits.output_bytes, drain=True):
                truncated[fd] = truncated[fd] or len(buf) >= limits.output_bytes
    finally:
        selector.close()
        os.close(pidfd)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if not stream.closed:
                stream.close()
    out, err = (bytes(buf).decode("utf-8", errors="replace") for buf in streams.values())
    out_fd, err_fd = streams
    result = RunResult(
        exit_code=(proc.returncode if status.exit_code is None else status.exit_code) if exited else None,
        stdout=out,
        stderr=err,
        stdout_truncated=truncated[out_fd],
        stderr_truncated=truncated[err_fd],
        timed_out=not exited,
        limit_hit=cgroup.limit_hit() if cgroup is not None else None,
        elapsed=time.monotonic() - start,
    )
    return result, status


def _read_some(fd: int, buf: bytearray, cap: int, drain: bool = False) -> bool:
    """Append what `fd` has to `buf`, up to `cap` bytes, discarding the rest. False at
    end-of-file (or, when draining, when nothing is left to read)."""
    try:
        chunk = os.read(fd, 65536)
    except BlockingIOError:
        return not drain
    except OSError:
        return False
    if not chunk:
        return False
    room = cap - len(buf)
    if room > 0:
        buf += chunk[:room]
    return True


def _written(fd: int) -> bytes:
    """What bubblewrap wrote to its status pipe.

    Called once bubblewrap has exited, so its report is whole: reading stops at what the pipe
    holds instead of waiting for end-of-file, which any process the caller forked while the run
    was starting (a thread's `fork` copies the open write end) would hold off until it exits."""
    os.set_blocking(fd, False)
    data = b""
    try:
        while chunk := os.read(fd, 4096):
            data += chunk
    except OSError:  # BlockingIOError: nothing more was written
        pass
    return data


def _status(fd: int) -> Status:
    """Bubblewrap's `--json-status-fd` report: one JSON object a line, `child-pid` first, then
    `exit-code` (shell encoding: 128 + signal) once the program it started has ended."""
    child_pid = exit_code = None
    for line in _written(fd).splitlines():
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            report = json.loads(line)
            if "child-pid" in report:
                child_pid = int(report["child-pid"])
            if "exit-code" in report:
                exit_code = int(report["exit-code"])
    return Status(child_pid, exit_code)


def _kill_tree(proc: subprocess.Popen[bytes], cgroup: Cgroup | None) -> None:
    # The outermost process leads its own session; the stages below it die with it
    # (--die-with-parent), and with the sandbox's pid 1 goes the run's pid namespace.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    if cgroup is not None:
        cgroup.kill()


def _wait_gone(pid: int | None, cgroup: Cgroup | None, timeout: float = 5.0) -> None:
    """Wait until the sandbox's pid 1 has exited: its pid namespace (and so every process of the
    run, daemons included) is torn down before it is reported gone.

    Bubblewrap's monitor leaves without waiting for it, so it ends an orphan, and an orphan goes to
    the nearest subreaper or to the pid namespace's init: this process, when it is a container's pid
    1. It is reaped here then (through its pidfd, so never another process that reused its pid):
    left a zombie, it would hold its pid and its keyring, and runs would stop at the user's quota."""
    if pid is None:
        return
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(pidfd, selectors.EVENT_READ)
            if not selector.select(timeout) and cgroup is not None:
                cgroup.kill()
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
    finally:
        os.close(pidfd)
