"""numba's on-disk cache, kept in step with xsim's sources.

numba checks a cached function against its own file only.  A function that calls
into another module (the capture loop into the interpreter's core, the JIT's cfuncs
into its helpers) or reads another module's constants keeps what it compiled from
that module's old code: after an upgrade or an edit, the capture loop would run the
old core.  So when any source of compiled code has changed since the cache was
written, every cached entry of xsim's is dropped before numba loads one.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent
#: the packages whose modules numba compiles, or whose constants compiled code reads
SOURCES = ("isa", "jit", "nic", "timing")
STAMP_NAME = "__pycache__/numba-sources.sha256"


def sources_digest(root: Path = ROOT) -> str:
    """SHA-256 of the modules of SOURCES, names and bytes."""
    h = hashlib.sha256()
    for package in SOURCES:
        for path in sorted((root / package).glob("*.py")):
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def drop_stale(root: Path = ROOT) -> bool:
    """Remove numba's index and code files under xsim where the sources changed since
    they were written; whether any were.  An unwritable tree is left as it is (numba
    then caches elsewhere, or not at all)."""
    digest = sources_digest(root)
    stamp = root / STAMP_NAME
    try:
        if stamp.read_text() == digest:
            return False
    except OSError:
        pass
    try:
        for pattern in ("*.nbi", "*.nbc"):
            for path in root.glob(f"*/__pycache__/{pattern}"):
                path.unlink(missing_ok=True)
        stamp.parent.mkdir(exist_ok=True)
        tmp = stamp.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(digest)
        tmp.replace(stamp)
    except OSError:
        return False
    return True


drop_stale()
