"""The lifter's IR builder: llvmlite's, with its most used instructions made and printed
with less work, and the same module text.

A lifted program is thousands of instructions, four in five of them loads, stores,
geps and integer operations.  llvmlite spends about 2.5 us making each (type checks,
default arguments, a name found through three calls) and about 4 us printing it (a
string cache that misses first, its reference made behind another, a buffer, a join,
the metadata through two more calls).  :class:`Builder` makes those instructions as
instances of llvmlite's own classes, with the attributes llvmlite's constructors give
them and the names its name scope gives them, in the same order; the subclasses print
them as llvmlite's ``descr`` does.  Every other instruction is llvmlite's own, made by
``ir.IRBuilder``.

The text is llvmlite's byte for byte (0.50: the constructors and ``descr`` formats
this module follows are that version's), which the lifter's text corpus checks over
thousands of programs.  An instruction made here is named once and printed once, with
its module, so it neither caches its text as llvmlite's do nor follows a rename (the
lifter prints no instruction before its module is done, and renames none).
"""
from __future__ import annotations

from llvmlite import ir
from llvmlite.ir import instructions as ins
from llvmlite.ir import types

_VOID = types.VoidType()
_I1 = ir.IntType(1)
_CMP = {">": "gt", "<": "lt", "==": "eq", "!=": "ne", ">=": "ge", "<=": "le"}


def _name(scope, name: str) -> str:
    """``scope.register(name, deduplicate=True)``; for an unnamed value (most are), its
    ``deduplicate`` loop on the scope's own fields without the three calls: the first
    ``.N`` after the last one the scope gave that it has not used."""
    if name:
        return scope.register(name, deduplicate=True)
    used, counts = scope._useset, scope._basenamemap
    ident = counts[""]
    while True:
        ident += 1
        name = f".{ident}"
        if name not in used:
            break
    counts[""] = ident
    used.add(name)
    return name


def _reference(name: str) -> str:
    """``NamedValue._get_reference``: ``%"name"``, escaped."""
    if "\\" in name or '"' in name:
        name = name.replace("\\", "\\5c").replace('"', "\\22")
    return f'%"{name}"'


def _metadata(md: dict) -> str:
    """``_stringify_metadata(leading_comma=True)``: ", !kind !node" for each."""
    return "".join([f", !{k} {v.get_reference()}" for k, v in md.items()]) if md else ""


class _Made:
    """The reference (``%"name"``) of an instruction made here, written with its name:
    llvmlite's is made on first use behind a cache miss (an exception), about 1 us an
    instruction, two thirds as much as the rest of its printing."""

    def get_reference(self) -> str:
        return self._ref


# -- llvmlite's classes, printed as their ``descr`` prints them (then ``rstrip``ped, as
# NamedValue._to_string does: some formats end in a space where there is no metadata) --
class _Binary(_Made, ins.Instruction):
    def __str__(self) -> str:
        x, y = self.operands
        return (f"{self._ref} = {self.opname} {self.type} {x.get_reference()}, "
                f"{y.get_reference()}{_metadata(self.metadata)}")


class _Compare(_Made, ins.ICMPInstr):
    def __str__(self) -> str:
        x, y = self.operands
        return (f"{self._ref} = icmp {self.op} {x.type} {x.get_reference()}, "
                f"{y.get_reference()} {_metadata(self.metadata)}").rstrip()


class _Cast(_Made, ins.CastInstr):
    def __str__(self) -> str:
        (x,) = self.operands
        return (f"{self._ref} = {self.opname} {x.type} {x.get_reference()} to "
                f"{self.type} {_metadata(self.metadata)}").rstrip()


class _Select(_Made, ins.SelectInstr):
    def __str__(self) -> str:
        c, x, y = self.operands
        # no flags: llvmlite's format leaves two spaces after "select"
        return (f"{self._ref} = select  {c.type} {c.get_reference()}, {x.type} "
                f"{x.get_reference()}, {y.type} {y.get_reference()} "
                f"{_metadata(self.metadata)}").rstrip()


