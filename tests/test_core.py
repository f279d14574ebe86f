"""CO-RE relocations, resolved against xsim's model of kernel structs (model.btf)."""
from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

import xsim
from xsim.elf.core import MODEL_BTF, essential_name, model
from xsim.elf.loader import load_spec

ROOT = Path(__file__).resolve().parents[1]
OBJ = Path(__file__).parent / "data" / "core" / "core.o"
SKB = bytearray(200)
struct.pack_into("<I", SKB, 0, 60)       # __sk_buff.len
struct.pack_into("<I", SKB, 8, 5)        # __sk_buff.mark


@pytest.fixture(scope="module")
def obj():
    return xsim.load(OBJ)


def test_the_model_is_what_the_generator_makes(tmp_path: Path) -> None:
    out = tmp_path / "model.btf"
    subprocess.run([sys.executable, str(ROOT / "tools" / "gen_model_btf.py"), "-o", str(out)],
                   check=True, cwd=ROOT)
    assert out.read_bytes() == MODEL_BTF.read_bytes()
    names = {t.name for t in model().types if getattr(t, "name", "")}
    assert {"xdp_md", "__sk_buff", "ethhdr", "iphdr", "ipv6hdr", "tcphdr", "udphdr"} <= names


def test_flavors_share_their_target() -> None:
    assert essential_name("task_struct___old") == "task_struct"
    assert essential_name("__sk_buff") == "__sk_buff"


def test_same_layout_keeps_the_offsets(obj) -> None:
    assert obj.programs["reader"].run(bytes(SKB)).r0 == 5 + 60       # skb->mark + skb->len


def test_a_different_local_layout_is_relocated(obj) -> None:
    """Local struct: mark at 0 and len at 4; the kernel's __sk_buff has len at 0, mark at 8."""
    spec = next(p for p in load_spec(OBJ).programs if p.name == "moved")
    assert spec.core_relos == ((0, "struct __sk_buff___old.mark (FIELD_BYTE_OFFSET)"),
                               (1, "struct __sk_buff___old.len (FIELD_BYTE_OFFSET)"))
    assert obj.programs["moved"].run(bytes(SKB)).r0 == 60 * 1000 + 5


def test_field_exists(obj) -> None:
    # bpf_core_field_exists(skb->mark) * 10 + bpf_core_field_exists(task->pid)
    assert obj.programs["exists"].run(bytes(SKB)).r0 == 10


def test_bitfield_offsets_and_shifts(obj) -> None:
    # iphdr.version: byte 0, bits 4..7 -> byte offset 0, lshift 56, rshift 60
    assert obj.programs["bits"].run(bytes(SKB)).r0 == 0 * 100 + 56 * 10 + 60


def test_enum_value_comes_from_the_model(obj) -> None:
    assert obj.programs["enumval"].run(b"").r0 == 2          # XDP_PASS, not the local 7


def test_a_field_xsim_does_not_model_is_named_when_reached(obj) -> None:
    res = obj.programs["bad"].run(bytes(SKB))
    assert isinstance(res.error, xsim.UnresolvedReference)
    assert str(res.error) == ("pc 0: CO-RE relocation FIELD_BYTE_OFFSET of struct "
                              "task_struct.tgid: xsim models no such field")
