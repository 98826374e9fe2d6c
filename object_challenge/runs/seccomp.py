"""A classic-BPF seccomp filter, assembled here (stdlib only) and handed to bwrap.

bwrap loads it (``--seccomp FD``) just before it execs the user's program, so bwrap
itself can still set up the loopback-only network namespace. What it denies is
defence in depth behind the namespaces: ``socket()`` for anything but AF_UNIX (the
netns already leaves only an empty loopback), io_uring (which can open sockets
without ``socket()``), ptrace, keyrings, bpf, perf, userfaultfd, mount-family calls,
the x32 ABI and any non-x86_64 calling convention (``int 0x80``).

Only x86_64 is described; elsewhere ``build_filter()`` returns None and the sandbox
relies on the network namespace (self_test says so).
"""

import errno
import platform
import struct

_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_RET_K = 0x06
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_BIT = 0x40000000
_AF_UNIX = 1

# x86_64 syscall numbers
_SOCKET = 41
DENIED_X86_64 = {
    "ptrace": 101,
    "pivot_root": 155,
    "mount": 165,
    "umount2": 166,
    "swapon": 167,
    "kexec_load": 246,
    "add_key": 248,
    "request_key": 249,
    "keyctl": 250,
    "unshare": 272,
    "perf_event_open": 298,
    "setns": 308,
    "bpf": 321,
    "userfaultfd": 323,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
}


def _ins(code, k, jt=0, jf=0):
    return struct.pack("HBBI", code, jt, jf, k)


def build_filter():
    """Return the filter as bytes (struct sock_filter[]), or None off x86_64."""
    if platform.machine() not in ("x86_64", "amd64"):
        return None
    deny_enosys = _ins(_RET_K, _RET_ERRNO | errno.ENOSYS)
    prog = [
        _ins(_LD_W_ABS, 4),  # seccomp_data.arch
        _ins(_JEQ_K, _AUDIT_ARCH_X86_64, 1, 0),
        deny_enosys,
        _ins(_LD_W_ABS, 0),  # seccomp_data.nr
        _ins(_JGE_K, _X32_BIT, 0, 1),
        deny_enosys,
    ]
    for nr in sorted(DENIED_X86_64.values()):
        prog += [_ins(_JEQ_K, nr, 0, 1), _ins(_RET_K, _RET_ERRNO | errno.EPERM)]
    prog += [
        _ins(_JEQ_K, _SOCKET, 0, 3),
        _ins(_LD_W_ABS, 16),  # args[0] low word: the domain
        _ins(_JEQ_K, _AF_UNIX, 1, 0),
        _ins(_RET_K, _RET_ERRNO | errno.EACCES),
        _ins(_RET_K, _RET_ALLOW),
    ]
    return b"".join(prog)
