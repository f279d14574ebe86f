"""The real kernel through bpf(): maps, program load, test run, JIT image.

The oracle for tests and ``xsim run --kernel``.  ctypes only (no libbpf), Linux
only, optional: importing this package never calls bpf(); :func:`available`
says whether it can be used here and why not.
"""
from .backend import (KernelBtf, KernelMap, KernelProgram, KernelUsageError, ProgramInfo,
                      TestRunResult, available, patch_map_fds, patch_map_values, possible_cpus)
from .objects import KernelObject, ObjectMap, jit_image, kernel_test_run
from .syscall import Cmd, KernelError, MapType, ProgType, bpf

__all__ = ["available", "bpf", "Cmd", "MapType", "ProgType", "KernelError", "KernelUsageError",
           "KernelMap", "KernelProgram", "KernelBtf", "ProgramInfo", "TestRunResult",
           "possible_cpus", "patch_map_fds", "patch_map_values",
           "KernelObject", "ObjectMap", "kernel_test_run", "jit_image"]
