"""The raw bpf(2) syscall through ctypes: commands, attr layouts, uapi constants.

Each ``*Attr`` Structure is the member of ``union bpf_attr`` (include/uapi/linux/bpf.h)
that one command reads; the kernel takes any size up to its own union and
requires every byte past the fields it knows to be zero, so these layouts stop
at a field old enough to be everywhere (``log_true_size``, 6.4, is the newest
one used) and work on older kernels as long as the newer fields stay zero.
Offsets were checked against the running 6.18 kernel's BTF (/sys/kernel/btf/vmlinux).
Little-endian 64-bit Linux only (x86_64, aarch64, riscv64).
"""
from __future__ import annotations

import ctypes
import errno as _errno
import os
import platform
from enum import IntEnum

from ..elf.kinds import PERCPU_MAPS, MapType, ProgType
from ..errors import XsimError

__all__ = [
    "Cmd", "MapType", "ProgType", "KernelError", "bpf", "syscall_number", "errno_name",
    "MapCreateAttr", "MapElemAttr", "ProgLoadAttr", "TestRunAttr", "ObjInfoAttr", "BtfLoadAttr",
    "ProgInfo", "PERCPU_MAP_TYPES",
    "BPF_ANY", "BPF_NOEXIST", "BPF_EXIST", "BPF_F_LOCK", "BPF_F_NO_PREALLOC",
    "BPF_F_NO_COMMON_LRU", "BPF_F_NUMA_NODE", "BPF_F_RDONLY", "BPF_F_WRONLY",
    "BPF_F_ZERO_SEED", "BPF_F_RDONLY_PROG", "BPF_F_WRONLY_PROG", "BPF_F_MMAPABLE",
    "BPF_F_STRICT_ALIGNMENT", "BPF_F_ANY_ALIGNMENT", "BPF_F_TEST_STATE_FREQ",
    "BPF_F_SLEEPABLE", "BPF_F_XDP_HAS_FRAGS", "BPF_F_TEST_RUN_ON_CPU",
    "BPF_F_TEST_XDP_LIVE_FRAMES", "BPF_PSEUDO_MAP_FD", "BPF_PSEUDO_MAP_VALUE",
    "BPF_OBJ_NAME_LEN", "BPF_TAG_SIZE", "ENOTSUPP",
]


class Cmd(IntEnum):
    """enum bpf_cmd."""

    MAP_CREATE = 0
    MAP_LOOKUP_ELEM = 1
    MAP_UPDATE_ELEM = 2
    MAP_DELETE_ELEM = 3
    MAP_GET_NEXT_KEY = 4
    PROG_LOAD = 5
    OBJ_PIN = 6
    OBJ_GET = 7
    PROG_ATTACH = 8
    PROG_DETACH = 9
    PROG_TEST_RUN = 10
    PROG_GET_NEXT_ID = 11
    MAP_GET_NEXT_ID = 12
    PROG_GET_FD_BY_ID = 13
    MAP_GET_FD_BY_ID = 14
    OBJ_GET_INFO_BY_FD = 15
    PROG_QUERY = 16
    RAW_TRACEPOINT_OPEN = 17
    BTF_LOAD = 18
    BTF_GET_FD_BY_ID = 19
    TASK_FD_QUERY = 20
    MAP_LOOKUP_AND_DELETE_ELEM = 21
    MAP_FREEZE = 22
    BTF_GET_NEXT_ID = 23
    MAP_LOOKUP_BATCH = 24
    MAP_LOOKUP_AND_DELETE_BATCH = 25
    MAP_UPDATE_BATCH = 26
    MAP_DELETE_BATCH = 27
    LINK_CREATE = 28
    LINK_UPDATE = 29
    LINK_GET_FD_BY_ID = 30
    LINK_GET_NEXT_ID = 31
    ENABLE_STATS = 32
    ITER_CREATE = 33
    LINK_DETACH = 34
    PROG_BIND_MAP = 35
    TOKEN_CREATE = 36
    PROG_STREAM_READ_BY_FD = 37


# The map and program types are the loader's (one table for every layer).
PERCPU_MAP_TYPES = PERCPU_MAPS


