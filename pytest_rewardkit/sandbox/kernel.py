"""What a run shares with the kernel: a session keyring of its own, and a system-call filter.

- **Keyrings**: a child inherits its parent's session keyring, and bubblewrap's `--new-session`
  makes a new process session, not a new keyring. Each run joins a fresh anonymous session keyring
  in the process that starts bubblewrap, before bubblewrap exists, so no process of the run
  (bubblewrap's own included) holds the caller's, nor a keyring of an earlier run.
- **System calls**: a seccomp filter, passed to the inner bubblewrap with `--seccomp FD`, which
  applies it to the sandbox's pid 1 and to the program as the last step before `execve`, after
  its own setup (so the mount and namespace calls it needs stay allowed to it alone). The filter
  is compiled by libseccomp (libseccomp2, which Debian's apt itself depends on; Docker, Flatpak and
  systemd build their filters with it), called through ctypes: its official Python bindings are
  not on PyPI, and the PyPI wrapper of the same calls is unmaintained since 2021. Denied calls
  fail with EPERM (clone3 with ENOSYS, so that the C library falls back to clone, whose flags a
  filter can read); the 32-bit x86 ABI is killed, the x32 ABI gets the same filter.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform
import signal
import time
from collections.abc import Callable, Sequence

# The denied calls, by what they would give the program.
DENIED: dict[str, tuple[str, ...]] = {
    "kernel attack surface": ("io_uring_setup", "io_uring_enter", "io_uring_register", "bpf", "userfaultfd"),
    "other processes and their memory": (
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "process_madvise",
        "pidfd_getfd",
        "kcmp",
        "perf_event_open",
    ),
    "keyrings": ("keyctl", "add_key", "request_key"),
    "the kernel itself": ("kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module"),
    "mounts": (
        "mount",
        "umount",
        "umount2",
        "pivot_root",
        "chroot",
        "move_mount",
        "open_tree",
        "fsopen",
        "fsmount",
        "fsconfig",
        "fspick",
        "mount_setattr",
    ),
    "namespaces": ("unshare", "setns"),
    "host administration": (
        "swapon",
        "swapoff",
        "reboot",
        "syslog",
        "acct",
        "quotactl",
        "quotactl_fd",
        "lookup_dcookie",
        "name_to_handle_at",
        "open_by_handle_at",
        "iopl",
        "ioperm",
        "uselib",
        "vhangup",
        "fanotify_init",
        "nfsservctl",
        "sethostname",
        "setdomainname",
    ),
}
# clone() with any of these flags makes a namespace (CLONE_NEWNS ... CLONE_NEWCGROUP, CLONE_NEWTIME).
NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x00000080)
# ioctl requests that push input into, or reprogram, a terminal the program may share.
TERMINAL_IOCTLS = (0x5412, 0x541C)  # TIOCSTI, TIOCLINUX
PERSONALITY_QUERY = 0xFFFFFFFF
KEYRING_QUOTA_WAIT = 60.0  # seconds, before the run's wall time starts

_ALLOW = 0x7FFF0000
_CMP_NE, _CMP_MASKED_EQ = 1, 7
_KEYCTL_JOIN_SESSION_KEYRING = 1


def _errno_action(number: int) -> int:
    return 0x00050000 | number


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


class SeccompUnavailable(OSError):
    """libseccomp is missing or refused to build the filter."""


@functools.cache
def _libseccomp() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError as exc:
        raise SeccompUnavailable(
            f"libseccomp is not installed ({exc}); install it (Debian/Ubuntu: `apt-get install libseccomp2`, "
            "Fedora: `dnf install libseccomp`)"
        ) from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_arch_native.restype = ctypes.c_uint32
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    ]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


@functools.cache
def filter_program() -> bytes:
    """The compiled BPF program (what `seccomp_export_bpf` writes), built once per process."""
    lib = _libseccomp()
    ctx = lib.seccomp_init(_ALLOW)
    if not ctx:
        raise SeccompUnavailable("libseccomp could not start a filter")
    try:
        if lib.seccomp_arch_native() == lib.seccomp_arch_resolve_name(b"x86_64"):
            # x32 system calls carry the x86_64 architecture tag: without rules of their own they
            # would pass under other numbers. (32-bit x86 calls are killed: not in the filter.)
            _check(lib.seccomp_arch_add(ctx, lib.seccomp_arch_resolve_name(b"x32")), "add the x32 ABI")
        eperm = _errno_action(errno.EPERM)
        for names in DENIED.values():
            for name in names:
                _rule(lib, ctx, eperm, name)
        _rule(lib, ctx, _errno_action(errno.ENOSYS), "clone3")
        flags_arg = 1 if platform.machine().startswith("s390") else 0
        for flag in NAMESPACE_FLAGS:
            _rule(lib, ctx, eperm, "clone", _ArgCmp(flags_arg, _CMP_MASKED_EQ, flag, flag))
        for request in TERMINAL_IOCTLS:
            _rule(lib, ctx, eperm, "ioctl", _ArgCmp(1, _CMP_MASKED_EQ, 0xFFFFFFFF, request))
        # Reading the personality stays allowed; changing it (e.g. to turn off address-space
        # randomisation) does not.
        _rule(lib, ctx, eperm, "personality", _ArgCmp(0, _CMP_NE, PERSONALITY_QUERY, 0))
        fd = os.memfd_create("rewardkit-seccomp", os.MFD_CLOEXEC)
        try:
            _check(lib.seccomp_export_bpf(ctx, fd), "export the filter")
            os.lseek(fd, 0, os.SEEK_SET)
            program = b""
            while chunk := os.read(fd, 65536):
                program += chunk
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)
    return program


def _rule(lib: ctypes.CDLL, ctx: int, action: int, name: str, *conditions: _ArgCmp) -> None:
    number = lib.seccomp_syscall_resolve_name(name.encode())
    if number == -1:  # unknown to this libseccomp: the kernel it was built for has no such call
        return
    array = (_ArgCmp * len(conditions))(*conditions) if conditions else None
    _check(lib.seccomp_rule_add_array(ctx, action, number, len(conditions), array), f"deny {name}")


def _check(result: int, what: str) -> None:
    if result < 0:
        raise SeccompUnavailable(f"libseccomp could not {what}: {os.strerror(-result)}")


def filter_fd() -> int:
    """A readable fd holding the filter, for one bubblewrap (`--seccomp` takes ownership of it)."""
    program = filter_program()
    fd = os.memfd_create("rewardkit-seccomp", 0)  # not close-on-exec: bubblewrap inherits it
    os.write(fd, program)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


@functools.cache
def _keyctl() -> Callable[[int, int], int] | None:
    """keyctl(2) through the C library's `syscall` (it has no wrapper of its own); None without
    libseccomp to name its number, which only the weak `process` mode tolerates."""
    try:
        number = _libseccomp().seccomp_syscall_resolve_name(b"keyctl")
    except SeccompUnavailable:
        return None
    syscall = ctypes.CDLL(None, use_errno=True).syscall
    syscall.restype = ctypes.c_long
    return lambda operation, argument: int(
        syscall(ctypes.c_long(number), ctypes.c_long(operation), ctypes.c_long(argument))
    )


def pre_exec(cgroup_procs: Sequence[str]) -> Callable[[], None]:
    """What the process that becomes the run's first stage does between fork and exec: join the
    run's cgroup (so every later fork is born inside it), take a fresh session keyring, and undo
    an ignored SIGCHLD (inherited across exec, it would keep bubblewrap from learning that its
    child ended, and make the program's own waits fail). Only system calls: no import, no lock
    that another thread of the caller could hold at the fork."""
    keyctl = _keyctl()
    files = [os.fsencode(path) for path in cgroup_procs]
    reset_signal = ctypes.CDLL(None, use_errno=True).signal
    reset_signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
    reset_signal.restype = ctypes.c_void_p

    def prepare() -> None:
        pid = str(os.getpid()).encode()
        for path in files:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)
        if keyctl is not None:
            _join_fresh_session_keyring(keyctl)
        reset_signal(signal.SIGCHLD, None)  # SIG_DFL

    return prepare


def _join_fresh_session_keyring(keyctl: Callable[[int, int], int]) -> None:
    # A run's keyring is freed by the kernel's deferred garbage collector once the run is over,
    # which lags seconds behind on a busy machine: a non-root user (200 keys by default) running
    # many sandboxes can be over quota until it catches up. Runs then start at the pace it frees.
    waited, pause = 0.0, 0.01
    while keyctl(_KEYCTL_JOIN_SESSION_KEYRING, 0) < 0:
        code = ctypes.get_errno()
        # Keyrings the caller cannot use (no kernel support, or a container's own filter
        # denying keyctl) are out of the run's reach too: the filter is inherited.
        if code in (errno.ENOSYS, errno.EPERM):
            return
        if code != errno.EDQUOT or waited >= KEYRING_QUOTA_WAIT:
            raise OSError(code, f"cannot give the run a fresh session keyring: {os.strerror(code)}")
        time.sleep(pause)
        waited += pause
        pause = min(pause * 2, 0.25)
