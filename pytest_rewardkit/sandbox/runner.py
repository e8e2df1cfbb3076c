"""`Sandbox`: one run of untrusted Python, in bubblewrap or (opt-in, weaker) as a plain process."""

from __future__ import annotations

import functools
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

from pytest_rewardkit.sandbox import bubblewrap, kernel, models
from pytest_rewardkit.sandbox.bubblewrap import BWRAP, SANDBOX_UID
from pytest_rewardkit.sandbox.cgroups import Cgroup
from pytest_rewardkit.sandbox.models import Limits, RunResult, SandboxMode
from pytest_rewardkit.sandbox.supervision import supervise


class Sandbox:
    """Runs a Python program under `Limits`. Safe to share between threads."""

    def __init__(self, mode: SandboxMode = "bwrap", bwrap: str = BWRAP, uid: int = SANDBOX_UID) -> None:
        if mode not in ("bwrap", "process"):
            raise ValueError(f"sandbox mode must be 'bwrap' or 'process', got {mode!r}")
        self.mode = mode
        self.bwrap = bwrap
        self.uid = uid

    def check(self) -> None:
        """Raise `SandboxUnavailable` unless this sandbox can run code here (probed once per setup)."""
        if self.mode == "process":
            # The program is this process's own child: while SIGCHLD is ignored the kernel discards
            # its exit status, and a failing program would pass for one that exited with 0.
            if _sigchld_ignored():
                raise models.ExitStatusUnavailable(
                    "cannot run model code with `sandbox: process` while this process ignores SIGCHLD (the "
                    "kernel then discards exit statuses, so failures would pass for success); restore it with "
                    "`signal.signal(signal.SIGCHLD, signal.SIG_DFL)`, or use the default `sandbox: bwrap`, "
                    "which takes the status from bubblewrap"
                )
            _warn_weak_once(self.uid)
            return
        try:
            kernel.filter_program()
        except kernel.SeccompUnavailable as exc:
            raise models.SandboxUnavailable(f"cannot run model code safely: {exc}") from None
        problem = bubblewrap.probe(self.bwrap, self.uid, lambda: self._run("", "", {}, Limits(wall_time=30)))
        if problem:
            raise models.SandboxUnavailable(problem)

    def run(
        self,
        script: str,
        stdin: str = "",
        files: Mapping[str, str] | None = None,
        limits: Limits | None = None,
        pass_fds: Sequence[int] = (),
    ) -> RunResult:
        """Run `script` as `__main__` in a fresh working directory holding `files` (name -> text).
        The program inherits `pass_fds` under the same numbers; the run owns them (they are closed
        here once it has started, or failed to), so their other ends see it end.

        Raises `SandboxUnavailable` when code cannot run safely here, and its `SandboxFailed` when
        the sandbox did not start this program: neither is a verdict on the program."""
        try:
            for name in files or {}:
                if "/" in name or name in ("", ".", "..", "__main__.py"):
                    raise ValueError(f"sandbox file name {name!r} must be a plain file name other than __main__.py")
            self.check()
        except BaseException:
            for fd in pass_fds:
                os.close(fd)
            raise
        return self._run(script, stdin, dict(files or {}), limits or Limits(), tuple(pass_fds))

    def _run(
        self, script: str, stdin: str, files: dict[str, str], limits: Limits, pass_fds: tuple[int, ...] = ()
    ) -> RunResult:
        files = {**files, "__main__.py": script}
        cgroup = Cgroup.create(limits)
        workdir = None
        fds: list[int] = []
        status_read, status_write = os.pipe()
        try:
            try:
                if self.mode == "bwrap":
                    fds = _memfds(files)
                    named = dict(zip(files, fds, strict=True))
                    fds.append(kernel.filter_fd())
                    argv = bubblewrap.argv(self.bwrap, self.uid, named, status_write, fds[-1], limits)
                    cwd, env = "/", {"PATH": "/usr/bin:/bin"}
                else:
                    workdir = tempfile.mkdtemp(prefix="rewardkit-run-")
                    argv, cwd, env = self._process_argv(workdir, files, limits)
                pre_exec = kernel.pre_exec(cgroup.procs_files if cgroup is not None else [])
            except BaseException:
                for fd in (status_write, *pass_fds):
                    os.close(fd)
                raise
            hand_over = (status_write, *pass_fds)
            popen = {"cwd": cwd, "env": env, "pass_fds": (*fds, *hand_over), "preexec_fn": pre_exec}
            try:
                result, status = supervise(argv, popen, stdin.encode(), limits, cgroup, status_read, hand_over)
            except subprocess.SubprocessError as exc:  # pre_exec failed: nothing of the run started
                raise models.SandboxFailed(f"the sandbox failed before starting the program ({exc})") from exc
        finally:
            for fd in (*fds, status_read):
                os.close(fd)
            if cgroup is not None:
                cgroup.remove()
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)
        if self.mode == "bwrap" and not result.timed_out and status.exit_code is None:
            # Bubblewrap reports an exit status only for a program it started.
            detail = " ".join(result.stderr.split())[-300:] or f"exit status {result.exit_code}"
            raise models.SandboxFailed(f"the sandbox failed before starting the program ({detail})")
        return result

    def _process_argv(
        self, workdir: str, files: dict[str, str], limits: Limits
    ) -> tuple[list[str], str, dict[str, str]]:
        _warn_weak_once(self.uid)
        for name, text in files.items():
            Path(workdir, name).write_text(text, encoding="utf-8")
        env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"}
        # Outside a user namespace RLIMIT_NPROC counts every process of the uid on the machine.
        command = bubblewrap.command(limits, workdir, limit_processes=_drops_to(self.uid))
        if not _drops_to(self.uid):
            return command, workdir, env
        os.chown(workdir, self.uid, self.uid)
        return [*bubblewrap.setpriv(self.uid), *command], workdir, env


