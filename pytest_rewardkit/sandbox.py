"""Run untrusted Python with limits: the code reward's only way to execute a model's code.

Two modes. `bwrap` (the default) isolates with bubblewrap and refuses to run when bubblewrap is
missing or namespaces are not allowed; `process` is an opt-in, weaker fallback that warns once.

What enforces what in `bwrap` mode:

- **Namespaces** (bubblewrap `--unshare-all`, `--disable-userns`, `--cap-drop ALL`, `--new-session`,
  `--die-with-parent`): no network but a private loopback (TCP, UDP, DNS and abstract unix sockets
  go nowhere), no other process in `/proc`, no capabilities, no nested user namespaces (so no
  uncapped tmpfs can be mounted from inside). The root is a read-only tmpfs holding read-only
  binds of `/usr`, the `/bin`-style links and the interpreter's own prefix; the caller's home,
  working directory, `/etc` and `/run` are absent. The environment is cleared, and bubblewrap itself
  starts with only `PATH`, because its first process's `/proc/1/environ` is readable from inside.
- **Unprivileged uid**: inside bwrap uid 0 is the real root, to whom RLIMIT_NPROC does not apply.
  When the caller is root, an outer bubblewrap (root, mount and pid namespaces only) makes the
  interpreter reachable and drops to `SANDBOX_UID` with `setpriv`; the inner bubblewrap then runs
  unprivileged in its own user namespace. A non-root caller runs the inner bubblewrap as itself.
- **rlimits**, set by a tiny bootstrap before the program's first line: RLIMIT_NPROC (processes and
  threads; counted per user namespace, so per run, not shared with concurrent runs), RLIMIT_AS
  (memory per process), RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_NOFILE, RLIMIT_CORE.
- **cgroup** (when this process's own cgroup is writable and has the memory controller, v2 or v1):
  memory of the whole process tree and the pid count of the run; an OOM kill or the pid cap is
  reported as the limit that was hit. Without it, the tree's memory is bounded by
  max_processes x memory per process.
- **Size-capped tmpfs** for `/tmp` (the working directory, the only writable place) and `/dev/shm`.
- The program sees the standard library only (`-I -S`: no site-packages, no user site, no
  `PYTHON*` variables); this also halves the interpreter's start-up.
- **The caller**: wall time, measured here; on expiry the whole tree is killed (the sandbox's pid
  namespace dies with its first process) and the verdict waits for that first process to be gone,
  so no daemon outlives it. The caller waits on the process, not on its pipes, and keeps at most
  `output_bytes` of each stream, discarding the rest.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

BWRAP = "/usr/bin/bwrap"
SANDBOX_UID = 64_000  # a uid no account uses: its processes can be told apart and hold no files
SandboxMode = Literal["bwrap", "process"]
_DEFAULT_SIGCHLD = ("/usr/bin/env", "--default-signal=CHLD")  # coreutils >= 8.31

INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`, Fedora: `dnf install bubblewrap`), "
    "or opt into the weaker `sandbox: process` mode in the reward's params"
)

# Runs before the program: limits are set by the sandbox's own first Python process, inside the
# run's user namespace, so RLIMIT_NPROC counts this run only.
_BOOT = """\
import resource, runpy, sys
names = ("NPROC", "AS", "CPU", "FSIZE", "NOFILE", "CORE")
for name, value in zip(names, sys.argv[1:7]):
    if int(value) >= 0:
        soft = int(value)
        hard = soft + 1 if name == "CPU" else soft
        resource.setrlimit(getattr(resource, "RLIMIT_" + name), (soft, hard))