# BPF_MAP_UPDATE_ELEM flags
BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK = 0, 1, 2, 4
# BPF_MAP_CREATE flags
BPF_F_NO_PREALLOC = 1 << 0
BPF_F_NO_COMMON_LRU = 1 << 1
BPF_F_NUMA_NODE = 1 << 2
BPF_F_RDONLY = 1 << 3
BPF_F_WRONLY = 1 << 4
BPF_F_ZERO_SEED = 1 << 6
BPF_F_RDONLY_PROG = 1 << 7
BPF_F_WRONLY_PROG = 1 << 8
BPF_F_MMAPABLE = 1 << 10
# BPF_PROG_LOAD prog_flags
BPF_F_STRICT_ALIGNMENT = 1 << 0
BPF_F_ANY_ALIGNMENT = 1 << 1
BPF_F_TEST_STATE_FREQ = 1 << 3
BPF_F_SLEEPABLE = 1 << 4
BPF_F_XDP_HAS_FRAGS = 1 << 5
# BPF_PROG_TEST_RUN flags
BPF_F_TEST_RUN_ON_CPU = 1 << 0
BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1
# LD_IMM64 src_reg values
BPF_PSEUDO_MAP_FD = 1
BPF_PSEUDO_MAP_VALUE = 2

BPF_OBJ_NAME_LEN = 16
BPF_TAG_SIZE = 8
#: The kernel-internal ENOTSUPP, which some bpf() paths return to user space.
ENOTSUPP = 524

_u32, _s32, _u64 = ctypes.c_uint32, ctypes.c_int32, ctypes.c_uint64


class MapCreateAttr(ctypes.Structure):
    """BPF_MAP_CREATE (72 bytes, through map_extra)."""

    _fields_ = [("map_type", _u32), ("key_size", _u32), ("value_size", _u32),
                ("max_entries", _u32), ("map_flags", _u32), ("inner_map_fd", _u32),
                ("numa_node", _u32), ("map_name", ctypes.c_char * BPF_OBJ_NAME_LEN),
                ("map_ifindex", _u32), ("btf_fd", _u32), ("btf_key_type_id", _u32),
                ("btf_value_type_id", _u32), ("btf_vmlinux_value_type_id", _u32),
                ("map_extra", _u64)]


class MapElemAttr(ctypes.Structure):
    """BPF_MAP_{LOOKUP,UPDATE,DELETE}_ELEM, GET_NEXT_KEY, LOOKUP_AND_DELETE, FREEZE.

    ``value`` doubles as ``next_key`` (same union slot).  Pointers are addresses.
    """

    _fields_ = [("map_fd", _u32), ("key", _u64), ("value", _u64), ("flags", _u64)]


class ProgLoadAttr(ctypes.Structure):
    """BPF_PROG_LOAD (144 bytes, through log_true_size)."""

    _fields_ = [("prog_type", _u32), ("insn_cnt", _u32), ("insns", _u64), ("license", _u64),
                ("log_level", _u32), ("log_size", _u32), ("log_buf", _u64),
                ("kern_version", _u32), ("prog_flags", _u32),
                ("prog_name", ctypes.c_char * BPF_OBJ_NAME_LEN), ("prog_ifindex", _u32),
                ("expected_attach_type", _u32), ("prog_btf_fd", _u32),
                ("func_info_rec_size", _u32), ("func_info", _u64), ("func_info_cnt", _u32),
                ("line_info_rec_size", _u32), ("line_info", _u64), ("line_info_cnt", _u32),
                ("attach_btf_id", _u32), ("attach_prog_fd", _u32),  # or attach_btf_obj_fd
                ("core_relo_cnt", _u32), ("fd_array", _u64), ("core_relos", _u64),
                ("core_relo_rec_size", _u32), ("log_true_size", _u32)]


class TestRunAttr(ctypes.Structure):
    """BPF_PROG_TEST_RUN (``attr.test``, 80 bytes)."""

    __test__ = False  # not a pytest class
    _fields_ = [("prog_fd", _u32), ("retval", _u32), ("data_size_in", _u32),
                ("data_size_out", _u32), ("data_in", _u64), ("data_out", _u64),
                ("repeat", _u32), ("duration", _u32), ("ctx_size_in", _u32),
                ("ctx_size_out", _u32), ("ctx_in", _u64), ("ctx_out", _u64),
                ("flags", _u32), ("cpu", _u32), ("batch_size", _u32)]


class ObjInfoAttr(ctypes.Structure):
    """BPF_OBJ_GET_INFO_BY_FD (``attr.info``)."""

    _fields_ = [("bpf_fd", _u32), ("info_len", _u32), ("info", _u64)]


class MapInfoStruct(ctypes.Structure):
    """struct bpf_map_info, through map_extra (88 bytes)."""

    _fields_ = [("type", _u32), ("id", _u32), ("key_size", _u32), ("value_size", _u32),
                ("max_entries", _u32), ("map_flags", _u32), ("name", ctypes.c_char * 16),
                ("ifindex", _u32), ("btf_vmlinux_value_type_id", _u32),
                ("netns_dev", _u64), ("netns_ino", _u64), ("btf_id", _u32),
                ("btf_key_type_id", _u32), ("btf_value_type_id", _u32),
                ("btf_vmlinux_id", _u32), ("map_extra", _u64)]


