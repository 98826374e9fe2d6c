"""Run one untrusted command in a bubblewrap sandbox, with limits, streaming its output.

Layers (docs/runs.md says what each one stops, measured):

- bwrap ``--unshare-user --unshare-ipc --unshare-pid --unshare-uts --unshare-cgroup-try
  --disable-userns``: new user, pid, ipc, uts, cgroup namespaces. The network namespace
  has no interface but a loopback: as root, an empty one kept per run uid and entered by
  the spawning thread (``_netns_for``: making and tearing one down per run is bwrap's
  dearest step); else bwrap's own ``--unshare-net``.
  The filesystem is a fresh root: /usr read-only (and the /bin, /lib... links into it),
  a few /etc files, a private /proc and /dev, a size-capped tmpfs /tmp, and the run's
  work directory read-write at /box. Nothing else of the host (no repo, no /root).
- a run uid of its own: when the worker is root, each Box takes a free uid from a
  locked range and bwrap is started as that uid, so RLIMIT_NPROC counts only this run's
  processes and a final sweep can kill every process of that uid. Inside, the program
  sees uid 65534.
- rlimits (CPU, AS, NPROC, FSIZE, NOFILE, CORE=0) set on the sandbox's pid 1 while
  bwrap holds it, before the program exists; inherited by all (``Box.run``).
- cgroup v1 ``memory``, ``pids`` and ``cpuacct`` (nested under the worker's own
  cgroups) when writable: a total memory cap with an OOM-kill we can see, a pids cap,
  and the CPU time of every process of the run (killed ones included). bwrap is born
  in them (``_thread_in_cgroups``).
- seccomp (seccomp.py) denying non-AF_UNIX sockets, io_uring, ptrace, ...
- the wall clock: bwrap runs in its own session; on overrun, cancel or output cap the
  whole process group is killed; ``--die-with-parent`` and the pid namespace make
  everything inside die with it (a ``setsid`` child included).
"""

import atexit
import codecs
import contextlib
import ctypes
import errno
import fcntl
import json
import os
import platform
import queue
import resource
import select
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field

from .seccomp import build_filter