sys.argv = sys.argv[7:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


class SandboxUnavailable(RuntimeError):
    """Code cannot be run safely here; the message says how to fix that."""


class ExitStatusUnavailable(SandboxUnavailable):
    """`sandbox: process` cannot learn the program's exit status: this process ignores SIGCHLD."""


class WeakSandboxWarning(UserWarning):
    """`sandbox: process` is in use: code runs without namespaces."""


class Limits(BaseModel):
    """Per-run limits. Every field holds for the whole run (all its processes) unless noted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    wall_time: float = Field(default=10.0, gt=0, description="seconds until the whole tree is killed")
    cpu_time: int | None = Field(default=None, ge=1, description="CPU seconds per process; default: wall time")
    memory_mb: int = Field(default=512, ge=32, description="whole tree with a cgroup, else per process")
    max_processes: int = Field(default=32, ge=4, description="processes and threads")
    disk_mb: int = Field(default=64, ge=1, description="size of each writable tmpfs (/tmp, /dev/shm)")
    output_bytes: int = Field(default=1 << 20, ge=1024, description="kept per stream; the rest is discarded")
    open_files: int = Field(default=256, ge=16)


class RunResult(BaseModel):
    """What one run did, as seen from outside."""

    exit_code: int | None = Field(description="None when the run was killed for overrunning its wall time")
    stdout: str
    stderr: str
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    timed_out: bool = False
    limit_hit: Literal["memory", "processes"] | None = Field(default=None, description="as reported by the cgroup")
    elapsed: float

    @property
    def signal(self) -> int | None:
        """The signal that ended the program (bwrap reports it as 128 + number)."""
        if self.exit_code is not None and 128 < self.exit_code < 128 + 65:
            return self.exit_code - 128
        if self.exit_code is not None and self.exit_code < 0:
            return -self.exit_code
        return None


class _Cgroup:
    """A cgroup for one run, below this process's own (v2, or v1 memory + pids hierarchies)."""

    def __init__(self, dirs: list[Path], version: int) -> None:
        self.dirs = dirs
        self.version = version

    @classmethod
    def create(cls, limits: Limits) -> _Cgroup | None:
        name = f"rewardkit-{uuid.uuid4().hex[:12]}"
        memory = str(limits.memory_mb << 20)
        pids = str(limits.max_processes + 4)  # bubblewrap's own processes are in the cgroup too
        try:
            own = Path("/proc/self/cgroup").read_text().splitlines()
        except OSError:
            return None
        v1 = {parts[1]: parts[2] for line in own if len(parts := line.split(":", 2)) == 3}
        if Path("/sys/fs/cgroup/cgroup.controllers").exists() and "" in v1:
            made = _make_dir(Path("/sys/fs/cgroup", v1[""].lstrip("/"), name), {"memory.max": memory})
            if made is None:
                return None
            _try_write(made / "memory.swap.max", "0")
            _try_write(made / "pids.max", pids)
            return cls([made], 2)
        if "memory" not in v1:
            return None
        memory_dir = _make_dir(
            Path("/sys/fs/cgroup/memory", v1["memory"].lstrip("/"), name), {"memory.limit_in_bytes": memory}
        )
        if memory_dir is None:
            return None
        _try_write(memory_dir / "memory.memsw.limit_in_bytes", memory)
        dirs = [memory_dir]
        if "pids" in v1:
            pids_dir = _make_dir(Path("/sys/fs/cgroup/pids", v1["pids"].lstrip("/"), name), {"pids.max": pids})
            if pids_dir is not None:
                dirs.append(pids_dir)
        return cls(dirs, 1)

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    def limit_hit(self) -> Literal["memory", "processes"] | None:
        memory_events = "memory.events" if self.version == 2 else "memory.oom_control"
        if _counter(self.dirs[0] / memory_events, "oom_kill"):
            return "memory"
        if any(_counter(d / "pids.events", "max") for d in self.dirs):
            return "processes"
        return None

    def kill(self) -> None:
        if self.version == 2 and _try_write(self.dirs[0] / "cgroup.kill", "1"):
            return
        for d in self.dirs:
            for pid in _read_pids(d / "cgroup.procs"):
                _kill(pid)

    def remove(self) -> None:
        deadline = time.monotonic() + 2.0
        for d in self.dirs:
            while True:
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    # Exiting processes leave the cgroup a moment after their parent has seen them go.
                    if time.monotonic() > deadline:
                        break
                    self.kill()
                    time.sleep(0.005)


def _make_dir(path: Path, settings: dict[str, str]) -> Path | None:
    try:
        path.mkdir()
    except OSError:
        return None
    for file, value in settings.items():
        if not _try_write(path / file, value):
            path.rmdir()
            return None
    return path


def _try_write(path: Path, value: str) -> bool:
    try:
        path.write_text(value)
    except OSError:
        return False
    return True


def _counter(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _read_pids(path: Path) -> list[int]:
    try:
        return [int(p) for p in path.read_text().split()]
    except (OSError, ValueError):
        return []


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@functools.cache
def _root_links() -> tuple[str, ...]:
    """Bubblewrap arguments that mirror the host's `/bin`, `/lib*`, `/sbin` (links or directories)."""
    args: list[str] = []
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/", name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    return tuple(args)


def _interpreter() -> tuple[str, str]:
    """The real interpreter (not a venv's link to it) and its prefix, which holds the stdlib."""
    return os.path.realpath(sys.executable), os.path.realpath(sys.base_prefix)


def _system_binds() -> list[str]:
    _, prefix = _interpreter()
    args = ["--ro-bind", "/usr", "/usr", *_root_links()]
    if not prefix.startswith("/usr/"):
        args += ["--ro-bind", prefix, prefix]
    return args


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
                raise ExitStatusUnavailable(
                    "cannot run model code with `sandbox: process` while this process ignores SIGCHLD (the "
                    "kernel then discards exit statuses, so failures would pass for success); restore it with "
                    "`signal.signal(signal.SIGCHLD, signal.SIG_DFL)`, or use the default `sandbox: bwrap`, "
                    "which takes the status from bubblewrap"
                )
            _warn_weak_once(self.uid)
            return
        problem = _probe(self.bwrap, self.uid, os.geteuid())
        if problem:
            raise SandboxUnavailable(problem)

    def run(
        self,
        script: str,
        stdin: str = "",
        files: Mapping[str, str] | None = None,
        limits: Limits | None = None,
    ) -> RunResult:
        """Run `script` as `__main__` in a fresh working directory holding `files` (name -> text)."""
        self.check()
        return self._run(script, stdin, dict(files or {}), limits or Limits())

    def _run(self, script: str, stdin: str, files: dict[str, str], limits: Limits) -> RunResult:
        files = {**files, "__main__.py": script}
        for name in files:
            if "/" in name or name in ("", ".", ".."):
                raise ValueError(f"sandbox file name {name!r} must be a plain file name")
        cgroup = _Cgroup.create(limits)
        workdir = None
        fds: list[int] = []
        info_read, info_write = os.pipe()
        status_read, status_write = os.pipe()
        try:
            try:
                if self.mode == "bwrap":
                    fds = _memfds(files)
                    argv = self._bwrap_argv(dict(zip(files, fds, strict=True)), info_write, status_write, limits)
                    cwd, env = "/", {"PATH": "/usr/bin:/bin"}
                else:
                    workdir = tempfile.mkdtemp(prefix="rewardkit-run-")
                    argv, cwd, env = self._process_argv(workdir, files, limits)
                if cgroup is not None:
                    # Join the cgroup before exec, so that every later fork is born inside it.
                    join = 'for f; do [ "$f" = -- ] && break; echo $$ > "$f"; shift; done; shift; exec "$@"'
                    argv = ["/bin/sh", "-c", join, "sh", *cgroup.procs_files, "--", *argv]
            except BaseException:
                os.close(info_write)
                os.close(status_write)
                raise
            popen = {"cwd": cwd, "env": env, "pass_fds": (*fds, info_write, status_write)}
            pipes = _Pipes(info_read, info_write, status_read, status_write)
            return _supervise(argv, popen, stdin.encode(), limits, cgroup, pipes)
        finally:
            for fd in (*fds, info_read, status_read):
                os.close(fd)
            if cgroup is not None:
                cgroup.remove()
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)

    def _command(self, limits: Limits, workdir: str) -> list[str]:
        executable, _ = _interpreter()
        # Outside a user namespace RLIMIT_NPROC counts every process of the uid on the machine.
        nproc = limits.max_processes if self.mode == "bwrap" or _drops_to(self.uid) else -1
        rlimits = [
            nproc,
            limits.memory_mb << 20,
            limits.cpu_time or max(1, round(limits.wall_time + 0.5)),
            limits.disk_mb << 20,
            limits.open_files,
            0,
        ]
        return [executable, "-I", "-S", "-X", "utf8", "-c", _BOOT, *map(str, rlimits), f"{workdir}/__main__.py"]

    def _bwrap_argv(self, files: dict[str, int], info_fd: int, status_fd: int, limits: Limits) -> list[str]:
        file_args = [arg for name, fd in files.items() for arg in ("--file", str(fd), f"/tmp/{name}")]
        size = str(limits.disk_mb << 20)
        inner = [
            self.bwrap,
            # The program's own exit status, from the bubblewrap that runs it: its outer stages'
            # statuses (and this process's wait) say nothing when the caller ignores SIGCHLD.
            "--json-status-fd",
            str(status_fd),
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            *_system_binds(),
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--size",
            size,
            "--tmpfs",
            "/dev/shm",
            "--remount-ro",
            "/dev",
            "--size",
            size,
            "--tmpfs",
            "/tmp",
            *file_args,
            "--remount-ro",
            "/",
            "--chdir",
            "/tmp",
            "--hostname",
            "sandbox",
            "--clearenv",
            "--setenv",
            "PATH",
            "/usr/bin:/bin",
            "--setenv",
            "HOME",
            "/tmp",
            "--setenv",
            "TMPDIR",
            "/tmp",
            "--setenv",
            "LANG",
            "C.UTF-8",
            "--",
            *self._command(limits, "/tmp"),
        ]
        # A SIGCHLD ignored by the caller is inherited: bubblewrap would never learn that its child
        # ended (the run hangs to its wall time) and the program's own `wait`s would fail.
        if os.geteuid() != 0:
            return [*_DEFAULT_SIGCHLD, inner[0], "--info-fd", str(info_fd), *inner[1:]]
        # Root cannot be limited, so an outer root bubblewrap prepares a view of the filesystem in
        # which the interpreter is reachable (its prefix may sit under /root, mode 0700) and drops
        # to the sandbox uid; the inner bubblewrap then builds the real sandbox unprivileged.
        _, prefix = _interpreter()
        parents = [str(p) for p in reversed(Path(prefix).parents) if str(p) != "/"]
        outer = [self.bwrap, "--info-fd", str(info_fd), "--unshare-pid", "--die-with-parent", "--new-session"]
        outer += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        for parent in parents:
            outer += ["--perms", "0755", "--dir", parent]
        outer += [*_system_binds(), "--perms", "1777", "--dir", "/tmp", "--dev", "/dev", "--bind", "/proc", "/proc"]
        return [*_DEFAULT_SIGCHLD, *outer, "--", *_setpriv(self.uid), *inner]

    def _process_argv(
        self, workdir: str, files: dict[str, str], limits: Limits
    ) -> tuple[list[str], str, dict[str, str]]:
        _warn_weak_once(self.uid)
        for name, text in files.items():
            Path(workdir, name).write_text(text, encoding="utf-8")
        env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"}
        command = self._command(limits, workdir)
        if not _drops_to(self.uid):
            return command, workdir, env
        os.chown(workdir, self.uid, self.uid)
        return [*_setpriv(self.uid), *command], workdir, env


def _sigchld_ignored() -> bool:
    """Whether SIGCHLD is ignored, as the kernel sees it (also when set outside Python)."""
    status = Path("/proc/self/status").read_text()
    ignored = int(status.partition("SigIgn:")[2].split()[0], 16)
    return bool(ignored & 1 << (signal.SIGCHLD - 1))


def _setpriv(uid: int) -> list[str]:
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]


