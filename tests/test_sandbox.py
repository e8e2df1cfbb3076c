"""The sandbox against hostile programs, run as the CI runs it (as root, with bubblewrap).

Every test ends with the `sandbox` fixture asserting that no process of the run is left:
none with the run's uid, no descendant of this test process born during the test.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from pytest_rewardkit import resolve_reward
from pytest_rewardkit.sandbox import (
    SANDBOX_UID,
    ExitStatusUnavailable,
    Limits,
    RunResult,
    Sandbox,
    SandboxFailed,
    SandboxUnavailable,
    WeakSandboxWarning,
    bubblewrap,
    kernel,
    runner,
)
from pytest_rewardkit.sandbox.bubblewrap import uid_mapped
from pytest_rewardkit.sandbox.cgroups import Cgroup

SECRET = "sk-fw-0123456789abcdef-secret"
QUICK = Limits(wall_time=3, memory_mb=128, max_processes=16, disk_mb=8)


class _Process(NamedTuple):
    started: str  # clock ticks after boot: with the pid, tells a process from a later one that reuses its pid
    name: str
    uid: int
    parent: int


def _live_processes() -> dict[int, _Process]:
    """Every process on the machine but zombies (a reaped run's are not alive)."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields["State"].strip().startswith("Z"):
            continue
        started = stat.rpartition(")")[2].split()[19]
        found[int(pid)] = _Process(started, fields["Name"].strip(), int(fields["Uid"].split()[0]), int(fields["PPid"]))
    return found


def _descendants(processes: dict[int, _Process]) -> set[tuple[int, str]]:
    """This process's descendants, as (pid, start time)."""
    found: set[tuple[int, str]] = set()
    parents = {os.getpid()}
    while parents:
        children = {pid for pid, process in processes.items() if process.parent in parents}
        found |= {(pid, processes[pid].started) for pid in children}
        parents = children
    return found


def _existing() -> set[tuple[int, str]]:
    """This process's descendants before a test: helpers that other tests left running for the
    session (the math reward's forkserver and its resource tracker) are not of any run."""
    return _descendants(_live_processes())


def _leftovers(uid: int, before: set[tuple[int, str]]) -> list[str]:
    """Live processes of `uid`, and descendants of this process that were not there `before`."""
    processes = _live_processes()
    born = {pid for pid, started in _descendants(processes) - before}
    return [f"{pid} {process.name}" for pid, process in processes.items() if process.uid == uid or pid in born]


# Claims on sandbox uids, shared by every test run on the machine (other checkouts, other users' CI jobs).
UID_CLAIMS = Path("/tmp/pytest-rewardkit-sandbox-uids")
UIDS = 50_000
# Runs switch to a uid of their own only where every uid of the range exists: root on the host or in
# a container, not root of a rootless user namespace (one uid mapped, and the claims folder of the
# host's root out of its reach).
SWITCHES_UID = os.geteuid() == 0 and uid_mapped(SANDBOX_UID + 1) and uid_mapped(SANDBOX_UID + UIDS)


def _uid_candidates(seed: str) -> Iterator[int]:
    """Sandbox uids for `seed` (a test), in the order they are tried: every uid of the range once."""
    start = zlib.crc32(f"{seed} {os.getpid()}".encode()) % UIDS  # where other runs start is unrelated
    return (SANDBOX_UID + 1 + (start + i) % UIDS for i in range(UIDS))


@contextlib.contextmanager
def _own_uid(seed: str) -> Iterator[int]:
    """A uid for the sandbox runs of one test, and the uid whose processes count as its leftovers
    (-1: none, when runs cannot switch uid, and only this process's descendants count). Where they
    can, it is a uid no live process has, locked until the test ends so that no run
    going on at the same time (another checkout's suite, a second job on the machine) takes it:
    every process found with it afterwards came from this test's own runs."""
    if not SWITCHES_UID:
        yield next(_uid_candidates(seed))
        return
    UID_CLAIMS.mkdir(mode=0o700, exist_ok=True)
    for uid in _uid_candidates(seed):
        claim = os.open(UID_CLAIMS / str(uid), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(claim)
            continue
        # Free of claims now, but a run that was killed may have left processes with it.
        if any(process.uid == uid for process in _live_processes().values()):
            os.close(claim)
            continue
        try:
            yield uid
        finally:
            os.close(claim)
        return
    raise RuntimeError(f"every sandbox uid from {SANDBOX_UID + 1} on is claimed or in use")


def _leftover_uid(uid: int) -> int:
    return uid if SWITCHES_UID else -1


@pytest.fixture
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """A bubblewrap sandbox with a uid of this test's own, so that leftovers are attributable
    even when other tests, or other test runs on the machine, run sandboxes at the same time."""
    with _own_uid(request.node.nodeid) as uid:
        box = Sandbox("bwrap", uid=uid)
        before = _existing()
        box.check()
        yield box
        assert _leftovers(_leftover_uid(uid), before) == []


def run(box: Sandbox, program: str, limits: Limits = QUICK, **kwargs: object) -> RunResult:
    return box.run(textwrap.dedent(program), limits=limits, **kwargs)  # type: ignore[arg-type]


def test_honest_program_runs(sandbox: Sandbox) -> None:
    result = run(
        sandbox,
        """
        import subprocess, sys, tempfile, threading
        from multiprocessing import Pool
        with tempfile.NamedTemporaryFile("w+") as f:
            f.write("kept"); f.seek(0); kept = f.read()
        threads = [threading.Thread(target=lambda: None) for _ in range(4)]
        for t in threads: t.start()
        for t in threads: t.join()
        with Pool(2) as pool:
            squares = pool.map(abs, [-1, -2, -3])
        child = subprocess.run([sys.executable, "-c", "print(1)"], capture_output=True, text=True).stdout
        assert child == "1\\n", child
        print(kept, squares, "héllo ✓ 世界", sys.stdin.read().upper())
        """,
        stdin="from stdin",
    )
    assert (result.exit_code, result.stdout) == (0, "kept [1, 2, 3] héllo ✓ 世界 FROM STDIN\n"), result.stderr


def test_runs_as_unprivileged_uid_without_capabilities(sandbox: Sandbox) -> None:
    result = run(
        sandbox,
        """
        import os
        status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
        caps = [status[key].strip() for key in ("CapEff", "CapBnd", "NoNewPrivs")]
        print(os.getuid(), os.geteuid(), *caps)
        """,
    )
    uid, euid, effective, bounding, no_new_privs = result.stdout.split()
    assert uid == euid != "0"
    assert (effective, bounding, no_new_privs) == ("0000000000000000", "0000000000000000", "1")


def test_kernel_attack_surface_is_filtered(sandbox: Sandbox) -> None:
    """io_uring, bpf, ptrace, keyrings, mounts, namespaces, module loading... fail with EPERM
    (clone3 with ENOSYS, which the C library answers by falling back to clone)."""
    lib = kernel._libseccomp()
    calls = {
        name: lib.seccomp_syscall_resolve_name(name.encode()) for names in kernel.DENIED.values() for name in names
    }
    calls = {name: number for name, number in calls.items() if number >= 0}
    number = {
        name: lib.seccomp_syscall_resolve_name(name.encode()) for name in ("clone3", "personality", "clone", "ioctl")
    }
    calls["clone3"] = number["clone3"]
    program = f"""
        import ctypes, errno, json, os
        libc = ctypes.CDLL(None, use_errno=True)
        def call(number, *args):
            args = [ctypes.c_long(a) for a in (*args, 0, 0, 0, 0, 0, 0)[:6]]
            result = libc.syscall(ctypes.c_long(number), *args)
            return errno.errorcode.get(ctypes.get_errno(), "?") if result == -1 else "ALLOWED"
        outcome = {{name: call(number) for name, number in {calls!r}.items()}}
        outcome["personality(READ_IMPLIES_EXEC)"] = call({number["personality"]}, 0x0400000)
        outcome["clone(CLONE_NEWUSER)"] = call({number["clone"]}, 0x10000000 | 17)
        outcome["ioctl(TIOCSTI)"] = call({number["ioctl"]}, 0, 0x5412, 0)
        query = libc.syscall(ctypes.c_long({number["personality"]}), ctypes.c_long(0xFFFFFFFF))
        print(json.dumps(outcome), query)
        """
    result = run(sandbox, program)
    assert result.exit_code == 0, result.stderr
    outcome, query = result.stdout.rsplit(" ", 1)
    denied = json.loads(outcome)
    assert denied.pop("clone3") == "ENOSYS"
    assert {name: code for name, code in denied.items() if code != "EPERM"} == {}
    assert {"io_uring_setup", "bpf", "ptrace", "keyctl", "mount", "unshare", "init_module"} <= denied.keys()
    assert int(query) >= 0, "reading the personality stays allowed"


KEYCTL_SEARCH, KEY_SPEC_SESSION_KEYRING = 10, -3


def _keyctl(*args: int | bytes | None) -> int:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    number = kernel._libseccomp().seccomp_syscall_resolve_name(b"keyctl")
    converted = [ctypes.c_long(a) if isinstance(a, int) else ctypes.c_char_p(a) for a in args]
    result = libc.syscall(ctypes.c_long(number), *converted)
    assert result >= 0, os.strerror(ctypes.get_errno())
    return int(result)


def test_each_run_gets_a_fresh_session_keyring(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the system-call filter lifted, the program still holds no keyring of the caller's nor of
    an earlier run: it can neither read a key the caller holds, nor leave a token for a later run."""
    import ctypes

    _keyctl(1, None)  # KEYCTL_JOIN_SESSION_KEYRING: this test's own keyring, not the machine user's
    libc = ctypes.CDLL(None, use_errno=True)
    secret = SECRET.encode()
    key = libc.syscall(
        ctypes.c_long(kernel._libseccomp().seccomp_syscall_resolve_name(b"add_key")),
        b"user",
        b"rewardkit-test",
        secret,
        ctypes.c_long(len(secret)),
        ctypes.c_long(-3),
    )
    assert key > 0
    allow_all = (0x06).to_bytes(2, "little") + bytes(2) + (0x7FFF0000).to_bytes(4, "little")  # BPF_RET ALLOW
    monkeypatch.setattr(kernel, "filter_program", lambda: allow_all)
    number = kernel._libseccomp().seccomp_syscall_resolve_name(b"keyctl")
    add_key = kernel._libseccomp().seccomp_syscall_resolve_name(b"add_key")
    program = f"""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        def keyctl(*args):
            args = [ctypes.c_long(a) if isinstance(a, int) else ctypes.c_char_p(a) for a in args]
            return libc.syscall(ctypes.c_long({number}), *args)
        found = []
        for description in (b"rewardkit-test", b"left-by-an-earlier-run"):
            key = keyctl({KEYCTL_SEARCH}, {KEY_SPEC_SESSION_KEYRING}, b"user", description, 0)
            if key > 0:
                buffer = ctypes.create_string_buffer(256)
                keyctl(11, key, ctypes.addressof(buffer), 256)  # KEYCTL_READ
                found.append(buffer.value.decode(errors="replace"))
        print(found)
        keyctl(7, {KEY_SPEC_SESSION_KEYRING})  # KEYCTL_CLEAR the session keyring it holds
        libc.syscall(ctypes.c_long({add_key}), b"user", b"left-by-an-earlier-run", b"token", ctypes.c_long(5),
                     ctypes.c_long({KEY_SPEC_SESSION_KEYRING}))
        """
    first, second = run(sandbox, program), run(sandbox, program)
    assert (first.exit_code, first.stdout, second.stdout) == (0, "[]\n", "[]\n"), first.stderr
    assert _keyctl(KEYCTL_SEARCH, KEY_SPEC_SESSION_KEYRING, b"user", b"rewardkit-test", 0) == key, "caller's key intact"


def test_network_is_unreachable(sandbox: Sandbox, tmp_path: Path) -> None:
    tcp = socket.create_server(("127.0.0.1", 0))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.5)
    abstract = socket.socket(socket.AF_UNIX)
    abstract_name = f"\0rewardkit-test-{os.getpid()}"
    abstract.bind(abstract_name)
    abstract.listen()
    path_socket = socket.socket(socket.AF_UNIX)
    path_socket.bind(str(tmp_path / "host.sock"))
    path_socket.listen()
    program = f"""
        import socket
        def attempt(name, fn):
            try:
                fn(); print(name, "REACHED")
            except OSError as exc:
                print(name, "blocked", type(exc).__name__)
        def tcp(host, port):
            s = socket.socket(); s.settimeout(1); s.connect((host, port))
        def unix(address):
            s = socket.socket(socket.AF_UNIX); s.settimeout(1); s.connect(address)
        attempt("tcp-host", lambda: tcp("127.0.0.1", {tcp.getsockname()[1]}))
        attempt("tcp-internet", lambda: tcp("1.1.1.1", 53))
        attempt("dns", lambda: socket.getaddrinfo("pypi.org", 443))
        attempt("abstract-unix", lambda: unix({abstract_name!r}))
        attempt("path-unix", lambda: unix({str(tmp_path / "host.sock")!r}))
        attempt("docker", lambda: unix("/var/run/docker.sock"))
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.sendto(b"leak", ("127.0.0.1", {udp.getsockname()[1]})); u.sendto(b"leak", ("8.8.8.8", 53))
            print("udp sent-nowhere")
        except OSError as exc:
            print("udp blocked", type(exc).__name__)
        """
    try:
        result = run(sandbox, program)
        with pytest.raises(TimeoutError):
            udp.recvfrom(16)
        tcp.settimeout(0)
        with pytest.raises(BlockingIOError):
            tcp.accept()
    finally:
        for s in (tcp, udp, abstract, path_socket):
            s.close()
    assert result.exit_code == 0, result.stderr
    assert "REACHED" not in result.stdout
    assert result.stdout.count("blocked") >= 6, result.stdout


def test_secrets_of_the_caller_are_invisible(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    (home / ".fireworks").mkdir(parents=True)
    (home / ".fireworks" / "auth.ini").write_text(f"api_key = {SECRET}\n")
    work.mkdir()
    (work / ".env").write_text(f"FIREWORKS_API_KEY={SECRET}\n")
    monkeypatch.setenv("FIREWORKS_API_KEY", SECRET)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    program = f"""
        import os
        found = [k for k, v in os.environ.items() if "sk-fw" in v]
        for path in [{str(home / ".fireworks" / "auth.ini")!r}, {str(work / ".env")!r}, "/root/.bash_history",
                     os.path.expanduser("~/.fireworks/auth.ini"), ".env", "/etc/shadow", "/etc/passwd"]:
            try:
                found.append(path + ":" + open(path).read())
            except OSError:
                pass
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                for entry in ("environ", "cmdline"):
                    try:
                        found.append(pid + open(f"/proc/{{pid}}/{{entry}}", "rb").read().decode(errors="replace"))
                    except OSError:
                        pass
        for root, dirs, files in os.walk("/"):
            dirs[:] = [d for d in dirs if os.path.join(root, d) not in ("/proc", "/usr", "/sys")]
            found.extend(os.path.join(root, f) for f in files if f in ("auth.ini", ".env"))
        print(sorted(p for p in os.listdir("/proc") if p.isdigit()), os.listdir("/"), found)
        """
    result = run(sandbox, program)
    assert result.exit_code == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert "auth.ini" not in result.stdout and ".env" not in result.stdout
    pids, top, _ = result.stdout.split("] ", 2)
    assert len(pids.split(",")) <= 3, "other processes are visible in /proc"
    assert "home" not in top and "etc" not in top and "run" not in top


def test_writes_and_deletes_outside_the_temp_dir_fail(sandbox: Sandbox, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("intact")
    program = f"""
        import os, shutil, sys
        attempts = {{
            "host file": lambda: open({str(victim)!r}, "w").write("x"),
            "usr": lambda: open("/usr/pwned", "w").write("x"),
            "root": lambda: open("/pwned", "w").write("x"),
            "dev": lambda: open("/dev/pwned", "w").write("x"),
            "interpreter": lambda: os.remove(sys.executable),
            "stdlib": lambda: shutil.rmtree(os.path.dirname(os.__file__)),
            "symlink write": lambda: (os.symlink(os.__file__, "/tmp/link"), open("/tmp/link", "a").write("x")),
            "symlink delete": lambda: (os.symlink("/usr/bin", "/tmp/dirlink"), shutil.rmtree("/tmp/dirlink/")),
            "chmod": lambda: os.chmod("/usr/bin", 0o777),
            "mount": lambda: os.system("mount -t tmpfs none /usr 2>/dev/null") == 0 or 1 / 0,
            "new userns": lambda: os.system("unshare -U -r true 2>/dev/null") == 0 or 1 / 0,
        }}
        for name, attempt in attempts.items():
            try:
                attempt(); print(name, "SUCCEEDED")
            except (OSError, ZeroDivisionError):
                print(name, "refused")
        open("/tmp/ok.txt", "w").write("temp dir is writable"); print(open("/tmp/ok.txt").read())
        """
    result = run(sandbox, program)
    assert result.exit_code == 0, result.stderr
    assert "SUCCEEDED" not in result.stdout, result.stdout
    assert "temp dir is writable" in result.stdout
    assert victim.read_text() == "intact"
    assert Path(os.__file__).exists()


@pytest.mark.parametrize(
    "program",
    [
        pytest.param("import os\nwhile True:\n    try: os.fork()\n    except OSError: pass", id="fork-bomb"),
        pytest.param(
            "import threading, time\nwhile True:\n    threading.Thread(target=time.sleep, args=(60,)).start()",
            id="thread-bomb",
        ),
        pytest.param(
            "import subprocess as sp, sys\nwhile True:\n    sp.Popen([sys.executable, '-c', 'input()'], stdin=sp.PIPE)",
            id="subprocess-bomb",
        ),
    ],
)
def test_process_bombs_hit_the_per_run_limit(sandbox: Sandbox, program: str) -> None:
    start = time.monotonic()
    result = run(sandbox, program)
    assert result.exit_code != 0
    assert time.monotonic() - start < QUICK.wall_time + 3


def test_process_limit_is_per_run_not_shared_between_runs(sandbox: Sandbox) -> None:
    """A fork bomb in one run leaves the process budget of a concurrent run untouched."""
    bomb = "import os, time\nwhile True:\n    try: os.fork()\n    except OSError: time.sleep(0.01)"
    honest = """
        import time
        from multiprocessing import Pool
        time.sleep(0.5)  # the bomb has filled its own budget by now
        with Pool(4) as pool:
            print(sum(pool.map(abs, range(-10, 0))))
        """
    with ThreadPoolExecutor(2) as pool:
        bombing = pool.submit(run, sandbox, bomb)
        time.sleep(0.2)
        fine = pool.submit(run, sandbox, honest).result()
        bombing.result()
    assert (fine.exit_code, fine.stdout) == (0, "55\n"), fine.stderr


def test_memory_is_limited_per_process(sandbox: Sandbox) -> None:
    result = run(sandbox, "block = bytearray(300 * 2**20)\nprint('ALLOCATED')")
    assert "ALLOCATED" not in result.stdout
    assert result.exit_code != 0


def test_memory_of_the_whole_tree_is_limited(sandbox: Sandbox) -> None:
    if Cgroup.create(QUICK) is None:
        pytest.skip("no writable memory cgroup here: the tree is bounded by max_processes x memory_mb only")
    program = """
        import os, time
        children = []
        for _ in range(6):
            pid = os.fork()
            if pid == 0:
                block = bytearray(90 * 2**20)
                for i in range(0, len(block), 4096):
                    block[i] = 1
                time.sleep(1.5)
                os._exit(0)
            children.append(pid)
        statuses = [os.waitpid(pid, 0)[1] for pid in children]
        print("ALL ALLOCATED" if all(s == 0 for s in statuses) else "some children died")
        """
    result = run(sandbox, program)
    assert "ALL ALLOCATED" not in result.stdout
    assert result.limit_hit == "memory"


@pytest.mark.parametrize("target", ["/tmp", "/dev/shm"])
def test_disk_fill_stops_at_the_cap(sandbox: Sandbox, target: str) -> None:
    program = f"""
        import os
        written = 0
        try:
            for n in range(10_000):
                with open("{target}/fill%d" % n, "wb") as f:
                    f.write(b"x" * 2**20)
                written += 1
        except OSError as exc:
            print(written, exc.errno)
        """
    result = run(sandbox, program)
    written, errno = result.stdout.split()
    assert int(written) <= QUICK.disk_mb
    assert int(errno) in (27, 28)  # EFBIG, ENOSPC


@pytest.mark.parametrize(
    "program",
    ["while True:\n    pass", "import time\ntime.sleep(3600)", "import signal\nsignal.pause()"],
    ids=["busy-loop", "sleep", "pause"],
)
def test_endless_programs_are_killed_at_the_wall_time(sandbox: Sandbox, program: str) -> None:
    result = run(sandbox, program, limits=Limits(wall_time=1.0))
    assert result.timed_out and result.exit_code is None
    assert result.elapsed < 3


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_output_floods_are_capped(sandbox: Sandbox, stream: str) -> None:
    cap = 64 * 1024
    program = f"import sys\nwhile True:\n    sys.{stream}.write('flood ' * 1000)"
    result = run(sandbox, program, limits=Limits(wall_time=1.5, output_bytes=cap))
    assert len(getattr(result, stream).encode()) == cap
    assert getattr(result, f"{stream}_truncated")


def test_a_flood_that_ends_is_reported_whole_up_to_the_cap(sandbox: Sandbox) -> None:
    result = run(sandbox, "print('y' * 5_000_000)", limits=Limits(output_bytes=1 << 20))
    assert result.exit_code == 0
    assert len(result.stdout) == 1 << 20 and result.stdout_truncated


@pytest.mark.parametrize(
    "program",
    [
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nimport time; time.sleep(2)",
        "import os, signal\nos.kill(-1, signal.SIGKILL)\nprint('survived')",
        "import os, signal\nos.killpg(0, signal.SIGKILL)",
        "import os, signal\nos.kill(1, signal.SIGKILL)\nos.kill(1, signal.SIGTERM)",
    ],
    ids=["parent", "everything", "group", "init"],
)
def test_killing_the_parent_or_everything_ends_the_run_cleanly(sandbox: Sandbox, program: str) -> None:
    result = run(sandbox, program)
    assert result.elapsed < QUICK.wall_time + 2
    assert os.getpid() > 0  # this process is still here to tell


@pytest.mark.parametrize(
    "program",
    [
        """
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(600)
            os._exit(0)
        print("parent done")
        """,
        """
        import subprocess, sys
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
        print("parent done")
        """,
    ],
    ids=["double-fork", "detached-subprocess"],
)
def test_daemons_do_not_outlive_the_run(sandbox: Sandbox, program: str) -> None:
    """The daemon holds the output pipes open: the verdict must not wait for them."""
    result = run(sandbox, program)
    assert (result.exit_code, result.stdout) == (0, "parent done\n")
    assert result.elapsed < 2


ORPHANS_AND_WORKERS = """
    import os, subprocess, sys, time
    from multiprocessing import Pool
    with Pool(2) as pool:
        print(pool.map(abs, [-1, -2]))
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(600)
        os._exit(0)
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    """


def test_a_caller_with_helpers_and_a_subreaper_keeps_them_and_gets_nothing_of_the_run(sandbox: Sandbox) -> None:
    """As in a full test session: the caller already runs helper processes (the math reward's
    forkserver) and may reap orphans. The sandbox ends all of its run and nothing else."""
    import ctypes

    pr_set_child_subreaper = 36
    helper = subprocess.Popen(["sleep", "600"])
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        assert libc.prctl(pr_set_child_subreaper, 1, 0, 0, 0) == 0, os.strerror(ctypes.get_errno())
        before = _existing()
        result = run(sandbox, ORPHANS_AND_WORKERS)
        assert (result.exit_code, result.stdout) == (0, "[1, 2]\n"), result.stderr
        assert _leftovers(_leftover_uid(sandbox.uid), before) == []
        assert helper.poll() is None
    finally:
        libc.prctl(pr_set_child_subreaper, 0, 0, 0, 0)
        helper.kill()
        helper.wait()


def test_the_verdict_does_not_wait_for_a_process_holding_the_info_pipe(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fork by another thread of the caller while a run starts copies the sandbox's open pipe
    ends; the verdict comes when the run is over, not when that process lets go of them."""
    holders: list[int] = []

    class ForkingPopen(subprocess.Popen):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            holder = os.fork()
            if holder == 0:
                try:
                    time.sleep(30)
                finally:
                    os._exit(0)
            holders.append(holder)

    monkeypatch.setattr(subprocess, "Popen", ForkingPopen)
    try:
        started = time.monotonic()
        result = run(sandbox, "print('done')")
        assert time.monotonic() - started < 5
        assert (result.exit_code, result.stdout) == (0, "done\n"), result.stderr
    finally:
        for holder in holders:
            os.kill(holder, signal.SIGKILL)
            os.waitpid(holder, 0)


def test_bubblewrap_itself_starts_with_a_minimal_environment(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREWORKS_API_KEY", SECRET)
    result = run(sandbox, "print(open('/proc/1/environ', 'rb').read().decode())")
    assert result.exit_code == 0, result.stderr
    assert SECRET not in result.stdout
    assert set(filter(None, result.stdout.strip().split("\0"))) <= {"PATH=/usr/bin:/bin", "PWD=/"}


@pytest.fixture
def sigchld_ignored() -> Iterator[None]:
    """This process ignores SIGCHLD, as some servers do: the kernel then discards the exit
    statuses of its children, so waiting on a child reports 0 whatever it did."""
    previous = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGCHLD, previous)


FAILS_AFTER_A_RIGHT_ANSWER = "import sys\nprint('ok')\nsys.stdout.flush()\nraise SystemExit(3)"


def test_exit_status_holds_when_the_caller_ignores_sigchld(sandbox: Sandbox, sigchld_ignored: None) -> None:
    failing = run(sandbox, FAILS_AFTER_A_RIGHT_ANSWER)
    assert (failing.exit_code, failing.stdout) == (3, "ok\n"), failing.stderr
    killed = run(sandbox, "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)")
    assert (killed.exit_code, killed.signal) == (128 + signal.SIGTERM, signal.SIGTERM)
    waits = run(sandbox, "import subprocess, sys\nprint(subprocess.run([sys.executable, '-c', 'exit(5)']).returncode)")
    assert (waits.exit_code, waits.stdout) == (0, "5\n"), "the program's own waits see its children's statuses"
    response = f"```python\n{FAILS_AFTER_A_RIGHT_ANSWER}\n```"
    judged = resolve_reward("code")([{"role": "assistant", "content": response}], tests=[{"stdin": "", "stdout": "ok"}])
    assert judged.score == 0.0 and set(judged.metrics) == {"tests_passed", "runtime_error"}, judged.reason


def test_process_mode_refuses_when_the_caller_ignores_sigchld(sigchld_ignored: None) -> None:
    with pytest.raises(ExitStatusUnavailable, match="ignores SIGCHLD"):
        Sandbox("process").run("print('never runs')")
    response = "```python\nprint('ok')\n```"
    judged = resolve_reward("code")(
        [{"role": "assistant", "content": response}], tests=[{"stdin": "", "stdout": "ok"}], sandbox="process"
    )
    assert not judged.is_score_valid and "SIGCHLD" in judged.reason


IN_NAMESPACE = """
import json, os
from pytest_rewardkit import resolve_reward
from pytest_rewardkit.sandbox import Sandbox
box = Sandbox()
runs = [box.run("import os; print(os.getuid())") for _ in range(3)]
judged = resolve_reward("code")(
    [{"role": "assistant", "content": "```python\\ndef add(a, b):\\n    return a + b\\n```"}],
    tests=[{"check": "assert add(2, 3) == 5"}],
)
zombies = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        fields = open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()
    except OSError:
        continue
    if fields[0] == "Z":
        zombies.append(pid)
print(json.dumps([[r.exit_code, r.stdout, r.stderr] for r in runs] + [judged.score, judged.reason, zombies]))
"""


def _run_in_namespaces(*unshare: str) -> list[Any]:
    """IN_NAMESPACE run by this interpreter under `unshare` (a fresh pid namespace has no pid 3)."""
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": os.pathsep.join(filter(None, sys.path))}
    argv = ["unshare", *unshare, "--pid", "--fork", "--mount-proc", sys.executable, "-c", IN_NAMESPACE]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def test_starts_in_a_fresh_pid_namespace() -> None:
    """As in a container or `unshare --pid --fork --mount-proc`, where this interpreter is pid 1 and
    inherits every orphan (no zombie is left); a non-root caller needs a user namespace to make one."""
    *runs, score, reason, zombies = _run_in_namespaces(*([] if os.geteuid() == 0 else ["--user", "--map-root-user"]))
    assert zombies == []
    assert [run[0] for run in runs] == [0, 0, 0], runs
    assert all(run[1].strip() != "0" for run in runs), "the program runs unprivileged"
    assert score == 1.0, reason


def test_starts_as_root_of_a_user_namespace_with_one_uid_mapped() -> None:
    """As in a rootless container: root, but no other uid to switch to."""
    *runs, score, reason, zombies = _run_in_namespaces("--user", "--map-root-user")
    assert zombies == []
    assert [run[0] for run in runs] == [0, 0, 0], runs
    assert all(run[1].strip() != "0" for run in runs), "the program runs as a uid of its own, not root"
    assert score == 1.0, reason


def test_a_sandbox_that_fails_to_start_is_an_error_not_a_wrong_answer(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Probed fine, then bubblewrap fails a run before the program starts: the run raises, and the
    reward says the sandbox failed instead of scoring the code 0."""
    binds = bubblewrap._system_binds
    monkeypatch.setattr(bubblewrap, "_system_binds", lambda: [*binds(), "--ro-bind", "/nonexistent-rk", "/mnt"])
    with pytest.raises(SandboxFailed, match=r"before starting the program .*nonexistent-rk"):
        run(sandbox, "print('never runs')")
    response = "```python\ndef add(a, b):\n    return a + b\n```"
    judged = resolve_reward("code")([{"role": "assistant", "content": response}], tests=[{"stdin": "", "stdout": ""}])
    assert judged.is_error and not judged.is_score_valid
    assert "failed before starting the program" in judged.reason and "nonexistent-rk" in judged.reason


def test_missing_bubblewrap_is_refused_with_install_instructions() -> None:
    box = Sandbox("bwrap", bwrap="/nonexistent/bwrap")
    with pytest.raises(SandboxUnavailable) as refusal:
        box.run("print('never runs')")
    message = str(refusal.value)
    assert "/nonexistent/bwrap" in message
    assert "apt-get install bubblewrap" in message
    assert "sandbox: process" in message


def test_process_mode_warns_once_loudly_and_still_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.setattr(runner, "_warned", threading.Event())
    monkeypatch.setenv("FIREWORKS_API_KEY", SECRET)
    monkeypatch.chdir(tmp_path)
    before = _existing()
    with _own_uid(request.node.nodeid) as uid:
        box = Sandbox("process", uid=uid)
        with pytest.warns(WeakSandboxWarning) as warned:
            first = box.run(f"import os\nprint(os.getcwd() != {str(tmp_path)!r}, 'FIREWORKS_API_KEY' in os.environ)")
            second = box.run("block = bytearray(300 * 2**20)", limits=Limits(memory_mb=128))
            looping = box.run("while True:\n    pass", limits=Limits(wall_time=1))
        assert _leftovers(_leftover_uid(uid), before) == []
    assert len(warned) == 1
    message = str(warned[0].message)
    assert "WITHOUT bubblewrap" in message and "does NOT protect against" in message and "network" in message
    assert (first.exit_code, first.stdout) == (0, "True False\n"), first.stderr
    assert second.exit_code != 0 and "MemoryError" in second.stderr
    assert looping.timed_out


@pytest.mark.skipif(not SWITCHES_UID, reason="only root with every uid mapped switches uid; others count descendants")
def test_a_tests_sandbox_uid_is_never_one_a_concurrent_run_uses() -> None:
    """Two suites running at once on one machine each count only their own runs' processes: a uid
    that another run holds, or that a live process has, is never handed out."""
    seed = "tests/test_sandbox.py::a test run twice at once"
    first = next(_uid_candidates(seed))
    # A process left with the first candidate (a killed run's), as the other run's user.
    squatter = subprocess.Popen(["setpriv", f"--reuid={first}", f"--regid={first}", "--clear-groups", "sleep", "60"])
    try:
        deadline = time.monotonic() + 10
        while not any(p.uid == first for p in _live_processes().values()) and time.monotonic() < deadline:
            time.sleep(0.01)
        with _own_uid(seed) as mine, _own_uid(seed) as concurrent:
            assert first not in (mine, concurrent)
            assert mine != concurrent
            assert not any(p.uid in (mine, concurrent) for p in _live_processes().values())
    finally:
        squatter.kill()
        squatter.wait()
    with _own_uid(seed) as mine:
        assert mine == first  # free again once nothing has it
