"""``arith`` dialect -> LLVM instructions (used by :mod:`translate`).

Semantics follow MLIR's arith dialect: signless integers (signedness is in the
op), IEEE floats without value-changing fast-math flags.  bf16 values are raw
``i16`` bits; arithmetic on bf16 operands is done in f32 and rounded back.
"""


from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np
from llvmlite import ir
from xdsl.dialects import builtin
from xdsl.dialects.builtin import BFloat16Type
from xdsl.ir import Attribute, Operation

from .llvm_types import F32, F64, I1, I16, I32, Builder, Value, int_property, int_width, reg_type, unsupported

if TYPE_CHECKING:
    from .translate import FuncEmitter


CONTRACT = ("contract",)
REDUCTION = ("reassoc", "nsz", "contract")

# MLIR arith.cmpf predicate number -> (ordered?, llvmlite operator)
CMPF = {1: (True, "=="), 2: (True, ">"), 3: (True, ">="), 4: (True, "<"),
        5: (True, "<="), 6: (True, "!="), 7: (True, "ord"),
        8: (False, "=="), 9: (False, ">"), 10: (False, ">="), 11: (False, "<"),
        12: (False, "<="), 13: (False, "!="), 14: (False, "uno")}
# MLIR arith.cmpi predicate number -> (signed?, llvmlite operator)
CMPI = {0: (True, "=="), 1: (True, "!="), 2: (True, "<"), 3: (True, "<="),
        4: (True, ">"), 5: (True, ">="), 6: (False, "<"), 7: (False, "<="),
        8: (False, ">"), 9: (False, ">=")}


def byte_size(ty: ir.Type) -> int:
    if isinstance(ty, ir.IntType):
        return max(ty.width // 8, 1)
    return {ir.HalfType: 2, ir.FloatType: 4, ir.DoubleType: 8}[type(ty)]


def is_float(ty: ir.Type) -> bool:
    return isinstance(ty, (ir.HalfType, ir.FloatType, ir.DoubleType))


def float_width(ty: ir.Type) -> int:
    return {ir.HalfType: 16, ir.FloatType: 32, ir.DoubleType: 64}[type(ty)]


def bf16_bits(value: float) -> int:
    """Raw bits of ``value`` rounded to bf16 (nearest even), as torch does."""
    bits = int(np.array([value], dtype=np.float32).view(np.uint32)[0])
    if value != value:
        return 0x7FC0
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) & 0xFFFF


# -- bf16 <-> f32 (bit manipulation, vectorisable) ------------------------
def bf16_to_f32(b: Builder, bits: Value) -> Value:
    wide = b.shl(b.zext(bits, I32), ir.Constant(I32, 16))
    return b.bitcast(wide, F32)


def f32_to_bf16(b: Builder, x: Value) -> Value:
    """Round to nearest even; NaN becomes the quiet NaN 0x7fc0 (as torch)."""
    bits = b.bitcast(x, I32)
    lsb = b.and_(b.lshr(bits, ir.Constant(I32, 16)), ir.Constant(I32, 1))
    rounded = b.add(b.add(bits, ir.Constant(I32, 0x7FFF)), lsb)
    out = b.trunc(b.lshr(rounded, ir.Constant(I32, 16)), I16)
    isnan = b.fcmp_unordered("uno", x, x)
    return b.select(isnan, ir.Constant(I16, 0x7FC0), out)


def to_float(b: Builder, val: Value, attr: Attribute, target: ir.Type) -> Value:
    """Widen a float value of xDSL type ``attr`` to ``target`` (f32/f64)."""
    if isinstance(attr, BFloat16Type):
        val = bf16_to_f32(b, val)
    if val.type == target:
        return val
    if float_width(val.type) < float_width(target):
        return b.fpext(val, target)
    return b.fptrunc(val, target)


def from_float(b: Builder, val: Value, attr: Attribute, target: ir.Type) -> Value:
    """Round a float value to xDSL type ``attr`` (register type ``target``)."""
    if isinstance(attr, BFloat16Type):
        if val.type != F32:
            val = b.fptrunc(val, F32)
        return f32_to_bf16(b, val)
    if val.type == target:
        return val
    if isinstance(target, ir.HalfType) and val.type == F64:
        val = b.fptrunc(val, F32)  # no f64->f16 libcall in the JIT
    if float_width(val.type) > float_width(target):
        return b.fptrunc(val, target)
    return b.fpext(val, target)