@functools.cache
def _drops_to(uid: int) -> bool:
    """Whether `process` mode runs code as `uid`: only root can switch, and only to a uid that
    can reach the interpreter (a prefix under /root, mode 0700, is out of its reach)."""
    if os.geteuid() != 0:
        return False
    executable, prefix = _interpreter()
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


def _supervise(
    argv: list[str],
    popen: dict[str, Any],
    stdin: bytes,
    limits: Limits,
    cgroup: _Cgroup | None,
    pipes: _Pipes,
) -> RunResult:
    """Run `argv` to its end or its wall time. Closes the write ends of `pipes`."""
    start = time.monotonic()
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
        os.close(pipes.info_write)
        os.close(pipes.status_write)
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
        _wait_gone(_first_child(pipes.info_read), cgroup)
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
    return RunResult(
        exit_code=_exit_code(pipes.status_read, proc.returncode) if exited else None,
        stdout=out,
        stderr=err,
        stdout_truncated=truncated[out_fd],
        stderr_truncated=truncated[err_fd],
        timed_out=not exited,
        limit_hit=cgroup.limit_hit() if cgroup is not None else None,
        elapsed=time.monotonic() - start,
    )


class _Pipes(NamedTuple):
    """Bubblewrap's report pipes: `--info-fd` (its first child) and `--json-status-fd` (the
    program's exit status). Written ends are closed once the run has started."""

    info_read: int
    info_write: int
    status_read: int
    status_write: int


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
    """What bubblewrap wrote to one of its report pipes.

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


def _first_child(info_fd: int) -> int | None:
    """The pid of bubblewrap's first child, from its `--info-fd` report (None in `process` mode)."""
    try:
        return int(json.loads(_written(info_fd))["child-pid"])
    except (ValueError, KeyError, TypeError):
        return None


