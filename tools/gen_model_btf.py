#!/usr/bin/env python3
"""Write xsim/elf/model/model.btf: the BTF of the kernel structs xsim models.

CO-RE relocations are resolved against it (``xsim.elf.core``).  It is the
``.BTF`` section of ``xsim/elf/model/model.c`` compiled with ``xsim cc``;
``tests/test_core.py`` re-runs this script and compares.

    python tools/gen_model_btf.py [-o OUT]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from elftools.elf.elffile import ELFFile  # noqa: E402

from xsim.cc import compile_c  # noqa: E402

MODEL = ROOT / "xsim" / "elf" / "model"


def model_btf() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        out = compile_c(MODEL / "model.c", Path(tmp) / "model.o")
        with open(out, "rb") as f:
            return ELFFile(f).get_section_by_name(".BTF").data()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", type=Path, default=MODEL / "model.btf")
    args = ap.parse_args(argv)
    args.output.write_bytes(model_btf())
    return 0


if __name__ == "__main__":
    sys.exit(main())