def _sigchld_ignored() -> bool:
    """Whether SIGCHLD is ignored, as the kernel sees it (also when set outside Python)."""
    status = Path("/proc/self/status").read_text()
    ignored = int(status.partition("SigIgn:")[2].split()[0], 16)
    return bool(ignored & 1 << (signal.SIGCHLD - 1))


@functools.cache
def _drops_to(uid: int) -> bool:
    """Whether `process` mode runs code as `uid`: only root to whom `uid` is mapped can switch,
    and only to a uid that can reach the interpreter (a prefix under /root, mode 0700, is out of
    its reach)."""
    if bubblewrap.identity(uid) != "drop":
        return False
    executable, prefix = bubblewrap.interpreter()
    reachable = [Path(executable), *Path(executable).parents, Path(prefix, "lib")]
    return all(path.stat().st_mode & stat.S_IXOTH for path in reachable)


def _memfds(files: dict[str, str]) -> list[int]:
    """Each file's text in an anonymous in-memory file that bubblewrap copies into the sandbox."""
    fds = []
    for name, text in files.items():
        fd = os.memfd_create(name, 0)  # not close-on-exec: bubblewrap inherits it
        fds.append(fd)
        os.write(fd, text.encode())
        os.lseek(fd, 0, os.SEEK_SET)
    return fds


_warned = threading.Event()

WEAK_MODE_WARNING = (
    "rewardkit is running model code with `sandbox: process`, WITHOUT bubblewrap. The code gets a scrubbed "
    "environment, a temporary working directory, rlimits (memory, CPU time and file size per process{nproc}) "
    "and a wall-time kill of its process group; {who}. It does NOT protect against: network access (TCP, "
    "UDP, DNS, unix sockets), reading any file that user may read (home, working directory, /etc), other "
    "processes in /proc, filling the disk, memory spread over many processes, or daemons that leave the "
    "process group. Use it only for code you trust; for real isolation install bubblewrap "
    "(Debian/Ubuntu: `apt-get install bubblewrap`) and drop `sandbox: process`."
)


def _warn_weak_once(uid: int) -> None:
    if _warned.is_set():
        return
    _warned.set()
    if _drops_to(uid):
        who, nproc = f"it runs as the unprivileged uid {uid}", ", process count"
    elif bubblewrap.identity(uid) == "namespace-root":
        who, nproc = "it runs as root of this user namespace, which maps no other uid to switch to", ""
    elif os.geteuid() == 0:
        who, nproc = "it runs AS ROOT, since the interpreter is not reachable by an unprivileged uid", ""
    else:
        who, nproc = f"it runs as your own user (uid {os.geteuid()})", ""
    warnings.warn(WEAK_MODE_WARNING.format(nproc=nproc, who=who), models.WeakSandboxWarning, stacklevel=4)