def _exit_code(status_fd: int, returncode: int) -> int:
    """The program's exit status as the bubblewrap running it reported it (`--json-status-fd`: one
    JSON object a line, `exit-code` in shell encoding), else `returncode`: in `process` mode, or
    when bubblewrap died before its program did."""
    for line in reversed(_written(status_fd).splitlines()):
        with contextlib.suppress(ValueError, TypeError, KeyError):
            return int(json.loads(line)["exit-code"])
    return returncode


def _kill_tree(proc: subprocess.Popen[bytes], cgroup: _Cgroup | None) -> None:
    # The outermost process leads its own session; its first child is killed by the kernel when
    # it dies (--die-with-parent), and with that child goes the run's pid namespace.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    if cgroup is not None:
        cgroup.kill()


def _wait_gone(pid: int | None, cgroup: _Cgroup | None, timeout: float = 5.0) -> None:
    """Wait until the sandbox's first process has exited: its pid namespace (and so every process
    of the run, daemons included) is torn down before it is reported gone."""
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
    finally:
        os.close(pidfd)


_probe_lock = threading.Lock()
_probed: dict[tuple[str, int, int], str] = {}


def _probe(bwrap: str, uid: int, euid: int) -> str:
    """'' when bubblewrap can build the sandbox here, else what is wrong and how to fix it."""
    key = (bwrap, uid, euid)
    with _probe_lock:
        if key not in _probed:
            _probed[key] = _probe_now(bwrap, uid)
        return _probed[key]


def _probe_now(bwrap: str, uid: int) -> str:
    if not (os.path.isfile(bwrap) and os.access(bwrap, os.X_OK)):
        return f"cannot run model code safely: bubblewrap was not found at {bwrap}; {INSTALL_HINT}"
    result = Sandbox("bwrap", bwrap, uid)._run("", "", {}, Limits(wall_time=30))
    if result.exit_code != 0:
        detail = " ".join(result.stderr.split())[:300] or f"exit status {result.exit_code}"
        return (
            f"cannot run model code safely: bubblewrap at {bwrap} cannot create its sandbox here ({detail}). "
            "Namespaces may be disabled (e.g. kernel.unprivileged_userns_clone=0, or a container without "
            f"user namespaces); {INSTALL_HINT}"
        )
    return ""


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
    elif os.geteuid() == 0:
        who, nproc = "it runs AS ROOT, since the interpreter is not reachable by an unprivileged uid", ""
    else:
        who, nproc = f"it runs as your own user (uid {os.geteuid()})", ""
    warnings.warn(WEAK_MODE_WARNING.format(nproc=nproc, who=who), WeakSandboxWarning, stacklevel=4)