class BtfLoadAttr(ctypes.Structure):
    """BPF_BTF_LOAD (40 bytes, through btf_flags)."""

    _fields_ = [("btf", _u64), ("btf_log_buf", _u64), ("btf_size", _u32),
                ("btf_log_size", _u32), ("btf_log_level", _u32), ("btf_log_true_size", _u32),
                ("btf_flags", _u32)]


class ProgInfo(ctypes.Structure):
    """struct bpf_prog_info (232 bytes, through attach_btf_id)."""

    _fields_ = [("type", _u32), ("id", _u32), ("tag", ctypes.c_uint8 * BPF_TAG_SIZE),
                ("jited_prog_len", _u32), ("xlated_prog_len", _u32),
                ("jited_prog_insns", _u64), ("xlated_prog_insns", _u64), ("load_time", _u64),
                ("created_by_uid", _u32), ("nr_map_ids", _u32), ("map_ids", _u64),
                ("name", ctypes.c_char * BPF_OBJ_NAME_LEN), ("ifindex", _u32),
                ("gpl_compatible", _u32, 1), ("_pad0", _u32, 31),
                ("netns_dev", _u64), ("netns_ino", _u64),
                ("nr_jited_ksyms", _u32), ("nr_jited_func_lens", _u32),
                ("jited_ksyms", _u64), ("jited_func_lens", _u64),
                ("btf_id", _u32), ("func_info_rec_size", _u32), ("func_info", _u64),
                ("nr_func_info", _u32), ("nr_line_info", _u32), ("line_info", _u64),
                ("jited_line_info", _u64), ("nr_jited_line_info", _u32),
                ("line_info_rec_size", _u32), ("jited_line_info_rec_size", _u32),
                ("nr_prog_tags", _u32), ("prog_tags", _u64), ("run_time_ns", _u64),
                ("run_cnt", _u64), ("recursion_misses", _u64), ("verified_insns", _u32),
                ("attach_btf_obj_id", _u32), ("attach_btf_id", _u32), ("_pad1", _u32)]


def errno_name(err: int) -> str:
    """``EPERM`` for 1, ``ENOTSUPP`` for 524, ``errno 999`` when unnamed."""
    if err == ENOTSUPP:
        return "ENOTSUPP"
    return _errno.errorcode.get(err, f"errno {err}")


class KernelError(XsimError):
    """bpf() failed: the command, errno and its name, and the verifier (or BTF) log if any."""

    def __init__(self, command: str, errno: int, log: str | None = None,
                 detail: str = "") -> None:
        self.command, self.errno, self.errno_name = command, errno, errno_name(errno)
        self.log = log or None
        self.detail = detail
        text = "unknown error 524" if errno == ENOTSUPP else os.strerror(errno)
        msg = f"bpf({command}) failed: {self.errno_name} ({text})"
        if detail:
            msg += f": {detail}"
        if self.log:
            tail = self.log.rstrip("\n").splitlines()[-12:]
            msg += "\nverifier log (last lines):\n  " + "\n  ".join(tail)
        super().__init__(msg)


_SYSCALL_NUMBERS = {"x86_64": 321, "amd64": 321, "aarch64": 280, "arm64": 280, "riscv64": 280}
_syscall_fn = None


def syscall_number() -> int | None:
    """__NR_bpf for this machine, or None where unknown (or not Linux)."""
    if platform.system() != "Linux":
        return None
    return _SYSCALL_NUMBERS.get(platform.machine().lower())


def _libc_syscall():
    global _syscall_fn
    if _syscall_fn is None:
        fn = ctypes.CDLL(None, use_errno=True).syscall
        fn.restype = ctypes.c_long
        fn.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_ulong]
        _syscall_fn = fn
    return _syscall_fn


def bpf(cmd: int, attr: ctypes.Structure, size: int | None = None) -> int:
    """Call bpf(cmd, &attr, sizeof attr); return the result (an fd for the creating
    commands) or raise :class:`KernelError`.  EINTR is retried."""
    name = Cmd(cmd).name if cmd in Cmd._value2member_map_ else str(cmd)
    nr = syscall_number()
    if nr is None:
        raise KernelError(name, _errno.ENOSYS,
                          detail=f"no bpf() on {platform.system()}/{platform.machine()}")
    fn = _libc_syscall()
    nbytes = ctypes.sizeof(attr) if size is None else size
    while True:
        ret = fn(nr, int(cmd), ctypes.byref(attr), nbytes)
        if ret >= 0:
            return int(ret)
        err = ctypes.get_errno()
        if err != _errno.EINTR:
            raise KernelError(name, err)
