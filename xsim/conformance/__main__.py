"""The bpf_conformance plugin protocol: ``python -m xsim.conformance [MEMORY_HEX]``.

The program comes on stdin as hex bytes (whitespace allowed), the memory as
the first argument in the same form.  Prints r0 in hex and exits 0, or
prints the error and exits 1.
"""
from __future__ import annotations

import sys

from ..errors import XsimError
from . import run


def _hex(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        memory = _hex(argv[0]) if argv and not argv[0].startswith("-") else b""
        program = _hex(sys.stdin.read())
        r0 = run(program, memory)
    except ValueError as exc:
        print(f"bad input: {exc}")
        return 1
    except XsimError as exc:
        print(exc)
        return 1
    print(f"{r0:x}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
