"""The opcode table is the one list of instructions: no mnemonic is spelled elsewhere.

Every module of xsim except ``isa/opcodes.py`` must get instruction names from
the table's rows.  The interpreter's semantic routine names (``Op.exec``) are
the table's too, and may be looked up by name.
"""
from __future__ import annotations

import ast
from pathlib import Path

import xsim
from xsim.isa import opcodes as oc

ROOT = Path(xsim.__file__).resolve().parent
# Words that are also plain English or operation names ("call", "xchg") are left out.
MNEMONICS = ({op.name for op in oc.OPS} - set(oc.EXEC_NAMES) - {op.operation for op in oc.OPS}
             - {"call", "exit"})


def test_no_mnemonic_literal_outside_the_table() -> None:
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        if path == ROOT / "isa" / "opcodes.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and node.value in MNEMONICS:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not offenders, "mnemonics spelled outside opcodes.py:\n" + "\n".join(offenders)


def test_every_row_has_a_unique_key_and_an_interpreter_routine() -> None:
    from xsim.isa import interp
    assert len({op.key for op in oc.OPS}) == len(oc.OPS)
    src = Path(interp.__file__).read_text()
    for name in oc.EXEC_NAMES:
        assert f'"{name}"' in src or name[:-2] in oc.JMP_CONDS or name.startswith("atomic_"), name
