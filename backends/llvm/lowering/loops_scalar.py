"""Scalar semantics of graph ops for the loop lowering (one element at a time).

Values are computed in their *compute type*: f16/bf16 in f32 (torch computes
these in float32 too and rounds on store), every other dtype in its own type
(bool is i1). The functions here build :class:`~irc.backends.llvm.lowering.loops_emit.Node`\\ s:
elementwise math with torch's semantics (NaN-propagating max/min, remainder with
the divisor's sign, floor/trunc division, casts that truncate toward zero,
``!= 0`` for bool), guarding integer division so generated code never traps.
"""

from __future__ import annotations

import math as pymath

import torch
from xdsl.dialects.builtin import AnyFloat, Float32Type, IntegerType
from xdsl.ir import Attribute

from irc.errors import BackendError
from irc.ir.types import element_type
from irc.backends.llvm.lowering.loops_emit import Node, NodeTable

F32 = Float32Type()
I1 = IntegerType(1)
HALF_TYPES = (torch.float16, torch.bfloat16)


def compute_type(dtype: torch.dtype) -> Attribute:
    """The type a value of ``dtype`` is held in while computing."""
    return F32 if dtype in HALF_TYPES else element_type(dtype)


def int_bounds(dtype: torch.dtype) -> tuple[int, int]:
    info = torch.iinfo(dtype)
    return int(info.min), int(info.max)