class _Load(_Made, ins.LoadInstr):
    def __str__(self) -> str:
        (p,) = self.operands
        align = "" if self.align is None else f", align {self.align:d}"
        return (f"{self._ref} = load {self.type}, {p.type} {p.get_reference()}"
                f"{align}{_metadata(self.metadata)}")


class _Store(_Made, ins.StoreInstr):
    def __str__(self) -> str:
        v, p = self.operands
        align = "" if self.align is None else f", align {self.align:d}"
        return (f"store {v.type} {v.get_reference()}, {p.type} {p.get_reference()}"
                f"{align}{_metadata(self.metadata)}")


class _Gep(_Made, ins.GEPInstr):
    def __str__(self) -> str:
        indices = ", ".join([f"{i.type} {i.get_reference()}" for i in self.indices])
        op = "getelementptr inbounds" if self.inbounds else "getelementptr"
        return (f"{self._ref} = {op} {self.source_etype}, {self.pointer.type} "
                f"{self.pointer.get_reference()}, {indices} "
                f"{_metadata(self.metadata)}").rstrip()


class _Phi(_Made, ins.PhiInstr):
    def __str__(self) -> str:
        incs = ", ".join([f"[{v.get_reference()}, {b.get_reference()}]"
                          for v, b in self.incomings])
        # no flags: llvmlite's format leaves two spaces after "phi"
        return f"{self._ref} = phi  {self.type} {incs} {_metadata(self.metadata)}" \
            .rstrip()


class _Branch(_Made, ins.Branch):
    def __str__(self) -> str:
        (t,) = self.operands
        return f"br {t.type} {t.get_reference()}{_metadata(self.metadata)}"


class _CondBranch(_Made, ins.ConditionalBranch):
    def __str__(self) -> str:
        c, t, f = self.operands
        return (f"br {c.type} {c.get_reference()}, {t.type} {t.get_reference()}, {f.type} "
                f"{f.get_reference()}{_metadata(self.metadata)}")


class _Ret(_Made, ins.Ret):
    def __str__(self) -> str:
        (v,) = self.operands
        return f"ret {v.type} {v.get_reference()}{_metadata(self.metadata)}"


def _binary(opname: str):
    def op(self: Builder, lhs, rhs, name: str = ""):
        if lhs.type is not rhs.type and lhs.type != rhs.type:
            raise ValueError(f"Operands must be the same type, got ({lhs.type}, {rhs.type})")
        return self._make(_Binary, lhs.type, opname, (lhs, rhs), name)
    op.__name__ = op.__qualname__ = opname
    return op


def _cast(opname: str):
    def op(self: Builder, val, typ, name: str = ""):
        if val.type == typ:                 # as llvmlite: no instruction
            return val
        return self._make(_Cast, typ, opname, [val], name)
    op.__name__ = op.__qualname__ = opname
    return op