BWRAP = shutil.which("bwrap") or "/usr/bin/bwrap"
INSIDE = "/box"
SANDBOX_ENV = {"PATH": "/usr/bin:/bin", "HOME": INSIDE, "LANG": "C.UTF-8"}
ETC_FILES = ("/etc/ld.so.cache", "/etc/alternatives", "/etc/localtime")
# every namespace of --unshare-all but the network's, which bwrap makes only where no
# prepared one is used (see _netns_for)
UNSHARE = ["--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
RUN_UID_BASE, RUN_UID_COUNT = 61000, 256
# The run uids are a resource of the host, not of one worker: every sandbox on this
# host takes its uid under one lock directory, whatever its work directory, so that
# two workers never share a uid (one's sweep would kill the other's program).
UID_LOCK_DIR = os.path.join(tempfile.gettempdir(), "oc-run-uids")
INNER_ID = "65534"
CGROUP_ROOT = "/sys/fs/cgroup"
CLEAN_MARK = b"clean"  # in a uid's lock file: its last box ended with every process gone
BUSY_MARK = b"inuse"  # (same length: overwritten in place)
FLUSH_EVERY_S = 0.1
CANCEL_POLL_S = 0.2
DRAIN_AFTER_EXIT_S = 0.5
MB = 1024 * 1024


@dataclass
class Limits:
    wall_s: float = 10
    cpu_s: float = 5
    memory_mb: int = 256
    processes: int = 64
    output_kb: int = 64
    file_mb: int = 16
    tmp_mb: int = 16
    open_files: int = 64


@dataclass
class Outcome:
    """What happened to one sandboxed command (raw facts; execute.py names the verdict)."""

    exit_code: int | None = None
    signal: int | None = None
    cpu_ms: int = 0
    wall_ms: int = 0
    memory_kb: int | None = None
    truncated: bool = False
    killed_for: str | None = None  # "wall" | "output" | "cancel" | None
    memory_exceeded: bool = False  # the cgroup OOM-killed something
    started: bool = True  # False: bwrap could not set the sandbox up
    error: str | None = None  # bwrap's own complaint when not started
    output_bytes: int = 0
    tail: dict = field(default_factory=dict)  # last bytes per stream, for diagnosis


class SandboxError(RuntimeError):
    pass


class Box:
    """One run's sandbox: a work directory, a uid and cgroups, used for every stage.

    ``with Box() as box: box.run(argv, limits, ...)``. On exit every process of the
    run is killed, the cgroups emptied and the work directory handed to ``discard_dir``
    (deleted by a worker thread, off the run's critical path).
    """

    def __init__(self, base_dir=None, cgroups=True):
        self.base_dir = base_dir or os.path.join(tempfile.gettempdir(), "oc-runs")
        self.use_cgroups = cgroups
        self.work_dir = None
        self.uid = None
        self._lock_fd = None
        self._cgroups = []
        self._oom_kills = 0
        # False once a run's processes could not be proven gone (then sweeps by uid run)
        self._clean = True

    # -- life cycle -------------------------------------------------------------
    def __enter__(self):
        become_subreaper()
        os.makedirs(self.base_dir, mode=0o711, exist_ok=True)
        if os.geteuid() == 0:
            os.chmod(self.base_dir, 0o711)
            self.uid = self._take_uid()
        self.work_dir = tempfile.mkdtemp(prefix="box-", dir=self.base_dir)
        if self.use_cgroups:
            # named by the run uid (locked): reused by the next Box with this uid (kept
            # after the box closes, emptied), and a crashed worker's leftovers are killed
            self._cgroups = _cgroups_for(f"oc-run-{self.uid if self.uid is not None else os.getpid()}")
        return self

    def __exit__(self, *exc):
        self.kill_all(sweep_uid=True)
        if self.uid is None:  # named by the worker's pid: nobody reuses them
            for path in self._cgroups:
                _forget_cgroup(path)
        if self.work_dir:
            discard_dir(self.work_dir)
        if self._lock_fd is not None:
            if self._clean:  # every process of the uid is gone: the next taker needs no sweep
                with contextlib.suppress(OSError):
                    os.pwrite(self._lock_fd, CLEAN_MARK, 0)
            os.close(self._lock_fd)
        return False

    def hand_over(self):
        """Give the work directory (as written by the worker) to the run uid."""
        if self.uid is None:
            return
        for root, dirs, files in os.walk(self.work_dir):
            for name in dirs + files:
                os.chown(os.path.join(root, name), self.uid, self.uid, follow_symlinks=False)
        os.chown(self.work_dir, self.uid, self.uid)

    def _take_uid(self):
        lock_dir = UID_LOCK_DIR
        os.makedirs(lock_dir, mode=0o700, exist_ok=True)
        for uid in range(RUN_UID_BASE, RUN_UID_BASE + RUN_UID_COUNT):
            fd = os.open(os.path.join(lock_dir, str(uid)), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self._lock_fd = fd
            # the last holder marked the uid clean when it closed its box with every
            # process of the run gone; else (a crashed worker) sweep its leftovers
            clean = os.pread(fd, len(CLEAN_MARK), 0) == CLEAN_MARK
            os.pwrite(fd, BUSY_MARK, 0)  # not clean while this box holds it
            if not clean:
                _kill_uid(uid)
            return uid
        raise SandboxError("no free run uid: too many concurrent runs on this host")

    def kill_all(self, sweep_uid=False):
        """Kill every process of this run left after a command.

        Every process of a run is in its pid namespace, and the kernel kills (and waits
        for) every process of a pid namespace before its init becomes a zombie: once
        ``run`` has seen the sandbox's pid 1 exit, nothing of the run is left and no
        sweep is needed (``self._clean``). Otherwise: cgroup membership is inherited
        and cannot be left without privileges, so a cgroup's list is enough; the uid
        sweep (a /proc scan) runs when there is no cgroup, and once more when the box
        closes.
        """
        if self._clean and not sweep_uid:
            return
        for path in self._cgroups:
            _kill_cgroup(path)  # when clean (the box closes): one read of an empty list
        if self._clean:
            return
        if self.uid is not None and (sweep_uid or not self._cgroups):
            self._clean = _kill_uid(self.uid)

    # -- one command --------------------------------------------------------------
    def command(self, argv, limits, own_netns=True):
        """bwrap's argv up to the program. ``own_netns=False``: bwrap is started inside the
        run uid's prepared network namespace (``_netns_for``) and makes no new one."""
        cmd = [
            BWRAP,
            *([*UNSHARE, "--unshare-net"] if own_netns else UNSHARE),
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--uid",
            INNER_ID,
            "--gid",
            INNER_ID,
            "--hostname",
            "box",
            "--ro-bind",
            "/usr",
            "/usr",
        ]
        for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            if os.path.islink(top):
                cmd += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                cmd += ["--ro-bind", top, top]
        for path in ETC_FILES:
            cmd += ["--ro-bind-try", path, path]
        cmd += [
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--size",
            str(limits.tmp_mb * MB),
            "--tmpfs",
            "/tmp",
            "--bind",
            self.work_dir,
            INSIDE,
            "--chdir",
            INSIDE,
        ]
        return cmd

    def run(self, argv, limits, *, stdin=b"", on_output=None, should_cancel=None):
        """Run argv (a list; never a shell) inside the box. Returns an Outcome.

        The start, with no Python code between fork and exec (a ``preexec_fn`` makes
        subprocess fork the whole worker, ~7 ms here, instead of vfork): bwrap is
        spawned in a new session by a thread that has taken the run uid
        (``_as_run_uid``) and joined the run's cgroups (``_thread_in_cgroups``) and,
        as root, the run uid's network namespace (``_thread_in_netns``) alone, so it
        is born with all three; it sets the sandbox up, then its pid 1 waits on
        ``--block-fd`` before it loads seccomp and forks the program. Meanwhile the
        worker resets the cgroups' limits and counters, reads pid 1's pid from
        ``--json-status-fd`` and sets its rlimits (``prlimit``), and only then lets it
        go on: the program and everything it starts inherit them, and no user code
        runs before they are in place. If any of that fails, the sandbox is killed
        without ever being released. docs/runs.md "How a run starts".
        """
        filt = _filter()
        keep = []
        seccomp_fd = status_r = status_w = stdin_fd = block_r = block_w = inner_fd = None
        try:
            netns = _netns_for(self.uid)
            cmd = self.command(argv, limits, own_netns=netns is None)
            if filt is not None:
                seccomp_fd = _memfd("oc-seccomp", filt)
                cmd += ["--seccomp", str(seccomp_fd)]
                keep.append(seccomp_fd)
            status_r, status_w = os.pipe()
            block_r, block_w = os.pipe()
            keep += [status_w, block_r]
            cmd += ["--json-status-fd", str(status_w), "--block-fd", str(block_r), "--", *argv]
            stdin_fd = _memfd("oc-stdin", stdin if isinstance(stdin, bytes) else stdin.encode())
            rlimits = _rlimits(limits, self.uid)
            was_clean, self._clean = self._clean, False  # until this run is seen gone
            started = time.monotonic()
            with _thread_in_cgroups(self._cgroups), _thread_in_netns(netns):  # bwrap is born in them
                proc, rlimits = _spawn(
                    self.uid,
                    rlimits,
                    cmd,
                    stdin=stdin_fd,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=dict(SANDBOX_ENV),
                    close_fds=True,
                    pass_fds=keep,
                )
            for fd in (status_w, block_r):
                os.close(fd)
            status_w = block_r = None
            try:
                # while bwrap sets the sandbox up (nothing of the user's runs before the
                # release below): this run's cgroup limits and counters
                for path in self._cgroups:
                    _reset_cgroup(path, limits)
                    if "/memory/" in path:
                        self._oom_kills = _read_oom_kills(path)
                inner, status_raw = _await_inner_pid(status_r, proc, limits.wall_s + 5)
                if inner is not None:
                    inner_fd = _pidfd(inner)
                    try:
                        _confine(inner, self.uid, rlimits)
                        os.write(block_w, b"1")  # released: seccomp, fork, exec of the program
                    except (ProcessLookupError, BrokenPipeError):
                        pass  # its setup failed and it exited: bwrap says why (stderr)
            except BaseException:
                _kill_group(proc.pid)  # never released: no user code ran
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(proc.pid, 0)
                proc.returncode = -signal.SIGKILL
                proc.stdout.close()
                proc.stderr.close()
                raise
            os.close(block_w)
            block_w = None
            outcome = _pump(proc, limits, started, on_output, should_cancel)
            outcome.wall_ms = int((time.monotonic() - started) * 1000)
            inner = _read_status(status_r, outcome, status_raw)
            self._clean = was_clean and _reap_inner(inner, inner_fd, outcome)
            self.kill_all()
            self._read_cgroups(outcome)
            return outcome
        finally:
            for fd in (seccomp_fd, status_r, status_w, stdin_fd, block_r, block_w, inner_fd):
                if fd is not None:
                    os.close(fd)

    def _read_cgroups(self, outcome):
        for path in self._cgroups:
            if "/cpuacct/" in path:  # counts processes killed before anyone reaped them
                used = _read_int(os.path.join(path, "cpuacct.usage"))
                if used is not None:
                    outcome.cpu_ms = max(outcome.cpu_ms, used // 1_000_000)
            if "/memory/" in path:
                kills = _read_oom_kills(path)
                outcome.memory_exceeded = kills > self._oom_kills
                self._oom_kills = kills


# -- process start -----------------------------------------------------------------
def _rlimits(limits, uid):
    processes = limits.processes + 3  # bwrap, its pid-1 reaper, the program
    if uid is None:  # counted per real uid: the worker's own too
        processes += _count_uid_processes(os.getuid())
    cpu = max(1, int(limits.cpu_s + 0.999))
    fsize = limits.file_mb * MB
    return [
        (resource.RLIMIT_CORE, (0, 0)),
        (resource.RLIMIT_CPU, (cpu, cpu + 1)),
        (resource.RLIMIT_AS, (limits.memory_mb * MB, limits.memory_mb * MB)),
        (resource.RLIMIT_NPROC, (processes, processes)),
        (resource.RLIMIT_FSIZE, (fsize, fsize)),
        (resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files)),
    ]


_filter_cache = []


def _filter():
    if not _filter_cache:
        _filter_cache.append(build_filter())
    return _filter_cache[0]


# setgroups, setresgid, setresuid: raw syscalls change the calling thread only (glibc's
# setuid() changes every thread of the worker, through a signal to each)
_CRED_SYSCALLS = {"x86_64": (116, 119, 117), "amd64": (116, 119, 117), "aarch64": (159, 149, 147)}
_libc = None
_PRCTL = {"aarch64": 167}.get(platform.machine(), 157)
_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 47, 4


def _syscall(number, *args):
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.syscall(ctypes.c_long(number), *(ctypes.c_long(a) for a in args)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _thread_ids_supported():
    return platform.machine() in _CRED_SYSCALLS


@contextlib.contextmanager
def _as_run_uid(uid):
    """This thread alone takes ``uid`` (gid likewise, no groups) for the block; a no-op
    for None.

    What is done inside: spawning bwrap (so that subprocess keeps its vfork path: a
    ``preexec_fn`` or ``user=`` makes it fork, i.e. copy, the whole worker, ~7 ms here,
    against ~0.7 ms), and ``prlimit`` on the sandbox's pid 1 (allowed to a caller with
    the target's ids; the worker's root may lack CAP_SYS_RESOURCE, as it does here).
    Raw setresgid/setresuid keep the saved id 0, so the thread comes back to root (and
    its capabilities) after. A child spawned meanwhile inherits the thread's ids, and
    execve copies the effective ids to the saved ones: bwrap starts with ruid = euid =
    suid = uid, no way back to root and no capabilities (a non-root exec of a file
    without file capabilities keeps none; the thread's ambient set is cleared first).
    Other threads of the worker keep root throughout.
    """
    if uid is None:
        yield
        return
    setgroups, setresgid, setresuid = _CRED_SYSCALLS[platform.machine()]
    groups = os.getgroups()
    keep = -1  # "unchanged" for setres[ug]id
    try:
        _syscall(_PRCTL, _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
        _syscall(setgroups, 0, 0)
        _syscall(setresgid, uid, uid, keep)
        _syscall(setresuid, uid, uid, keep)
        yield
    finally:
        _syscall(setresuid, 0, 0, 0)  # the saved uid 0 allows it; capabilities come back
        _syscall(setresgid, 0, 0, 0)
        _set_thread_groups(setgroups, groups)
        if os.geteuid() != 0 or os.getegid() != 0:  # never go on with the wrong ids
            raise SandboxError("could not restore the worker thread's credentials")


def _spawn(uid, rlimits, cmd, **popen):
    """Start bwrap as the run uid in a new session. Returns (Popen, rlimits still to set).

    Where this thread's ids cannot be switched alone (an architecture without the
    syscall numbers above): the fork path, rlimits and ids set in a ``preexec_fn``."""
    if uid is None or _thread_ids_supported():
        with _as_run_uid(uid):
            return subprocess.Popen(cmd, start_new_session=True, **popen), rlimits

    def preexec():
        for which, value in rlimits:
            resource.setrlimit(which, value)

    proc = subprocess.Popen(
        cmd, start_new_session=True, user=uid, group=uid, extra_groups=[], preexec_fn=preexec, **popen
    )
    return proc, []


def _set_thread_groups(number, groups):
    array = (ctypes.c_uint * max(1, len(groups)))(*groups)
    if _libc.syscall(ctypes.c_long(number), ctypes.c_long(len(groups)), array) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _await_inner_pid(fd, proc, timeout):
    """Read bwrap's status pipe until it names the sandbox's pid 1 (``child-pid``).

    Returns (pid or None, the bytes read). bwrap writes it right after clone(), before
    the child sets anything up; None: bwrap exited first (it could not start) or the
    timeout passed (then the whole session is killed).
    """
    raw = b""
    deadline = time.monotonic() + timeout
    while True:
        for line in raw.split(b"\n")[:-1]:
            with contextlib.suppress(ValueError):
                doc = json.loads(line)
                if isinstance(doc, dict) and "child-pid" in doc:
                    return int(doc["child-pid"]), raw
        left = deadline - time.monotonic()
        ready = select.select([fd], [], [], max(0.0, left))[0] if left > 0 else []
        if not ready:
            _kill_group(proc.pid)
            return None, raw
        chunk = os.read(fd, 4096)
        if not chunk:
            return None, raw
        raw += chunk


def _confine(pid, uid, rlimits):
    """Set the rlimits of the (blocked) sandbox pid 1: the program inherits them."""
    if rlimits:
        with _as_run_uid(uid):
            for which, value in rlimits:
                resource.prlimit(pid, which, value)


def _kill_group(pgid):
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _memfd(name, data):
    fd = os.memfd_create(name, 0) if hasattr(os, "memfd_create") else _tmpfd()
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _tmpfd():
    fd, path = tempfile.mkstemp()
    os.unlink(path)
    return fd


# -- output and limits while it runs -------------------------------------------------
class _Stream:
    def __init__(self, name):
        self.name = name
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.pending = []
        self.tail = b""

    def take(self, data, final=False):
        self.tail = (self.tail + data)[-2048:]
        text = self.decoder.decode(data, final)
        if text:
            self.pending.append(text)


def _pump(proc, limits, started, on_output, should_cancel):
    """Read both pipes as data comes, enforce wall/output/cancel, reap. Returns Outcome."""
    outcome = Outcome()
    cap = limits.output_kb * 1024
    streams = {proc.stdout.fileno(): _Stream("stdout"), proc.stderr.fileno(): _Stream("stderr")}
    sel = selectors.DefaultSelector()
    for fd in streams:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    pidfd = _pidfd(proc.pid)  # readable when bwrap exits: no polling latency
    if pidfd is not None:
        sel.register(pidfd, selectors.EVENT_READ)
    deadline = started + limits.wall_s
    last_flush = last_cancel_poll = started
    status = rusage = None
    exited_at = None

    def flush():
        for stream in streams.values():
            if stream.pending and on_output:
                on_output(stream.name, "".join(stream.pending))
            stream.pending.clear()

    def kill(reason):
        if outcome.killed_for is None:
            outcome.killed_for = reason
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    try:
        while True:
            now = time.monotonic()
            if status is None:
                pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    status, rusage, exited_at = st, ru, now
                    if pidfd is not None:
                        sel.unregister(pidfd)
            open_fds = [fd for fd in sel.get_map() if fd in streams]
            if status is not None and (not open_fds or now - exited_at > DRAIN_AFTER_EXIT_S):
                break
            if status is None and now >= deadline:
                kill("wall")
            if should_cancel and status is None and now - last_cancel_poll >= CANCEL_POLL_S:
                last_cancel_poll = now
                if should_cancel():
                    kill("cancel")
            wait = min(FLUSH_EVERY_S / 2, max(0.0, deadline - now) + 0.01)
            if not sel.get_map():
                wait = min(wait, 0.005)
            for key, _ in sel.select(wait) if sel.get_map() else _sleep(wait):
                fd = key.fd
                if fd not in streams:
                    continue
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                stream = streams[fd]
                if not data:
                    sel.unregister(fd)
                    stream.take(b"", final=True)
                    continue
                room = cap - outcome.output_bytes
                if len(data) > room:
                    data = data[: max(room, 0)]
                    outcome.truncated = True
                    kill("output")
                outcome.output_bytes += len(data)
                stream.take(data)
            if time.monotonic() - last_flush >= FLUSH_EVERY_S:
                flush()
                last_flush = time.monotonic()
    finally:
        if status is None:
            kill(outcome.killed_for or "internal")
            _, status, rusage = os.wait4(proc.pid, 0)
        proc.returncode = status  # reaped by hand (wait4 gives the rusage); Popen must not
        for stream in streams.values():
            stream.take(b"", final=True)
        flush()
        sel.close()
        if pidfd is not None:
            os.close(pidfd)
        proc.stdout.close()
        proc.stderr.close()
    outcome.tail = {s.name: s.tail for s in streams.values()}
    outcome.cpu_ms = int((rusage.ru_utime + rusage.ru_stime) * 1000)
    outcome.memory_kb = rusage.ru_maxrss
    if os.WIFSIGNALED(status):
        outcome.signal = os.WTERMSIG(status)
    else:
        outcome.exit_code = os.WEXITSTATUS(status)
    return outcome


def _pidfd(pid):
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _sleep(seconds):
    time.sleep(seconds)
    return []


def _read_status(fd, outcome, raw=b""):
    """bwrap's --json-status-fd: {"child-pid"} once the sandbox is up, then {"exit-code"}."""
    with contextlib.suppress(OSError):
        os.set_blocking(fd, False)
        while chunk := os.read(fd, 4096):
            raw += chunk
    docs = []
    for line in raw.decode(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            docs.append(json.loads(line))
    inner = next((d["child-pid"] for d in docs if "child-pid" in d), None)
    outcome.started = inner is not None or outcome.killed_for is not None
    if not outcome.started:
        outcome.error = outcome.tail.get("stderr", b"").decode(errors="replace").strip()
        return None
    # bwrap reports a program killed by signal N as exit code 128+N
    if (
        outcome.signal is None
        and outcome.exit_code is not None
        and outcome.exit_code > 128
        and outcome.killed_for is None
    ):
        outcome.signal, outcome.exit_code = outcome.exit_code - 128, None
    return inner


# -- reaping the sandbox's pid 1 -----------------------------------------------------
_PR_SET_CHILD_SUBREAPER, _PR_GET_CHILD_SUBREAPER = 36, 37
_subreaper = None


def become_subreaper():
    """Make this process the reaper of orphans it started (once per process).

    bwrap's outer process exits as soon as the sandbox's pid 1 reports the program's
    status, before pid 1 is reaped; pid 1 is then an orphan. As its subreaper the
    worker reaps it, which keeps zombies from piling up (in a container whose pid 1
    does not reap) and gives the rusage of the whole run (pid 1 reaped the program).
    """
    global _subreaper
    if _subreaper is None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            _subreaper = libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
        except (OSError, AttributeError):
            _subreaper = False
    return _subreaper


def _reap_inner(pid, pidfd, outcome, timeout=2.0):
    """Wait for the sandbox's pid 1 to exit, reap it if it is ours; True if it exited.

    pid 1 of a pid namespace becomes a zombie (its pidfd readable) only after the
    kernel has killed and waited for every other process of the namespace, and no
    process of a run can leave the namespace (seccomp denies setns/unshare): so True
    means every process of the run is gone, no /proc sweep needed. Reaping it (as
    subreaper) adds the whole run's rusage (pid 1 reaped the program).
    """
    if pid is None:  # bwrap never cloned the sandbox (or it was killed before saying so)
        return outcome.killed_for is None and not outcome.started
    if pidfd is None:
        return False
    if not select.select([pidfd], [], [], timeout)[0]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not select.select([pidfd], [], [], timeout)[0]:
            return False
    if _subreaper:
        with contextlib.suppress(ChildProcessError):  # not reparented to us: no figures
            got, _, usage = os.wait4(pid, os.WNOHANG)
            if got:
                outcome.cpu_ms += int((usage.ru_utime + usage.ru_stime) * 1000)
                outcome.memory_kb = max(outcome.memory_kb or 0, usage.ru_maxrss)
    return True


# -- uids ------------------------------------------------------------------------------
def _uid_pids(uid):
    """Live (not zombie) processes whose /proc entry belongs to uid."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid != uid:
                continue
            with open(f"/proc/{name}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        # a zombie is already dead (an orphaned pid-1 of a run waits for its reaper)
        if state != b"Z":
            pids.append(int(name))
    return pids


def _count_uid_processes(uid):
    return len(_uid_pids(uid))


def _kill_uid(uid, seconds=5.0):
    """Kill every process of a run uid (never the worker's: only called for run uids).

    A fork bomb may still be forking while it is killed, and on a loaded machine a
    killed process takes a while to leave /proc: keep at it until none is left (by
    time, not by a number of rounds)."""
    deadline = time.monotonic() + seconds
    while True:
        pids = _uid_pids(uid)
        if not pids:
            return True
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() >= deadline:
            return not _uid_pids(uid)
        time.sleep(0.01)


# -- cgroups (v1, optional) ----------------------------------------------------------
def _own_cgroups(source="/proc/self/cgroup"):
    """{controller: path} of this process (or thread, from /proc/thread-self/cgroup)."""
    found = {}
    try:
        with open(source) as f:
            for line in f:
                _, names, path = line.rstrip("\n").split(":", 2)
                for name in names.split(","):
                    found.setdefault(name, path)
    except OSError:
        pass
    return found


def _own_cgroup(controller, source="/proc/self/cgroup"):
    return _own_cgroups(source).get(controller)


@contextlib.contextmanager
def _thread_in_cgroups(paths):
    """This thread alone joins the run's cgroups for the block, then goes back to its own.

    A child forked meanwhile is born in them (cgroup membership is inherited), and v1
    lets one thread move by writing "0" to a cgroup's ``tasks``: that migrates only the
    caller, without the global lock whose RCU grace period makes a move through
    ``cgroup.procs`` cost ~5-15 ms here (the earlier design joined in a ``preexec_fn``).
    """
    if not paths:
        yield
        return
    back = []
    mine = _own_cgroups("/proc/thread-self/cgroup")
    try:
        for path in paths:
            controller = path[len(CGROUP_ROOT) + 1 :].split("/", 1)[0]
            own = mine.get(controller)
            if own is None:
                raise SandboxError(f"no own {controller} cgroup")
            back.append(os.path.join(CGROUP_ROOT, controller, own.lstrip("/")))
            _write(path, "tasks", 0)
        yield
    finally:
        failed = []
        for path in back:
            try:
                _write(path, "tasks", 0)
            except OSError as exc:
                failed.append(f"{path}: {exc}")
        if failed:  # _kill_cgroup never kills the worker itself, even then
            raise SandboxError(f"the worker thread could not leave a run cgroup: {'; '.join(failed)}")


_cgroup_cache = {}


def _cgroups_for(name):
    """The run cgroups called ``name``, made once per worker and then reused.

    Made (or, left by a crashed worker, emptied) on first use; a box's runs reset
    their limits and counters, and kill whatever is in them; the directories stay
    when the box closes (removing and re-creating v1 cgroups per run costs time)."""
    paths = _cgroup_cache.get(name)
    if paths is None or not all(os.path.isdir(p) for p in paths):
        return _cgroup_cache.setdefault(name, _make_cgroups(name))
    for path in paths:
        _kill_cgroup(path)  # one read of an empty list, normally
    return paths


def _forget_cgroup(path):
    for name, paths in list(_cgroup_cache.items()):
        if path in paths:
            del _cgroup_cache[name]
    _remove_cgroup(path)


def _make_cgroups(name):
    """Create memory and pids cgroups for a run under the worker's own; [] if not allowed."""
    made = []
    if os.geteuid() != 0:
        return made
    for controller in ("memory", "pids", "cpuacct"):
        mount = f"{CGROUP_ROOT}/{controller}"
        own = _own_cgroup(controller)
        if own is None or not os.path.isdir(mount):
            continue
        path = os.path.join(mount, own.lstrip("/"), name)
        try:
            os.mkdir(path)
        except FileExistsError:
            _kill_cgroup(path)
        except OSError:
            continue
        made.append(path)
    return made


def _reset_cgroup(path, limits):
    if "/memory/" in path:
        want = limits.memory_mb * MB
        for attempt in range(2):
            # memsw (memory+swap) must stay >= memory: the order depends on the direction
            for name in ("memory.memsw.limit_in_bytes", "memory.limit_in_bytes", "memory.memsw.limit_in_bytes"):
                with contextlib.suppress(OSError):
                    _write(path, name, want)
            if _read_int(os.path.join(path, "memory.limit_in_bytes")) == want:
                break
            # a reused cgroup still charged (page cache of an earlier run) above the new
            # limit refuses it (EBUSY): empty it, then again
            if attempt == 0:
                with contextlib.suppress(OSError):
                    _write(path, "memory.force_empty", 0)
        else:
            raise SandboxError(f"could not set the run's memory limit in {path}")
        _write(path, "memory.max_usage_in_bytes", 0)
    elif "/pids/" in path:
        _write(path, "pids.max", limits.processes + 3)  # + bwrap, its pid 1, the program
    else:
        _write(path, "cpuacct.usage", 0)


def _write(path, name, value):
    fd = os.open(f"{path}/{name}", os.O_WRONLY)
    try:
        os.write(fd, str(value).encode())
    finally:
        os.close(fd)


def _read_int(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _read_oom_kills(path):
    try:
        with open(os.path.join(path, "memory.oom_control")) as f:
            for line in f:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _kill_cgroup(path):
    for _ in range(50):
        try:
            fd = os.open(f"{path}/cgroup.procs", os.O_RDONLY)
            try:
                pids = [int(p) for p in os.read(fd, 1 << 20).split()]
            finally:
                os.close(fd)
        except OSError:
            return
        if not pids:
            return
        me = os.getpid()  # listed while one of its threads spawns into the cgroup
        if pids == [me]:
            return
        for pid in pids:
            if pid != me:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


def _remove_cgroup(path):
    for _ in range(50):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                return
            _kill_cgroup(path)
            time.sleep(0.02)


# -- network namespaces (root) ----------------------------------------------------------
_netns_cache = {}  # run uid -> fd of its prepared network namespace
_netns_refused = []  # why this worker cannot make them (then bwrap makes one per run)


def _netns_for(uid):
    """The fd of an empty network namespace kept for this run uid; None: bwrap makes one.

    A network namespace is the dearest of bwrap's: made per run with --unshare-net, it is
    torn down after the run by the kernel (``cleanup_net``, in a kernel worker: ~1.5 ms
    of CPU per run measured here, on top of making it). A root worker makes one per run
    uid instead, once, and starts bwrap inside it (``_thread_in_netns``). Like bwrap's it
    has no interface but a loopback (here left down), and it belongs to the host's user
    namespace, so nothing in the sandbox can configure it (no capability there). Only the
    runs of that uid use it, and they never overlap (the uid lock). A run could leave one
    thing in it, a socket (seccomp allows AF_UNIX only: an abstract name) still alive
    after its processes, e.g. one held only by a message in flight: such a namespace is
    never reused, a fresh one replaces it (``_netns_is_empty``, checked before each use).
    Without the seccomp filter (not x86_64) other socket families would be possible and
    that check would not see them: bwrap makes one per run there.
    """
    if uid is None or _netns_refused or _filter() is None:
        return None
    fd = _netns_cache.get(uid)
    if fd is not None and not _netns_is_empty(fd):
        os.close(fd)
        fd = None
    if fd is None:
        try:
            fd = _new_netns()
        except OSError as exc:  # no CAP_SYS_ADMIN (a container): bwrap makes one per run
            _netns_refused.append(f"{type(exc).__name__}: {exc}")
            return None
        _netns_cache[uid] = fd
    return fd


def _new_netns():
    with _back_to_own_netns():
        os.unshare(os.CLONE_NEWNET)  # this thread only, then back
        return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


def _netns_is_empty(fd):
    """No socket in it (/proc/thread-self/net/unix lists this thread's namespace's)."""
    with _thread_in_netns(fd), open("/proc/thread-self/net/unix", "rb") as f:
        return len(f.read().splitlines()) <= 1  # the header


@contextlib.contextmanager
def _thread_in_netns(fd):
    """This thread alone enters the network namespace ``fd`` for the block (setns of a
    network namespace moves the calling thread only); a child spawned meanwhile is born
    in it. A no-op for None."""
    if fd is None:
        yield
        return
    with _back_to_own_netns():
        os.setns(fd, os.CLONE_NEWNET)
        yield


@contextlib.contextmanager
def _back_to_own_netns():
    """This thread is back in the network namespace it had before the block, whatever the
    block did to it (it may have left it: setns, unshare)."""
    back = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        yield
    finally:
        try:
            os.setns(back, os.CLONE_NEWNET)
        except OSError as exc:  # never go on without the worker's own network
            raise SandboxError(f"the worker thread could not go back to its network namespace: {exc}") from exc
        finally:
            os.close(back)


# -- work directories -----------------------------------------------------------------
_discarded = queue.SimpleQueue()
_discarder = []
DISCARD_BACKLOG = 32  # past this many waiting, a box deletes its own directory


def discard_dir(path):
    """Delete a closed box's work directory off the run's critical path.

    Deleting even a small tree on this ext4 (mount option discard) takes ~1-2 ms of wall
    time per run; a daemon thread of the worker does it after the result has gone. By
    then every process of the run is gone (or was swept), so nothing writes there any
    more, and the sandbox of the next run cannot see it (each has its own). The backlog
    is bounded: past ``DISCARD_BACKLOG`` the caller deletes it itself; at exit the
    worker deletes what is left.
    """
    if not _discarder:
        thread = threading.Thread(target=_discard_loop, name="oc-box-discard", daemon=True)
        thread.start()
        _discarder.append(thread)
        atexit.register(_discard_pending)
    if _discarded.qsize() >= DISCARD_BACKLOG:
        shutil.rmtree(path, ignore_errors=True)
        return
    _discarded.put(path)


def _discard_loop():
    while (path := _discarded.get()) is not None:
        shutil.rmtree(path, ignore_errors=True)


def _discard_pending(timeout=10.0):
    """At exit: let the thread finish what it holds (a daemon thread is stopped wherever
    it is), then delete what is left here."""
    _discarded.put(None)
    for thread in _discarder:
        thread.join(timeout)
    while True:
        try:
            path = _discarded.get_nowait()
        except queue.Empty:
            return
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)


# -- self test -------------------------------------------------------------------------
_PROBE = r"""
import json, os, resource, socket, sys
port = int(sys.argv[1])
r = {"uid": os.getuid(), "env": sorted(os.environ), "root": sorted(os.listdir("/"))}
try:
    s = socket.create_connection(("127.0.0.1", port), timeout=1)
    r["tcp"] = "connected"
except OSError as e:
    r["tcp"] = type(e).__name__
r["nproc"] = resource.getrlimit(resource.RLIMIT_NPROC)[0]
r["as"] = resource.getrlimit(resource.RLIMIT_AS)[0]
r["outside"] = os.path.exists(sys.argv[2])
print(json.dumps(r))
"""


def self_test():
    """Prove the sandbox works here: (True, summary) or (False, why not).

    The worker calls this at start and declares ``run_program`` only if it passes.
    """
    if not os.path.exists(BWRAP):
        return False, "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
    limits = Limits(wall_s=10, cpu_s=5, memory_mb=256, processes=16, output_kb=16)
    listener = socket_listener()
    try:
        with Box() as box:
            with open(os.path.join(box.work_dir, "probe.py"), "w") as f:
                f.write(_PROBE)
            box.hand_over()
            out = {"stdout": "", "stderr": ""}
            port = listener.getsockname()[1]
            res = box.run(
                ["/usr/bin/python3", "probe.py", str(port), os.path.abspath(__file__)],
                limits,
                on_output=lambda s, d: out.__setitem__(s, out[s] + d),
            )
        if not res.started:
            return False, f"bwrap could not start a sandbox: {res.error}"
        if res.exit_code != 0:
            return False, f"probe failed (exit {res.exit_code}, signal {res.signal}): {out['stderr'][-500:]}"
        probe = json.loads(out["stdout"])
    except Exception as exc:
        return False, f"sandbox self-test crashed: {type(exc).__name__}: {exc}"
    finally:
        listener.close()
    problems = []
    if probe["tcp"] == "connected":
        problems.append("the sandbox reached a TCP port on the host's loopback")
    if set(probe["env"]) - set(SANDBOX_ENV) - {"PWD", "LC_CTYPE"}:
        problems.append(f"environment leaked: {probe['env']}")
    if probe["outside"]:
        problems.append("the worker's own files are visible inside")
    if probe["as"] != limits.memory_mb * MB:
        problems.append("RLIMIT_AS not applied")
    if problems:
        return False, "; ".join(problems)
    seccomp = "seccomp on" if build_filter() else "no seccomp filter for this architecture"
    uid = f"run uid {RUN_UID_BASE}+" if os.geteuid() == 0 else "worker's uid (not root)"
    cg = "cgroups memory+pids+cpuacct" if _make_cgroups_probe() else "no writable cgroups (rlimits only)"
    net = "network namespace kept per run uid" if _netns_cache else "network namespace per run (bwrap's)"
    return True, (
        f"bwrap ok: no network ({probe['tcp']}), env cleared, host files hidden, "
        f"limits applied; {seccomp}; {uid}; {cg}; {net}; hello run {res.wall_ms} ms"
    )


def socket_listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s


def _make_cgroups_probe():
    made = _make_cgroups(f"oc-probe-{os.getpid()}")
    for path in made:
        _remove_cgroup(path)
    return bool(made)