class ArithEmitter:
    def __init__(self, fe: "FuncEmitter") -> None:
        self.fe = fe

    @property
    def b(self) -> Builder:
        return self.fe.b

    def out(self, op: Operation, val: Value) -> None:
        self.fe.values[op.results[0]] = val

    def args(self, op: Operation) -> list[Value]:
        return [self.fe.get(v) for v in op.operands]

    # -- constants -----------------------------------------------------
    def constant(self, op: Operation) -> None:
        attr = op.properties["value"]
        rtype = op.results[0].type
        ty = reg_type(rtype)
        if isinstance(attr, builtin.IntegerAttr):
            val = attr.value.data
            val = val & ((1 << int_width(ty)) - 1) if int_width(ty) == 1 else val
            self.fe.values[op.results[0]] = ir.Constant(ty, val)
        elif isinstance(attr, builtin.FloatAttr):
            val = float(attr.value.data)
            if isinstance(rtype, BFloat16Type):
                self.fe.values[op.results[0]] = ir.Constant(I16, bf16_bits(val))
            else:
                self.fe.values[op.results[0]] = ir.Constant(ty, val)
        else:
            raise unsupported(op, f"constant {attr}")

    # -- float arithmetic ----------------------------------------------
    def float_binop(self, instr: str) -> Callable[[Operation], None]:
        def emit(op: Operation) -> None:
            flags = REDUCTION if id(op) in self.fe.reductions else CONTRACT
            attr = op.results[0].type
            lhs, rhs = self.args(op)
            if isinstance(attr, BFloat16Type):
                lhs, rhs = (bf16_to_f32(self.b, v) for v in (lhs, rhs))
                res = getattr(self.b, instr)(lhs, rhs, flags=flags)
                self.out(op, f32_to_bf16(self.b, res))
                return
            self.out(op, getattr(self.b, instr)(lhs, rhs, flags=flags))
        return emit

    def float_intrinsic(self, name: str) -> Callable[[Operation], None]:
        def emit(op: Operation) -> None:
            lhs, rhs = self.args(op)
            attr = op.results[0].type
            bf = isinstance(attr, BFloat16Type)
            if bf:
                lhs, rhs = (bf16_to_f32(self.b, v) for v in (lhs, rhs))
            suffix = {16: "f16", 32: "f32", 64: "f64"}[float_width(lhs.type)]
            fn = self.fe.intrinsic(f"llvm.{name}.{suffix}", lhs.type, [lhs.type, lhs.type])
            res = self.b.call(fn, [lhs, rhs])
            self.out(op, f32_to_bf16(self.b, res) if bf else res)
        return emit

    def negf(self, op: Operation) -> None:
        (x,) = self.args(op)
        if isinstance(op.results[0].type, BFloat16Type):
            self.out(op, self.b.xor(x, ir.Constant(I16, 0x8000)))
        else:
            self.out(op, self.b.fneg(x))

    def cmpf(self, op: Operation) -> None:
        lhs, rhs = self.args(op)
        attr = op.operands[0].type
        if isinstance(attr, BFloat16Type):
            lhs, rhs = (bf16_to_f32(self.b, v) for v in (lhs, rhs))
        pred = int_property(op, "predicate")
        if pred in (0, 15):
            self.out(op, ir.Constant(I1, int(pred == 15)))
            return
        ordered, cmp = CMPF[pred]
        fn = self.b.fcmp_ordered if ordered else self.b.fcmp_unordered
        self.out(op, fn(cmp, lhs, rhs))

    # -- integer arithmetic --------------------------------------------
    def int_binop(self, instr: str) -> Callable[[Operation], None]:
        def emit(op: Operation) -> None:
            lhs, rhs = self.args(op)
            self.out(op, getattr(self.b, instr)(lhs, rhs))
        return emit

    def int_minmax(self, signed: bool, cmp: str) -> Callable[[Operation], None]:
        def emit(op: Operation) -> None:
            lhs, rhs = self.args(op)
            icmp = self.b.icmp_signed if signed else self.b.icmp_unsigned
            self.out(op, self.b.select(icmp(cmp, lhs, rhs), lhs, rhs))
        return emit

    def cmpi(self, op: Operation) -> None:
        lhs, rhs = self.args(op)
        signed, cmp = CMPI[int_property(op, "predicate")]
        icmp = self.b.icmp_signed if signed else self.b.icmp_unsigned
        self.out(op, icmp(cmp, lhs, rhs))

    def floordivsi(self, op: Operation) -> None:
        a, d = self.args(op)
        b = self.b
        zero = ir.Constant(a.type, 0)
        q, r = b.sdiv(a, d), b.srem(a, d)
        signs_differ = b.icmp_signed("!=", b.icmp_signed("<", r, zero), b.icmp_signed("<", d, zero))
        adjust = b.and_(b.icmp_signed("!=", r, zero), signs_differ)
        self.out(op, b.sub(q, b.zext(adjust, a.type)))

    def ceildivsi(self, op: Operation) -> None:
        a, d = self.args(op)
        b = self.b
        zero = ir.Constant(a.type, 0)
        q, r = b.sdiv(a, d), b.srem(a, d)
        same = b.icmp_signed("==", b.icmp_signed(">", r, zero), b.icmp_signed(">", d, zero))
        adjust = b.and_(b.icmp_signed("!=", r, zero), same)
        self.out(op, b.add(q, b.zext(adjust, a.type)))

    def ceildivui(self, op: Operation) -> None:
        a, d = self.args(op)
        b = self.b
        q, r = b.udiv(a, d), b.urem(a, d)
        self.out(op, b.add(q, b.zext(b.icmp_unsigned("!=", r, ir.Constant(a.type, 0)), a.type)))

    def select(self, op: Operation) -> None:
        c, t, f = self.args(op)
        self.out(op, self.b.select(c, t, f))

    # -- casts ---------------------------------------------------------
    def int_resize(self, signed: bool) -> Callable[[Operation], None]:
        def emit(op: Operation) -> None:
            (x,) = self.args(op)
            ty = reg_type(op.results[0].type)
            if int_width(ty) == int_width(x.type):
                self.out(op, x)
            elif int_width(ty) < int_width(x.type):
                self.out(op, self.b.trunc(x, ty))
            else:
                self.out(op, (self.b.sext if signed else self.b.zext)(x, ty))
        return emit

    def int_to_fp(self, signed: bool) -> Callable[[Operation], None]:
        def emit(op: Operation) -> None:
            (x,) = self.args(op)
            attr = op.results[0].type
            ty = reg_type(attr)
            work = F32 if isinstance(attr, BFloat16Type) else ty
            if x.type == I1 and signed:
                res = self.b.sitofp(x, work)
            else:
                res = (self.b.sitofp if signed else self.b.uitofp)(x, work)
            self.out(op, from_float(self.b, res, attr, ty))
        return emit

    def fp_to_int(self, signed: bool) -> Callable[[Operation], None]:
        def emit(op: Operation) -> None:
            (x,) = self.args(op)
            src = op.operands[0].type
            if isinstance(src, BFloat16Type):
                x = bf16_to_f32(self.b, x)
            ty = reg_type(op.results[0].type)
            self.out(op, (self.b.fptosi if signed else self.b.fptoui)(x, ty))
        return emit

    def extf(self, op: Operation) -> None:
        (x,) = self.args(op)
        self.out(op, to_float(self.b, x, op.operands[0].type, reg_type(op.results[0].type)))

    def truncf(self, op: Operation) -> None:
        (x,) = self.args(op)
        src = op.operands[0].type
        if isinstance(src, BFloat16Type):
            x = bf16_to_f32(self.b, x)
        attr = op.results[0].type
        self.out(op, from_float(self.b, x, attr, reg_type(attr)))

    def bitcast(self, op: Operation) -> None:
        (x,) = self.args(op)
        ty = reg_type(op.results[0].type)
        self.out(op, x if x.type == ty else self.b.bitcast(x, ty))