class Builder(ir.IRBuilder):
    """``ir.IRBuilder`` with the lifter's most used instructions made directly."""

    def _make(self, cls, typ, opname: str, operands, name: str):
        """An instruction of ``cls`` inserted where the builder is, its attributes as
        ``Instruction.__init__`` sets them, with the debug location ``_insert`` adds
        (the caller sets those of its class)."""
        instr = cls.__new__(cls)
        block = self._block
        instr.parent = block
        instr.type = typ
        instr._name = name = _name(block.scope, name)
        instr._ref = _reference(name)
        instr.opname = opname
        instr.operands = operands
        instr.flags = []
        instr.metadata = {} if self.debug_metadata is None else {"dbg": self.debug_metadata}
        block.instructions.insert(self._anchor, instr)
        self._anchor += 1
        return instr

    def _end(self, cls, opname: str, operands):
        """A terminator, as ``_set_terminator`` inserts it."""
        assert self._block.terminator is None
        instr = self._block.terminator = self._make(cls, _VOID, opname, operands, "")
        return instr

    add, sub, mul = _binary("add"), _binary("sub"), _binary("mul")
    udiv, sdiv, urem, srem = _binary("udiv"), _binary("sdiv"), _binary("urem"), _binary("srem")
    and_, or_, xor = _binary("and"), _binary("or"), _binary("xor")
    shl, lshr, ashr = _binary("shl"), _binary("lshr"), _binary("ashr")
    trunc, zext, sext = _cast("trunc"), _cast("zext"), _cast("sext")
    bitcast, inttoptr = _cast("bitcast"), _cast("inttoptr")

    def _icmp(self, prefix: str, cmpop: str, lhs, rhs, name: str):
        if isinstance(lhs.type, types.VectorType):
            return super()._icmp(prefix, cmpop, lhs, rhs, name)
        try:
            op = _CMP[cmpop]
        except KeyError:
            raise ValueError(f"invalid comparison {cmpop!r} for icmp") from None
        instr = self._make(_Compare, _I1, "icmp", [lhs, rhs], name)
        instr.op = op if cmpop in ("==", "!=") else prefix + op
        return instr

    def icmp_signed(self, cmpop: str, lhs, rhs, name: str = ""):
        return self._icmp("s", cmpop, lhs, rhs, name)

    def icmp_unsigned(self, cmpop: str, lhs, rhs, name: str = ""):
        return self._icmp("u", cmpop, lhs, rhs, name)

    def select(self, cond, lhs, rhs, name: str = ""):
        assert lhs.type == rhs.type
        return self._make(_Select, lhs.type, "select", [cond, lhs, rhs], name)

    def load(self, ptr, name: str = "", align: int | None = None, typ=None):
        if not isinstance(ptr.type, types.PointerType):
            return super().load(ptr, name, align, typ)       # llvmlite's TypeError
        if typ is None:
            if isinstance(ptr, ins.AllocaInstr):
                typ = ptr.allocated_type
            elif not ptr.type.is_opaque:
                typ = ptr.type.pointee
            else:
                raise ValueError("Load lacks type.")
        instr = self._make(_Load, typ, "load", [ptr], name)
        instr.align = align
        return instr

    def store(self, value, ptr, align: int | None = None):
        pt = ptr.type
        if not isinstance(pt, types.PointerType) or (
                not pt.is_opaque and pt.pointee is not value.type and pt.pointee != value.type):
            return super().store(value, ptr, align)          # llvmlite's TypeError
        instr = self._make(_Store, _VOID, "store", [value, ptr], "")
        instr.align = align
        return instr

    def gep(self, ptr, indices, inbounds: bool = False, name: str = "", source_etype=None):
        if source_etype is not None or ptr.type.is_opaque:
            return super().gep(ptr, indices, inbounds, name, source_etype)
        # GEPInstr.__init__'s type for a typed pointer
        typ, last, space = ptr.type, None, 0
        for i in indices:
            last, typ = typ, typ.gep(i)
            if isinstance(last, types.PointerType):
                space = last.addrspace
        if isinstance(typ, types.PointerType) or not isinstance(last, types.PointerType):
            typ = typ.as_pointer(space)
        else:
            typ = last
        instr = self._make(_Gep, typ, "getelementptr", [ptr] + list(indices), name)
        instr.source_etype = ptr.type.pointee
        instr.pointer = ptr
        instr.indices = indices
        instr.inbounds = inbounds
        return instr

    def phi(self, typ, name: str = "", flags=()):
        if flags:
            return super().phi(typ, name, flags)
        instr = self._make(_Phi, typ, "phi", (), name)
        instr.incomings = []
        return instr

    def branch(self, target):
        return self._end(_Branch, "br", [target])

    def cbranch(self, cond, truebr, falsebr):
        return self._end(_CondBranch, "br", [cond, truebr, falsebr])

    def ret(self, value):
        if value is None:
            return super().ret(value)
        return self._end(_Ret, "ret", [value])
