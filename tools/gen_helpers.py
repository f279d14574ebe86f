#!/usr/bin/env python3
"""Write xsim/runtime/helper_table.py (every BPF helper's id, name and C prototype)
and xsim/include/bpf/bpf_helper_defs.h (one declaration per helper) from it.

Ids and names come from a kernel's BTF (``enum bpf_func_id`` in
/sys/kernel/btf/vmlinux by default).  Prototypes come from the kernel's
``include/uapi/linux/bpf.h`` when ``--uapi`` names one: each helper's
documentation block there starts with a `` * <prototype>`` line followed by a
`` * <tab>Description`` line.  A helper documented once per context type
(``bpf_get_socket_cookie``, ``bpf_sk_assign``) gets one prototype whose
differing parameters are ``void *``.  Without ``--uapi`` the prototypes already
in the table are kept.  Both outputs are committed; tests re-run this script
and compare.

    python tools/gen_helpers.py [--btf PATH] [--uapi bpf.h] [-o TABLE] [--header DEFS_H]
"""
from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xsim.elf.btf import Enum, Enum64, parse_btf  # noqa: E402

OUT = ROOT / "xsim" / "runtime" / "helper_table.py"
HEADER = ROOT / "xsim" / "include" / "bpf" / "bpf_helper_defs.h"

#: `` * long bpf_foo(u32 a, void *b)``: the first line of a helper's documentation.
_PROTO = re.compile(r"^ \* (?P<proto>\w[\w\s*]*?\bbpf_(?P<name>\w+)\(.*\))\s*$")
#: The line that must follow it (`` * <tab>Description``, with or without the space).
_DESCRIPTION = re.compile(r"^ \*\s+Description\s*$")
#: ``<return type> bpf_<name>(<params>)``.
_SIGNATURE = re.compile(r"^(?P<ret>.*?)\s*\bbpf_(?P<name>\w+)\((?P<params>.*)\)$")
#: ``<type> <name>``, the type keeping its stars: ``const void *key``.
_PARAM = re.compile(r"^(?P<type>.*?[\s*])(?P<name>\w+)$")

#: Kernel-side types in the documentation, and what a BPF program passes instead.
_TYPE_RENAMES = (
    (re.compile(r"\b([us])(8|16|32|64)\b"), r"__\1\2"),
    (re.compile(r"\bsize_t\b"), "__u64"),
    (re.compile(r"\bstruct sk_buff\b"), "struct __sk_buff"),
    (re.compile(r"\bstruct xdp_buff\b"), "struct xdp_md"),
    (re.compile(r"\bstruct sk_msg_buff\b"), "struct sk_msg_md"),
    (re.compile(r"\bstruct bpf_map\b"), "void"),  # a BTF map definition is an anonymous struct
)


def ids_from_btf(path: Path) -> list[tuple[int, str]]:
    """(id, name without ``BPF_FUNC_``) for every helper of ``enum bpf_func_id``, by id."""
    btf = parse_btf(path.read_bytes())
    enums = [t for t in btf.find("bpf_func_id") if isinstance(t, (Enum, Enum64))]
    if not enums:
        raise SystemExit(f"{path}: no enum bpf_func_id")
    return sorted((v.value, v.name[len("BPF_FUNC_"):]) for v in enums[0].values
                  if v.name.startswith("BPF_FUNC_") and v.name != "BPF_FUNC_unspec")


def split_proto(proto: str) -> tuple[str, str, list[tuple[str, str]]]:
    """(return type, name, [(param type, param name)]) of ``long bpf_x(u32 a, ...)``.

    ``...`` is ``("...", "")``; ``(void)`` is no parameters.
    """
    m = _SIGNATURE.match(proto)
    if m is None:
        raise ValueError(f"not a helper prototype: {proto!r}")
    params: list[tuple[str, str]] = []
    text = m["params"].strip()
    for p in ([] if text in ("", "void") else text.split(",")):
        p = " ".join(p.split())
        pm = _PARAM.match(p)
        if p == "...":
            params.append(("...", ""))
        elif pm is None:
            raise ValueError(f"cannot read parameter {p!r} of {proto!r}")
        else:
            params.append((pm["type"].strip(), pm["name"]))
    return " ".join(m["ret"].split()), m["name"], params


def _decl(c_type: str, name: str) -> str:
    """``int x``, ``void *p``, ``...``: stars stick to the name."""
    return c_type if not name else (c_type + name if c_type.endswith("*") else f"{c_type} {name}")


def _params(params: Iterable[tuple[str, str]]) -> str:
    return ", ".join(_decl(t, n) for t, n in params) or "void"


def join_proto(ret: str, name: str, params: Iterable[tuple[str, str]]) -> str:
    """The inverse of :func:`split_proto`."""
    return _decl(ret, f"bpf_{name}({_params(params)})")


def merge_protos(protos: list[str]) -> str:
    """One prototype for a helper documented several times (once per context type)."""
    parts = [split_proto(p) for p in protos]
    ret, name, first = parts[0]
    if any(r != ret or len(ps) != len(first) for r, _, ps in parts):
        raise ValueError(f"bpf_{name}: prototypes differ in more than parameter types: {protos}")
    merged = [(t, n) if all(ps[i][0] == t for _, _, ps in parts) else ("void *", n)
              for i, (t, n) in enumerate(first)]
    return join_proto(ret, name, merged)


