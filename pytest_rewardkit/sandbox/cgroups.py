"""A cgroup per run: memory of the whole process tree, and the run's process count."""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Literal

from pytest_rewardkit.sandbox.models import Limits


class Cgroup:
    """A cgroup for one run, below this process's own (v2, or v1 memory + pids hierarchies)."""

    def __init__(self, dirs: list[Path], version: int) -> None:
        self.dirs = dirs
        self.version = version

    @classmethod
    def create(cls, limits: Limits) -> Cgroup | None:
        """The run's cgroup, or None when this process's own cgroup is not writable (a container,
        a user namespace) or lacks the memory controller."""
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
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

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