class Scalars:
    """Builders of scalar nodes with torch semantics."""

    def __init__(self, table: NodeTable) -> None:
        self.t = table

    # -- basics -----------------------------------------------------------
    def c(self, value: float | int, like: Node | Attribute) -> Node:
        type_ = like.type if isinstance(like, Node) else like
        return self.t.const(value, type_)

    def op(self, name: str, *args: Node, type_: Attribute | None = None, extra: object = None) -> Node:
        return self.t.op(name, type_ if type_ is not None else args[0].type, *args, extra=extra)

    def cmpf(self, pred: str, a: Node, b: Node) -> Node:
        return self.t.op("cmpf", I1, a, b, extra=pred)

    def cmpi(self, pred: str, a: Node, b: Node) -> Node:
        return self.t.op("cmpi", I1, a, b, extra=pred)

    def select(self, c: Node, a: Node, b: Node) -> Node:
        return self.t.op("select", a.type, c, a, b)

    @staticmethod
    def is_float(n: Node) -> bool:
        return isinstance(n.type, AnyFloat)

    @staticmethod
    def is_bool(n: Node) -> bool:
        return isinstance(n.type, IntegerType) and n.type.width.data == 1

    # -- conversions ------------------------------------------------------
    def to_bool(self, x: Node) -> Node:
        if self.is_bool(x):
            return x
        if self.is_float(x):
            return self.cmpf("une", x, self.c(0.0, x))
        return self.cmpi("ne", x, self.c(0, x))

    def cast(self, x: Node, src: torch.dtype, dst: torch.dtype) -> Node:
        """``tensor.to(dst)`` on one element (x holds ``src`` in its compute type)."""
        if src == dst:
            return x
        if dst == torch.bool:
            return self.to_bool(x)
        ct = compute_type(dst)
        if src == torch.bool:
            return self.op("uitofp" if dst.is_floating_point else "extui", x, type_=ct)
        if src.is_floating_point and dst.is_floating_point:
            if dst in HALF_TYPES:  # round to the half type, keep computing in f32
                return self.op("extf", self.op("truncf", x, type_=element_type(dst)), type_=F32)
            if x.type == ct:
                return x
            return self.op("extf" if dst == torch.float64 else "truncf", x, type_=ct)
        if src.is_floating_point:
            return self.op("fptosi", x, type_=ct)
        if dst.is_floating_point:
            y = self.op("sitofp", x, type_=ct)
            return self.cast(y, torch.float32, dst) if dst in HALF_TYPES else y
        if torch.iinfo(dst).bits > torch.iinfo(src).bits:
            return self.op("extsi", x, type_=ct)
        return self.op("trunci", x, type_=ct)

    # -- float helpers ------------------------------------------------------
    def sigmoid(self, x: Node) -> Node:
        one = self.c(1.0, x)
        return self.op("divf", one, self.op("addf", one, self.op("exp", self.op("negf", x))))

    def gelu(self, x: Node, approximate: str) -> Node:
        half, one = self.c(0.5, x), self.c(1.0, x)
        if approximate == "tanh":
            cube = self.op("mulf", self.op("mulf", x, x), x)
            inner = self.op("addf", x, self.op("mulf", self.c(0.044715, x), cube))
            t = self.op("tanh", self.op("mulf", self.c(pymath.sqrt(2 / pymath.pi), x), inner))
        else:
            t = self.op("erf", self.op("mulf", x, self.c(pymath.sqrt(0.5), x)))
        return self.op("mulf", self.op("mulf", half, x), self.op("addf", one, t))

    def sign(self, x: Node) -> Node:
        if self.is_bool(x):
            return x
        if self.is_float(x):
            pos, neg = self.cmpf("ogt", x, self.c(0.0, x)), self.cmpf("olt", x, self.c(0.0, x))
            # torch.sign(NaN) is 0 (eager CPU kernel: (0 < x) - (x < 0))
            return self.select(pos, self.c(1.0, x), self.select(neg, self.c(-1.0, x), self.c(0.0, x)))
        pos, neg = self.cmpi("sgt", x, self.c(0, x)), self.cmpi("slt", x, self.c(0, x))
        return self.select(pos, self.c(1, x), self.select(neg, self.c(-1, x), self.c(0, x)))

    # -- integer helpers --------------------------------------------------------
    def safe_divisor(self, b: Node) -> tuple[Node, Node]:
        """(divisor that cannot trap, b == -1): division by 0 and MIN/-1 never trap."""
        minus_one = self.cmpi("eq", b, self.c(-1, b))
        bad = self.op("ori", self.cmpi("eq", b, self.c(0, b)), minus_one)
        return self.select(bad, self.c(1, b), b), minus_one

    def int_div(self, a: Node, b: Node, mode: str) -> Node:
        safe, minus_one = self.safe_divisor(b)
        q = self.op("floordivsi" if mode == "floor" else "divsi", a, safe)
        return self.select(minus_one, self.op("subi", self.c(0, a), a), q)

    def int_rem(self, a: Node, b: Node) -> Node:
        safe, minus_one = self.safe_divisor(b)
        r = self.op("remsi", a, safe)
        zero = self.c(0, a)
        fix = self.op("andi", self.cmpi("ne", r, zero),
                      self.cmpi("ne", self.cmpi("slt", r, zero), self.cmpi("slt", b, zero)))
        r = self.select(fix, self.op("addi", r, b), r)
        return self.select(minus_one, zero, r)

    def int_pow(self, a: Node, e: Node, bits: int) -> Node:
        """a ** e by square-and-multiply over the exponent's bits (wraps like torch)."""
        one = self.c(1, a)
        result, base = one, a
        for bit in range(bits - 1):
            mask = self.c(1 << bit, e)
            on = self.cmpi("ne", self.op("andi", e, mask), self.c(0, e))
            result = self.select(on, self.op("muli", result, base), result)
            base = self.op("muli", base, base)
        negative = self.cmpi("slt", e, self.c(0, e))
        # negative exponents: 1 ** e == 1, (-1) ** e == +-1, otherwise 0 (integer semantics)
        odd = self.cmpi("ne", self.op("andi", e, self.c(1, e)), self.c(0, e))
        minus = self.select(odd, self.c(-1, a), one)
        neg_val = self.select(self.cmpi("eq", a, one), one,
                              self.select(self.cmpi("eq", a, self.c(-1, a)), minus, self.c(0, a)))
        return self.select(negative, neg_val, result)

    # -- elementwise ops ----------------------------------------------------
    def unary(self, name: str, x: Node, dtype: torch.dtype, approximate: str = "none") -> Node:
        """``graph.<name>`` on x (already converted to the op's compute dtype)."""
        if dtype.is_floating_point:
            return self._unary_float(name, x, approximate)
        if dtype == torch.bool:
            return self._unary_bool(name, x)
        return self._unary_int(name, x)

    _FLOAT_DIRECT = {"neg": "negf", "abs": "absf", "exp": "exp", "exp2": "exp2", "log": "log",
                     "log2": "log2", "log1p": "log1p", "expm1": "expm1", "sqrt": "sqrt",
                     "rsqrt": "rsqrt", "sin": "sin", "cos": "cos", "tan": "tan", "tanh": "tanh",
                     "erf": "erf", "floor": "floor", "ceil": "ceil", "round": "roundeven",
                     "trunc": "trunc"}

    def _unary_float(self, name: str, x: Node, approximate: str) -> Node:
        if name in self._FLOAT_DIRECT:
            return self.op(self._FLOAT_DIRECT[name], x)
        if name == "sigmoid":
            return self.sigmoid(x)
        if name == "silu":
            return self.op("mulf", x, self.sigmoid(x))
        if name == "gelu":
            return self.gelu(x, approximate)
        if name == "reciprocal":
            return self.op("divf", self.c(1.0, x), x)
        if name == "relu":
            return self.op("maximumf", x, self.c(0.0, x))
        if name == "sign":
            return self.sign(x)
        if name == "logical_not":
            return self.cmpf("oeq", x, self.c(0.0, x))
        if name == "isnan":
            return self.cmpf("uno", x, x)
        if name == "isinf":
            return self.cmpf("oeq", self.op("absf", x), self.c(float("inf"), x))
        raise BackendError(f"graph.{name} is not defined on floating-point tensors")

    def _unary_int(self, name: str, x: Node) -> Node:
        zero = self.c(0, x)
        if name == "neg":
            return self.op("subi", zero, x)
        if name == "abs":
            return self.select(self.cmpi("slt", x, zero), self.op("subi", zero, x), x)
        if name == "relu":
            return self.op("maxsi", x, zero)
        if name in ("floor", "ceil", "round", "trunc"):
            return x
        if name == "sign":
            return self.sign(x)
        if name == "logical_not":
            return self.cmpi("eq", x, zero)
        if name == "bitwise_not":
            return self.op("xori", x, self.c(-1, x))
        if name in ("isnan", "isinf"):
            return self.t.const(0, I1)
        raise BackendError(f"graph.{name} is not defined on integer tensors")

    def _unary_bool(self, name: str, x: Node) -> Node:
        if name in ("abs", "relu", "floor", "ceil", "round", "trunc", "sign"):
            return x
        if name in ("logical_not", "bitwise_not"):
            return self.op("xori", x, self.c(1, x))
        if name in ("isnan", "isinf"):
            return self.t.const(0, I1)
        raise BackendError(f"graph.{name} is not defined on bool tensors")

    _FCMP = {"eq": "oeq", "ne": "une", "lt": "olt", "le": "ole", "gt": "ogt", "ge": "oge"}
    _ICMP = {"eq": "eq", "ne": "ne", "lt": "slt", "le": "sle", "gt": "sgt", "ge": "sge"}
    _BCMP = {"eq": "eq", "ne": "ne", "lt": "ult", "le": "ule", "gt": "ugt", "ge": "uge"}

    def binary(self, name: str, a: Node, b: Node, dtype: torch.dtype, mode: str = "none") -> Node:
        """``graph.<name>`` on a, b (both already in the op's compute dtype ``dtype``)."""
        if name in ("logical_and", "logical_or"):
            return self.op("andi" if name == "logical_and" else "ori", self.to_bool(a), self.to_bool(b))
        if dtype.is_floating_point:
            return self._binary_float(name, a, b, mode)
        if dtype == torch.bool:
            return self._binary_bool(name, a, b)
        return self._binary_int(name, a, b, mode, torch.iinfo(dtype).bits)

    def _binary_float(self, name: str, a: Node, b: Node, mode: str) -> Node:
        if name == "pow" and b.kind == "const":
            special = self._pow_const(a, float(b.args[0]))
            if special is not None:
                return special
        direct = {"add": "addf", "sub": "subf", "mul": "mulf", "pow": "powf",
                  "maximum": "maximumf", "minimum": "minimumf", "atan2": "atan2"}
        if name in direct:
            return self.op(direct[name], a, b)
        if name in self._FCMP:
            return self.cmpf(self._FCMP[name], a, b)
        if name == "div":
            q = self.op("divf", a, b)
            return q if mode == "none" else self.op("trunc" if mode == "trunc" else "floor", q)
        if name == "remainder":
            return self.op("subf", a, self.op("mulf", self.op("floor", self.op("divf", a, b)), b))
        raise BackendError(f"graph.{name} is not defined on floating-point tensors")

    def _pow_const(self, a: Node, e: float) -> Node | None:
        """x ** e for the exponents torch itself special-cases (exact, vectorisable)."""
        if e == 1.0:
            return a
        if e == 2.0:
            return self.op("mulf", a, a)
        if e == 3.0:
            return self.op("mulf", self.op("mulf", a, a), a)
        if e == 0.5:
            return self.op("sqrt", a)
        if e == -1.0:
            return self.op("divf", self.c(1.0, a), a)
        if e == -2.0:
            return self.op("divf", self.c(1.0, a), self.op("mulf", a, a))
        if e == -0.5:
            return self.op("rsqrt", a)
        return None

    def _binary_int(self, name: str, a: Node, b: Node, mode: str, bits: int) -> Node:
        direct = {"add": "addi", "sub": "subi", "mul": "muli", "maximum": "maxsi",
                  "minimum": "minsi", "bitwise_and": "andi", "bitwise_or": "ori",
                  "bitwise_xor": "xori"}
        if name in direct:
            return self.op(direct[name], a, b)
        if name in self._ICMP:
            return self.cmpi(self._ICMP[name], a, b)
        if name == "div":
            return self.int_div(a, b, mode)
        if name == "remainder":
            return self.int_rem(a, b)
        if name == "pow":
            return self.int_pow(a, b, bits)
        raise BackendError(f"graph.{name} is not defined on integer tensors")

    def _binary_bool(self, name: str, a: Node, b: Node) -> Node:
        direct = {"add": "ori", "mul": "andi", "maximum": "ori", "minimum": "andi",
                  "bitwise_and": "andi", "bitwise_or": "ori", "bitwise_xor": "xori",
                  "sub": "xori"}
        if name in direct:
            return self.op(direct[name], a, b)
        if name in self._BCMP:
            return self.cmpi(self._BCMP[name], a, b)
        if name == "pow":  # True ** x == True, False ** False == True
            return self.op("ori", a, self.op("xori", b, self.c(1, b)))
        raise BackendError(f"graph.{name} is not defined on bool tensors")