def protos_from_uapi(path: Path) -> dict[str, str]:
    """Helper name (without ``bpf_``) -> prototype, from the documentation in bpf.h."""
    lines = path.read_text().splitlines()
    found: dict[str, list[str]] = {}
    for line, following in zip(lines, lines[1:]):
        m = _PROTO.match(line)
        if m and _DESCRIPTION.match(following):
            found.setdefault(m["name"], []).append(" ".join(m["proto"].split()))
    return {name: ps[0] if len(set(ps)) == 1 else merge_protos(ps) for name, ps in found.items()}


def current_protos() -> dict[str, str]:
    """The prototypes of the committed table (none if it cannot be imported)."""
    try:
        from xsim.runtime.helper_table import HELPERS
    except ImportError:
        return {}
    return {h.name: h.proto for h in HELPERS if h.proto}


def render(ids: list[tuple[int, str]], protos: dict[str, str]) -> str:
    """The text of xsim/runtime/helper_table.py."""
    rows = "\n".join(f"    HelperInfo({i}, {n!r}, {protos.get(n, '')!r})," for i, n in ids)
    return f'''"""Every BPF helper the kernel defines: id, name and C prototype.

Generated by tools/gen_helpers.py from the kernel's BTF (ids, names) and uapi
bpf.h (prototypes, in the kernel's types); do not edit.  A helper documented
once per context type has one prototype whose differing parameters are
``void *``.  An empty prototype means none was found.
"""
from __future__ import annotations

from typing import NamedTuple


class HelperInfo(NamedTuple):
    id: int
    name: str
    proto: str


HELPERS: tuple[HelperInfo, ...] = (
{rows}
)

BY_ID: dict[int, HelperInfo] = {{h.id: h for h in HELPERS}}
BY_NAME: dict[str, HelperInfo] = {{h.name: h for h in HELPERS}}
'''


def c_type(kernel_type: str) -> str:
    """The type a BPF program uses for a type of the kernel's documentation."""
    for pattern, repl in _TYPE_RENAMES:
        kernel_type = pattern.sub(repl, kernel_type)
    return kernel_type


def helper_decl(helper_id: int, proto: str) -> str:
    """``static <ret> (* const bpf_<name>)(<params>) = (void *) <id>;``"""
    ret, name, params = split_proto(proto)
    args = _params((c_type(t), n) for t, n in params)
    ret = c_type(ret)
    return f"static {ret}{'' if ret.endswith('*') else ' '}(* const bpf_{name})({args}) = " \
           f"(void *) {helper_id};"


def render_header(helpers: Iterable[tuple[int, str, str]]) -> str:
    """The text of xsim/include/bpf/bpf_helper_defs.h, from (id, name, proto) rows."""
    decls = [helper_decl(i, p) if p else f"/* bpf_{n} (id {i}): no prototype known */"
             for i, n, p in helpers]
    structs = sorted({s for d in decls for s in re.findall(r"\bstruct (\w+)", d)})
    fwd = "\n".join(f"struct {s};" for s in structs)
    body = "\n".join(decls)
    return f"""/* Every BPF helper as a constant function pointer whose value is its id.
 *
 * Generated by tools/gen_helpers.py from xsim/runtime/helper_table.py; do not edit.
 * The kernel's documented types become the types a BPF program has: u32 is
 * __u32, struct sk_buff is struct __sk_buff, struct xdp_buff is struct
 * xdp_md, struct sk_msg_buff is struct sk_msg_md, and a struct bpf_map * is a
 * void * (a pointer to a map definition of the .maps section).
 */
#ifndef __XSIM_BPF_HELPER_DEFS_H
#define __XSIM_BPF_HELPER_DEFS_H

#include <linux/types.h>

{fwd}

{body}

#endif /* __XSIM_BPF_HELPER_DEFS_H */
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Write the BPF helper table and "
                                             "bpf_helper_defs.h.")
    ap.add_argument("--btf", type=Path, default=Path("/sys/kernel/btf/vmlinux"),
                    help="BTF with enum bpf_func_id (default: the running kernel's)")
    ap.add_argument("--uapi", type=Path, help="the kernel's include/uapi/linux/bpf.h")
    ap.add_argument("-o", "--output", type=Path, default=OUT, help="the helper table")
    ap.add_argument("--header", type=Path, default=HEADER, help="bpf_helper_defs.h")
    args = ap.parse_args(argv)
    ids = ids_from_btf(args.btf)
    protos = protos_from_uapi(args.uapi) if args.uapi else current_protos()
    if args.uapi:
        known = {n for _, n in ids}
        missing = [n for _, n in ids if n not in protos]
        unknown = sorted(set(protos) - known)
        if missing:
            print(f"no prototype in {args.uapi} for: {', '.join(missing)}", file=sys.stderr)
        if unknown:
            print(f"documented in {args.uapi} but not in {args.btf}: {', '.join(unknown)}",
                  file=sys.stderr)
    args.output.write_text(render(ids, protos))
    args.header.parent.mkdir(parents=True, exist_ok=True)
    args.header.write_text(render_header((i, n, protos.get(n, "")) for i, n in ids))
    return 0


if __name__ == "__main__":
    sys.exit(main())
