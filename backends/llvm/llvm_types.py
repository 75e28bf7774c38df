"""LLVM types of the CPU backend, in one place: the scalar type constants, the
register and memory type of an xDSL type, and the error for an op the
translator cannot express. ``translate.py``, ``translate_arith.py`` and
``translate_math.py`` all import them from here (so none imports another's
internals: no import cycle).
"""

from __future__ import annotations

from llvmlite import ir
from xdsl.dialects.builtin import (
    BFloat16Type,
    Float16Type,
    Float32Type,
    Float64Type,
    IndexType,
    IntegerType,
    MemRefType,
)
from xdsl.ir import Attribute, Operation

from irc.errors import BackendError

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


def where(op: Operation) -> str:
    return f"{op.name} at {op.location}"


def unsupported(op: Operation, why: str = "") -> BackendError:
    extra = f": {why}" if why else ""
    return BackendError(f"llvm backend: unsupported op {where(op)}{extra}")
