"""LLVM types of the CPU backend, in one place: the scalar type constants, the
register and memory type of an xDSL type, and the error for an op the
translator cannot express. ``translate.py``, ``translate_arith.py`` and
``translate_math.py`` all import them from here (so none imports another's
internals: no import cycle).

:class:`Builder` is llvmlite's ``ir.IRBuilder`` as the translators use it,
typed: llvmlite ships no types, and its instruction methods are made by
decorators that pyright reads as returning None and taking no ``flags``.
:func:`builder` makes one (the IRBuilder itself; the Protocol only types it),
and :data:`Value` is an LLVM value that has a ``type`` (llvmlite sets it in
the subclasses of ``ir.Value``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, cast

from llvmlite import ir
from xdsl.dialects.builtin import (
    BFloat16Type,
    Float16Type,
    Float32Type,
    Float64Type,
    IndexType,
    IntegerAttr,
    IntegerType,
    MemRefType,
)
from xdsl.ir import Attribute, Operation

from irc.errors import BackendError

Value = ir.NamedValue | ir.Constant
"""An LLVM value with a ``type``: an instruction, argument, global or constant."""

_Flags = Sequence[str]


class Builder(Protocol):
    """The part of ``llvmlite.ir.IRBuilder`` the CPU backend calls, with the
    types llvmlite's decorators hide (every instruction is an ``ir.Instruction``)."""

    @property
    def block(self) -> ir.Block: ...
    def position_at_end(self, block: ir.Block) -> None: ...
    def append_basic_block(self, name: str = "") -> ir.Block: ...
    def branch(self, target: ir.Block) -> ir.Instruction: ...
    def cbranch(self, cond: Value, truebr: ir.Block, falsebr: ir.Block) -> ir.Instruction: ...
    def ret(self, value: Value) -> ir.Instruction: ...
    def ret_void(self) -> ir.Instruction: ...
    def phi(self, typ: ir.Type, name: str = "", flags: _Flags = ()) -> ir.PhiInstr: ...
    def alloca(self, typ: ir.Type, size: Value | None = None, name: str = "") -> ir.AllocaInstr: ...
    def load(self, ptr: Value, name: str = "", align: int | None = None,
             typ: ir.Type | None = None) -> ir.Instruction: ...
    def store(self, value: Value, ptr: Value, align: int | None = None) -> ir.Instruction: ...
    def gep(self, ptr: Value, indices: Sequence[Value], inbounds: bool = False, name: str = "",
            source_etype: ir.Type | None = None) -> ir.Instruction: ...
    def call(self, fn: Value, args: Sequence[Value], name: str = "", cconv: str | None = None,
             tail: bool | str = False, fastmath: _Flags = (), attrs: _Flags = (),
             arg_attrs: object = None) -> ir.Instruction: ...
    def select(self, cond: Value, lhs: Value, rhs: Value, name: str = "",
               flags: _Flags = ()) -> ir.Instruction: ...
    def icmp_signed(self, cmpop: str, lhs: Value, rhs: Value, name: str = "") -> ir.Instruction: ...
    def icmp_unsigned(self, cmpop: str, lhs: Value, rhs: Value, name: str = "") -> ir.Instruction: ...
    def fcmp_ordered(self, cmpop: str, lhs: Value, rhs: Value, name: str = "",
                     flags: _Flags = ()) -> ir.Instruction: ...
    def fcmp_unordered(self, cmpop: str, lhs: Value, rhs: Value, name: str = "",
                       flags: _Flags = ()) -> ir.Instruction: ...
    def fneg(self, arg: Value, name: str = "", flags: _Flags = ()) -> ir.Instruction: ...
    # binary operations (llvmlite's _binop: name and flags)
    def add(self, lhs: Value, rhs: Value, name: str = "", flags: _Flags = ()) -> ir.Instruction: ...
    def sub(self, lhs: Value, rhs: Value, name: str = "", flags: _Flags = ()) -> ir.Instruction: ...
    def mul(self, lhs: Value, rhs: Value, name: str = "", flags: _Flags = ()) -> ir.Instruction: ...
    def sdiv(self, lhs: Value, rhs: Value, name: str = "", flags: _Flags = ()) -> ir.Instruction: ...
    def udiv(self, lhs: Value, rhs: Value, name: str = "", flags: _Flags = ()) -> ir.Instruction: ...
    def srem(self, lhs: Value, rhs: Value, name: str = "", flags: _Flags = ()) -> ir.Instruction: ...
    def urem(self, lhs: Value, rhs: Value, name: str = "", flags: _Flags = ()) -> ir.Instruction: ...
    def fadd(self, lhs: Value, rhs: Value, name: str = "", flags: _Flags = ()) -> ir.Instruction: ...
    def fsub(self, lhs: Value, rhs: Value, name: str = "", flags: _Flags = ()) -> ir.Instruction: ...
    def fmul(self, lhs: Value, rhs: Value, name: str = "", flags: _Flags = ()) -> ir.Instruction: ...
    def fdiv(self, lhs: Value, rhs: Value, name: str = "", flags: _Flags = ()) -> ir.Instruction: ...
    def frem(self, lhs: Value, rhs: Value, name: str = "", flags: _Flags = ()) -> ir.Instruction: ...
    def shl(self, lhs: Value, rhs: Value, name: str = "", flags: _Flags = ()) -> ir.Instruction: ...
    def lshr(self, lhs: Value, rhs: Value, name: str = "", flags: _Flags = ()) -> ir.Instruction: ...
    def ashr(self, lhs: Value, rhs: Value, name: str = "", flags: _Flags = ()) -> ir.Instruction: ...
    def and_(self, lhs: Value, rhs: Value, name: str = "", flags: _Flags = ()) -> ir.Instruction: ...
    def or_(self, lhs: Value, rhs: Value, name: str = "", flags: _Flags = ()) -> ir.Instruction: ...
    def xor(self, lhs: Value, rhs: Value, name: str = "", flags: _Flags = ()) -> ir.Instruction: ...
    # casts (llvmlite's _castop)
    def trunc(self, value: Value, typ: ir.Type, name: str = "") -> ir.Instruction: ...
    def zext(self, value: Value, typ: ir.Type, name: str = "") -> ir.Instruction: ...
    def sext(self, value: Value, typ: ir.Type, name: str = "") -> ir.Instruction: ...
    def fptrunc(self, value: Value, typ: ir.Type, name: str = "") -> ir.Instruction: ...
    def fpext(self, value: Value, typ: ir.Type, name: str = "") -> ir.Instruction: ...
    def bitcast(self, value: Value, typ: ir.Type, name: str = "") -> ir.Instruction: ...
    def sitofp(self, value: Value, typ: ir.Type, name: str = "") -> ir.Instruction: ...
    def uitofp(self, value: Value, typ: ir.Type, name: str = "") -> ir.Instruction: ...
    def fptosi(self, value: Value, typ: ir.Type, name: str = "") -> ir.Instruction: ...
    def fptoui(self, value: Value, typ: ir.Type, name: str = "") -> ir.Instruction: ...
    # vectors and aggregates
    def shuffle_vector(self, vector1: Value, vector2: Value, mask: Value,
                       name: str = "") -> ir.Instruction: ...
    def insert_element(self, vector: Value, value: Value, idx: Value,
                       name: str = "") -> ir.Instruction: ...
    def extract_element(self, vector: Value, idx: Value, name: str = "") -> ir.Instruction: ...
    def insert_value(self, agg: Value, value: Value, idx: int | Sequence[int],
                     name: str = "") -> ir.Instruction: ...
    def extract_value(self, agg: Value, idx: int | Sequence[int], name: str = "") -> ir.Instruction: ...


