"""What a caller gives a run (`Limits`) and gets back (`RunResult`), and why a run may be refused."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pytest_rewardkit.errors import SandboxError

SandboxMode = Literal["bwrap", "process"]

INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`, Fedora: `dnf install bubblewrap`), "
    "or opt into the weaker `sandbox: process` mode in the reward's params"
)


class SandboxUnavailable(SandboxError, RuntimeError):
    """Code cannot be run safely here; the message says how to fix that."""


class SandboxFailed(SandboxUnavailable):
    """The sandbox did not start the program (bubblewrap or a stage before it failed): the run says
    nothing about the program, so it must not be read as the program's failure."""


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
