"""Run untrusted Python with limits: the code reward's only way to execute a model's code.

Two modes. `bwrap` (the default) isolates with bubblewrap and refuses to run when bubblewrap is
missing or namespaces are not allowed; `process` is an opt-in, weaker fallback that warns once.
A run the sandbox could not start raises `SandboxFailed`: it is never reported as the program's
own failure.

What enforces what in `bwrap` mode, by layer (one module each):

- **Namespaces** (`bubblewrap`: `--unshare-all`, `--disable-userns`, `--cap-drop ALL`,
  `--new-session`, `--die-with-parent`): no network but a private loopback (TCP, UDP, DNS and
  abstract unix sockets go nowhere), no other process in `/proc`, no capabilities, no nested user
  namespaces (so no uncapped tmpfs can be mounted from inside). The root is a read-only tmpfs
  holding read-only binds of `/usr`, the `/bin`-style links and the interpreter's own prefix; the
  caller's home, working directory, `/etc` and `/run` are absent. The environment is cleared, and
  bubblewrap itself starts with only `PATH`, because its first process's `/proc/1/environ` is
  readable from inside. It starts as root, as root of a user namespace and as any user, in any pid
  namespace (see `bubblewrap` for which identity runs the program and why).
- **rlimits**, set by a tiny bootstrap before the program's first line: RLIMIT_NPROC (processes and
  threads; counted per user namespace, so per run, not shared with concurrent runs), RLIMIT_AS
  (memory per process), RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_NOFILE, RLIMIT_CORE.
- **cgroup** (`cgroups`, when this process's own cgroup is writable and has the memory controller,
  v2 or v1): memory of the whole process tree and the pid count of the run; an OOM kill or the pid
  cap is reported as the limit that was hit. Without it, the tree's memory is bounded by
  max_processes x memory per process.
- **Size-capped tmpfs** for `/tmp` (the working directory, the only writable place) and `/dev/shm`.
- The program sees the standard library only (`-I -S`: no site-packages, no user site, no
  `PYTHON*` variables); this also halves the interpreter's start-up.
- **The caller** (`supervision`): wall time, output caps, the end of every process of the run.
"""

from pytest_rewardkit.sandbox.bubblewrap import BWRAP, SANDBOX_UID
from pytest_rewardkit.sandbox.models import (
    INSTALL_HINT,
    ExitStatusUnavailable,
    Limits,
    RunResult,
    SandboxFailed,
    SandboxMode,
    SandboxUnavailable,
    WeakSandboxWarning,
)
from pytest_rewardkit.sandbox.runner import Sandbox

__all__ = [
    "BWRAP",
    "INSTALL_HINT",
    "SANDBOX_UID",
    "ExitStatusUnavailable",
    "Limits",
    "RunResult",
    "Sandbox",
    "SandboxFailed",
    "SandboxMode",
    "SandboxUnavailable",
    "WeakSandboxWarning",
]
