"""Bubblewrap's command line for one run, which identity runs it, and the one-time probe.

Which identity runs the program decides whether RLIMIT_NPROC holds: the kernel exempts the real
root (uid 0 of the first user namespace) from it, also inside bubblewrap's user namespace. So:

- **own**: a non-root caller runs bubblewrap as itself.
- **drop**: a root caller to whom `SANDBOX_UID` is mapped (the host, or a container with a uid
  range) runs an outer root bubblewrap, which makes the interpreter reachable (its prefix may sit
  under /root, mode 0700) and drops to `SANDBOX_UID` with `setpriv`; the inner bubblewrap then
  builds the real sandbox unprivileged. The outer stage shares the caller's pid namespace and
  `/proc`: bubblewrap reads its child's namespaces from `/proc/<pid>` as its own pid namespace
  numbers them, and an inner bubblewrap may mount a fresh procfs only where a fully visible one
  exists (the outer stage's own procfs would carry bubblewrap's read-only covers).
- **namespace-root**: root of a user namespace with a single uid mapped (rootless containers,
  `unshare --user --map-root-user`) cannot switch uids; it runs bubblewrap directly, which maps
  its uid to `SANDBOX_UID` inside. Outside, that uid is an unprivileged one, so RLIMIT_NPROC holds.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pytest_rewardkit.sandbox.models import INSTALL_HINT, Limits, RunResult, SandboxFailed

BWRAP = "/usr/bin/bwrap"
SANDBOX_UID = 64_000  # a uid no account uses: its processes can be told apart and hold no files
Identity = Literal["own", "drop", "namespace-root"]

# Runs before the program: limits are set by the sandbox's own first Python process, inside the
# run's user namespace, so RLIMIT_NPROC counts this run only. A hard limit the caller already has
# below ours is kept (raising it would fail, and lower is stricter).
_BOOT = """\
import resource, runpy, sys
names = ("NPROC", "AS", "CPU", "FSIZE", "NOFILE", "CORE")
for name, value in zip(names, sys.argv[1:7]):
    if int(value) >= 0:
        which = getattr(resource, "RLIMIT_" + name)
        ceiling = resource.getrlimit(which)[1]
        soft = int(value)
        hard = soft + 1 if name == "CPU" else soft
        if ceiling != resource.RLIM_INFINITY:
            soft, hard = min(soft, ceiling), min(hard, ceiling)
        resource.setrlimit(which, (soft, hard))
sys.argv = sys.argv[7:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@functools.cache
def uid_mapped(uid: int) -> bool:
    """Whether `uid` exists in this process's user namespace (`/proc/self/uid_map`)."""
    try:
        lines = Path("/proc/self/uid_map").read_text().splitlines()
    except OSError:
        return False
    for line in lines:
        inside, _, count = (int(field) for field in line.split())
        if inside <= uid < inside + count:
            return True
    return False


def identity(uid: int) -> Identity:
    if os.geteuid() != 0:
        return "own"
    return "drop" if uid_mapped(uid) else "namespace-root"


def interpreter() -> tuple[str, str]:
    """The real interpreter (not a venv's link to it) and its prefix, which holds the stdlib."""
    return os.path.realpath(sys.executable), os.path.realpath(sys.base_prefix)


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


def _system_binds() -> list[str]:
    _, prefix = interpreter()
    args = ["--ro-bind", "/usr", "/usr", *_root_links()]
    if not prefix.startswith("/usr/"):
        args += ["--ro-bind", prefix, prefix]
    return args


def setpriv(uid: int) -> list[str]:
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]


def command(limits: Limits, workdir: str, limit_processes: bool) -> list[str]:
    """The interpreter running `workdir/__main__.py` under the boot script's rlimits."""
    executable, _ = interpreter()
    rlimits = [
        limits.max_processes if limit_processes else -1,
        limits.memory_mb << 20,
        limits.cpu_time or max(1, round(limits.wall_time + 0.5)),
        limits.disk_mb << 20,
        limits.open_files,
        0,
    ]
    return [executable, "-I", "-S", "-X", "utf8", "-c", _BOOT, *map(str, rlimits), f"{workdir}/__main__.py"]


def argv(bwrap: str, uid: int, files: dict[str, int], status_fd: int, seccomp_fd: int, limits: Limits) -> list[str]:
    """The command line of one run; `files` maps names in the working directory to readable fds,
    `seccomp_fd` holds the compiled system-call filter (see `kernel`)."""
    file_args = [arg for name, fd in files.items() for arg in ("--file", str(fd), f"/tmp/{name}")]
    size = str(limits.disk_mb << 20)
    who = identity(uid)
    inner = [
        bwrap,
        # The program's own exit status, from the bubblewrap that runs it: its outer stages'
        # statuses (and this process's wait) say nothing when the caller ignores SIGCHLD. Its
        # first line names the sandbox's pid 1, whose end is the end of every process of the run.
        "--json-status-fd",
        str(status_fd),
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--seccomp",
        str(seccomp_fd),
        *(["--uid", str(uid), "--gid", str(uid)] if who == "namespace-root" else []),
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
        *command(limits, "/tmp", limit_processes=True),
    ]
    if who != "drop":
        return inner
    _, prefix = interpreter()
    parents = [str(p) for p in reversed(Path(prefix).parents) if str(p) != "/"]
    outer = [bwrap, "--die-with-parent", "--new-session"]
    outer += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    for parent in parents:
        outer += ["--perms", "0755", "--dir", parent]
    outer += [*_system_binds(), "--perms", "1777", "--dir", "/tmp", "--dev", "/dev", "--bind", "/proc", "/proc"]
    return [*outer, "--", *setpriv(uid), *inner]


_probe_lock = threading.Lock()
_probed: dict[tuple[str, int, int], str] = {}


def probe(bwrap: str, uid: int, attempt: Callable[[], RunResult]) -> str:
    """'' when bubblewrap can build the sandbox here (`attempt` runs an empty program), else what
    is wrong and how to fix it. Probed once per bubblewrap, uid and caller identity."""
    key = (bwrap, uid, os.geteuid())
    with _probe_lock:
        if key not in _probed:
            _probed[key] = _probe_now(bwrap, attempt)
        return _probed[key]


def _probe_now(bwrap: str, attempt: Callable[[], RunResult]) -> str:
    if not (os.path.isfile(bwrap) and os.access(bwrap, os.X_OK)):
        return f"cannot run model code safely: bubblewrap was not found at {bwrap}; {INSTALL_HINT}"
    try:
        result = attempt()
    except SandboxFailed as exc:
        detail = str(exc)
    else:
        if result.exit_code == 0:
            return ""
        detail = " ".join(result.stderr.split())[:300] or f"exit status {result.exit_code}"
    return (
        f"cannot run model code safely: bubblewrap at {bwrap} cannot create its sandbox here ({detail}). "
        "Namespaces may be disabled (e.g. kernel.unprivileged_userns_clone=0, or a container without "
        f"user namespaces); {INSTALL_HINT}"
    )