def builder(block: ir.Block) -> Builder:
    """An ``ir.IRBuilder`` positioned at the end of ``block``, typed as :class:`Builder`."""
    return cast(Builder, ir.IRBuilder(block))


I1 = ir.IntType(1)
I8 = ir.IntType(8)
I16 = ir.IntType(16)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
F16 = ir.HalfType()
F32 = ir.FloatType()
F64 = ir.DoubleType()
PTR = ir.PointerType()


def reg_type(attr: Attribute) -> ir.Type:
    """LLVM type of an SSA value of xDSL type ``attr`` (bf16 -> raw i16)."""
    if isinstance(attr, Float32Type):
        return F32
    if isinstance(attr, Float64Type):
        return F64
    if isinstance(attr, Float16Type):
        return F16
    if isinstance(attr, BFloat16Type):
        return I16
    if isinstance(attr, IndexType):
        return I64
    if isinstance(attr, IntegerType):
        return ir.IntType(attr.width.data)
    if isinstance(attr, MemRefType):
        return PTR
    raise BackendError(f"llvm backend: unsupported type {attr}")


def mem_type(attr: Attribute) -> ir.Type:
    """LLVM type of one memref element in memory (i1 is a byte)."""
    ty = reg_type(attr)
    return I8 if ty == I1 else ty


def int_width(ty: ir.Type) -> int:
    """The bit width of an LLVM integer type (any other type is a translator bug)."""
    if not isinstance(ty, ir.IntType):
        raise BackendError(f"llvm backend: {ty} is not an integer type")
    return ty.width


def int_property(op: Operation, name: str) -> int:
    """The integer value of ``op``'s integer property ``name`` (a predicate)."""
    attr = op.properties[name]
    if not isinstance(attr, IntegerAttr):
        raise unsupported(op, f"property {name} is not an integer")
    return attr.value.data


def where(op: Operation) -> str:
    return f"{op.name} at {op.location}"


def unsupported(op: Operation, why: str = "") -> BackendError:
    extra = f": {why}" if why else ""
    return BackendError(f"llvm backend: unsupported op {where(op)}{extra}")