def handlers(fe: "FuncEmitter") -> dict[str, Callable[[Operation], None]]:
    a = ArithEmitter(fe)
    table: dict[str, Callable[[Operation], None]] = {
        "arith.constant": a.constant,
        "arith.addf": a.float_binop("fadd"),
        "arith.subf": a.float_binop("fsub"),
        "arith.mulf": a.float_binop("fmul"),
        "arith.divf": a.float_binop("fdiv"),
        "arith.remf": a.float_binop("frem"),
        "arith.negf": a.negf,
        "arith.maximumf": a.float_intrinsic("maximum"),
        "arith.minimumf": a.float_intrinsic("minimum"),
        "arith.maxnumf": a.float_intrinsic("maxnum"),
        "arith.minnumf": a.float_intrinsic("minnum"),
        "arith.cmpf": a.cmpf,
        "arith.cmpi": a.cmpi,
        "arith.select": a.select,
        "arith.addi": a.int_binop("add"),
        "arith.subi": a.int_binop("sub"),
        "arith.muli": a.int_binop("mul"),
        "arith.divsi": a.int_binop("sdiv"),
        "arith.divui": a.int_binop("udiv"),
        "arith.remsi": a.int_binop("srem"),
        "arith.remui": a.int_binop("urem"),
        "arith.andi": a.int_binop("and_"),
        "arith.ori": a.int_binop("or_"),
        "arith.xori": a.int_binop("xor"),
        "arith.shli": a.int_binop("shl"),
        "arith.shrsi": a.int_binop("ashr"),
        "arith.shrui": a.int_binop("lshr"),
        "arith.maxsi": a.int_minmax(True, ">"),
        "arith.minsi": a.int_minmax(True, "<"),
        "arith.maxui": a.int_minmax(False, ">"),
        "arith.minui": a.int_minmax(False, "<"),
        "arith.floordivsi": a.floordivsi,
        "arith.ceildivsi": a.ceildivsi,
        "arith.ceildivui": a.ceildivui,
        "arith.index_cast": a.int_resize(True),
        "arith.index_castui": a.int_resize(False),
        "arith.extsi": a.int_resize(True),
        "arith.extui": a.int_resize(False),
        "arith.trunci": a.int_resize(True),
        "arith.sitofp": a.int_to_fp(True),
        "arith.uitofp": a.int_to_fp(False),
        "arith.fptosi": a.fp_to_int(True),
        "arith.fptoui": a.fp_to_int(False),
        "arith.extf": a.extf,
        "arith.truncf": a.truncf,
        "arith.bitcast": a.bitcast,
    }
    return table
