"""Triton expression text for the graph dialect's elementwise ops.

Everything here is emitted with core ``triton.language`` only (no libdevice):
``TRITON_INTERPRET=1`` cannot run extern (libdevice) calls, and the same source
must run on the CPU interpreter and on a GPU. Functions the language lacks
(tanh, atan2, log1p, expm1, round-half-even, float pow) are small
``@triton.jit`` helpers in :data:`HELPERS`, copied into a generated module only
when a kernel uses them.

Values live in *registers* of a compute type: f16/bf16 are computed in f32
(``.to(tl.float32)`` on load, rounded on store or on an explicit cast), every
other dtype in itself; bool is ``tl.int1``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from irc.ir import graph as g

HALF_DTYPES = (torch.float16, torch.bfloat16)

_TL_NAMES: dict[torch.dtype, str] = {
    torch.float64: "tl.float64", torch.float32: "tl.float32", torch.float16: "tl.float16",
    torch.bfloat16: "tl.bfloat16", torch.int64: "tl.int64", torch.int32: "tl.int32",
    torch.int8: "tl.int8", torch.bool: "tl.int1",
}


@dataclass(frozen=True)
class Val:
    """A computed value: register expression, logical dtype, block axes it varies on."""

    text: str
    dtype: torch.dtype
    axes: frozenset[int]


class KernelUnsupported(Exception):
    """Codegen cannot express this kernel in Triton (the kernel then runs in eager torch)."""


def tl_type(dtype: torch.dtype) -> str:
    """The ``tl`` dtype of a tensor element in memory."""
    return _TL_NAMES[dtype]


def reg_type(dtype: torch.dtype) -> str:
    """The ``tl`` dtype values of ``dtype`` are computed in (halves in f32)."""
    return "tl.float32" if dtype in HALF_DTYPES else _TL_NAMES[dtype]


def literal(value: float | int | bool, dtype: torch.dtype) -> str:
    """A typed scalar: ``tl.full([], value, dtype)`` in the register type."""
    if dtype == torch.bool:
        text = "1" if value else "0"
    elif dtype.is_floating_point:
        v = float(value)
        text = (f'float("{v}")' if math.isinf(v) or math.isnan(v) else repr(v))
    else:
        text = str(int(value))
    return f"tl.full([], {text}, {reg_type(dtype)})"


def convert(expr: str, src: torch.dtype, dst: torch.dtype) -> str:
    """Convert a register value of logical dtype ``src`` to logical dtype ``dst``
    with torch's ``.to(dtype)`` semantics (halves are rounded)."""
    if src == dst:
        return expr
    if dst == torch.bool:
        return f"({expr} != 0)"
    if dst in HALF_DTYPES:
        return round_half(expr, dst)
    if reg_type(src) == reg_type(dst):
        return expr
    return f"{expr}.to({reg_type(dst)})"


def round_half(expr: str, dtype: torch.dtype) -> str:
    """A register value (float32, or an integer/bool) rounded to ``dtype`` (float16/bfloat16) precision
    and kept in float32, to nearest even like torch. bfloat16 goes through the
    ``_round_bf16`` helper: Triton's interpreter truncates ``.to(tl.bfloat16)``
    (the GPU rounds), and the bit arithmetic rounds the same way on both."""
    if dtype == torch.bfloat16:  # (from an integer or bool through float32, like torch)
        return f"_round_bf16(({expr}).to(tl.float32))"
    return f"{expr}.to({tl_type(dtype)}).to(tl.float32)"


def compute_dtype(op_result: torch.dtype) -> torch.dtype:
    """The dtype an op's arithmetic runs in (its result dtype)."""
    return op_result


# ----------------------------------------------------------------------------
# helpers (copied into the generated module on use)

HELPERS: dict[str, str] = {
    "_round_bf16": '''
@triton.jit
def _round_bf16(x):
    # float32 -> the nearest-even bfloat16, as float32 (NaN stays NaN)
    bits = x.to(tl.uint32, bitcast=True)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return tl.where(x != x, x, bits.to(tl.float32, bitcast=True))
''',
    "_tanh": '''
@triton.jit
def _tanh(x):
    # tanh from one exp; a short series near 0 avoids the cancellation in 1 - t.
    t = tl.exp(-2.0 * tl.abs(x))
    r = (1.0 - t) / (1.0 + t)
    r = tl.where(x < 0, -r, r)
    x2 = x * x
    series = x * (1.0 + x2 * (-0.3333333333333333 + x2 * 0.13333333333333333))
    return tl.where(tl.abs(x) < 0.05, series, r)
''',
    "_log1p": '''
@triton.jit
def _log1p(x):
    # Goldberg: log(u) * x / (u - 1) with u = 1 + x is accurate near 0.
    u = 1.0 + x
    d = u - 1.0
    r = tl.where(d == 0.0, x, tl.log(u) * (x / tl.where(d == 0.0, 1.0, d)))
    return tl.where(x == float("inf"), x, r)
''',
    "_expm1": '''
@triton.jit
def _expm1(x):
    # Kahan: (u - 1) * x / log(u) with u = exp(x) is accurate near 0.
    u = tl.exp(x)
    d = u - 1.0
    lu = tl.log(u)
    r = tl.where(d == 0.0, x, d * (x / tl.where(lu == 0.0, 1.0, lu)))
    r = tl.where(d == -1.0, -1.0, r)
    return tl.where(u == float("inf"), u, r)
''',
    "_round_half_even": '''
@triton.jit
def _round_half_even(x):
    r = tl.floor(x + 0.5)
    odd = (r - 2.0 * tl.floor(r * 0.5)) != 0.0
    r = tl.where(((r - x) == 0.5) & odd, r - 1.0, r)
    return tl.where(tl.abs(x) >= 8388608.0, x, r)
''',
    "_trunc": '''
@triton.jit
def _trunc(x):
    return tl.where(x < 0, tl.ceil(x), tl.floor(x))
''',
    "_atan": '''
@triton.jit
def _atan(x):
    # Cephes atanf: range reduction to |x| <= tan(pi/8), then a degree-9 odd polynomial.
    a = tl.abs(x)
    big = a > 2.414213562373095
    mid = a > 0.4142135623730950
    y0 = tl.where(big, 1.5707963267948966, tl.where(mid, 0.7853981633974483, 0.0))
    z = tl.where(big, -1.0 / tl.where(big, a, 1.0), tl.where(mid, (a - 1.0) / (a + 1.0), a))
    z2 = z * z
    p = (((8.05374449538e-2 * z2 - 1.38776856032e-1) * z2 + 1.99777106478e-1) * z2
         - 3.33329491539e-1) * z2 * z + z
    r = y0 + p
    return tl.where(x < 0, -r, r)
''',
    "_atan2": '''
@triton.jit
def _atan2(y, x):
    a = _atan(y / tl.where(x == 0.0, 1.0, x))
    r = tl.where(x > 0, a, tl.where(y >= 0, a + 3.141592653589793, a - 3.141592653589793))
    on_axis = tl.where(y > 0, 1.5707963267948966, tl.where(y < 0, -1.5707963267948966, 0.0))
    return tl.where(x == 0.0, on_axis, r)
''',
    "_pow": '''
@triton.jit
def _pow(a, b):
    # |a| ** b through exp2/log2, then the sign for integral b and NaN for a < 0 otherwise.
    r = tl.exp2(b * tl.log2(tl.abs(a)))
    integral = tl.floor(b) == b
    odd = integral & ((b - 2.0 * tl.floor(b * 0.5)) != 0.0)
    r = tl.where((a < 0) & odd, -r, r)
    r = tl.where((a < 0) & (~integral), float("nan"), r)
    return tl.where(b == 0.0, 1.0, tl.where(a == 1.0, 1.0, r))
''',
    "_ipow": '''
@triton.jit
def _ipow(a, e, BITS: tl.constexpr):
    # a ** e by square-and-multiply over e's bits (wraps like torch); negative e:
    # 1 ** e == 1, (-1) ** e == +-1, otherwise 0 (integer semantics)
    result = a * 0 + 1
    base = a
    for bit in tl.static_range(BITS - 1):
        result = tl.where(((e >> bit) & 1) != 0, result * base, result)
        base = base * base
    odd = (e & 1) != 0
    minus = tl.where(odd, a * 0 - 1, a * 0 + 1)
    negative = tl.where(a == 1, a * 0 + 1, tl.where(a == -1, minus, a * 0))
    return tl.where(e < 0, negative, result)
''',
}
# helpers that call other helpers
HELPER_DEPS: dict[str, tuple[str, ...]] = {"_atan2": ("_atan",)}


_UNARY_CALLS = {"exp": "tl.exp", "exp2": "tl.exp2", "log": "tl.log", "log2": "tl.log2",
                "sqrt": "tl.sqrt", "rsqrt": "tl.rsqrt", "sin": "tl.sin", "cos": "tl.cos",
                "erf": "tl.erf"}
"""Unary ops that are one ``tl`` function."""
_UNARY_TEXTS = {"neg": "-{x}", "tan": "(tl.sin({x}) / tl.cos({x}))",
                "sigmoid": "(1.0 / (1.0 + tl.exp(-{x})))", "silu": "({x} / (1.0 + tl.exp(-{x})))",
                "reciprocal": "(1.0 / {x})", "logical_not": "({x} == 0)", "isnan": "({x} != {x})"}
"""Unary ops that are one expression of ``x`` whatever the dtype."""
_UNARY_HELPERS = {"tanh": "_tanh", "log1p": "_log1p", "expm1": "_expm1"}
"""Unary ops computed by a ``@triton.jit`` helper of :data:`HELPERS`."""


class OpEmitter:
    """Builds expression text; ``bind`` turns an expression into a fresh local
    name, ``use_helper`` records a helper the module must define."""

    def __init__(self, bind: Callable[[str], str], use_helper: Callable[[str], None]) -> None:
        self.bind = bind
        self.use_helper = use_helper

    def helper(self, name: str, *args: str) -> str:
        self.use_helper(name)
        for dep in HELPER_DEPS.get(name, ()):
            self.use_helper(dep)
        return f"{name}({', '.join(args)})"

    # -- unary --------------------------------------------------------------

    def unary(self, op: g.ElementwiseUnaryOp, x: str, dt: torch.dtype) -> str:
        """``op`` applied to ``x`` (already converted to the compute dtype ``dt``)."""
        name = op.name.removeprefix("graph.")
        if name in _UNARY_CALLS:
            return f"{_UNARY_CALLS[name]}({x})"
        if name in _UNARY_TEXTS:
            return _UNARY_TEXTS[name].format(x=x)
        if name in _UNARY_HELPERS:
            return self.helper(_UNARY_HELPERS[name], x)
        if name in ("floor", "ceil", "round", "trunc"):
            return self._rounding(name, x, dt)
        special = getattr(self, f"_unary_{name}", None)
        if special is None:
            raise KernelUnsupported(f"no Triton lowering for {op.name}")
        return special(op, x, dt)

    def _rounding(self, name: str, x: str, dt: torch.dtype) -> str:
        if not dt.is_floating_point:
            return x
        if name == "round":
            return self.helper("_round_half_even", x)
        if name == "trunc":
            return self.helper("_trunc", x)
        return f"tl.{name}({x})"

    def _unary_abs(self, op: g.ElementwiseUnaryOp, x: str, dt: torch.dtype) -> str:
        return x if dt == torch.bool else f"tl.abs({x})"

    def _unary_relu(self, op: g.ElementwiseUnaryOp, x: str, dt: torch.dtype) -> str:
        return x if dt == torch.bool else f"tl.where({x} < 0, 0, {x})"

    def _unary_sign(self, op: g.ElementwiseUnaryOp, x: str, dt: torch.dtype) -> str:
        if dt == torch.bool:
            return x
        # torch: sign(NaN) is 0
        return f"tl.where({x} > 0, 1, tl.where({x} < 0, -1, 0)).to({reg_type(dt)})"

    def _unary_bitwise_not(self, op: g.ElementwiseUnaryOp, x: str, dt: torch.dtype) -> str:
        return f"({x} == 0)" if dt == torch.bool else f"(~{x})"

    def _unary_isinf(self, op: g.ElementwiseUnaryOp, x: str, dt: torch.dtype) -> str:
        return f"(tl.abs({x}) == float(\"inf\"))" if dt.is_floating_point else f"({x} != {x})"

    def _unary_gelu(self, op: g.ElementwiseUnaryOp, x: str, dt: torch.dtype) -> str:
        assert isinstance(op, g.GeluOp)
        if op.approximate.data == "tanh":
            inner = self.bind(f"0.7978845608028654 * ({x} + 0.044715 * {x} * {x} * {x})")
            return f"(0.5 * {x} * (1.0 + {self.helper('_tanh', inner)}))"
        return f"(0.5 * {x} * (1.0 + tl.erf({x} * 0.7071067811865476)))"

    # -- binary -------------------------------------------------------------

    def binary(self, op: g.ElementwiseBinaryOp, a: str, b: str, dt: torch.dtype,
               rhs_const: float | None = None) -> str:
        """``op`` on ``a`` and ``b`` (both converted to the compute dtype ``dt``).
        ``rhs_const`` is the right operand's value when it is a known scalar."""
        name = op.name.removeprefix("graph.")
        is_float = dt.is_floating_point
        is_bool = dt == torch.bool
        cmp = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
        if name in cmp:
            return f"({a} {cmp[name]} {b})"
        if name == "logical_and":
            return f"(({a} != 0) & ({b} != 0))"
        if name == "logical_or":
            return f"(({a} != 0) | ({b} != 0))"
        bitwise = {"bitwise_and": "&", "bitwise_or": "|", "bitwise_xor": "^"}
        if name in bitwise:
            return f"({a} {bitwise[name]} {b})"
        if is_bool and name in ("add", "maximum"):
            return f"({a} | {b})"
        if is_bool and name in ("mul", "minimum"):
            return f"({a} & {b})"
        if name == "add":
            return f"({a} + {b})"
        if name == "sub":
            return f"({a} - {b})"
        if name == "mul":
            return f"({a} * {b})"
        if name in ("maximum", "minimum"):
            nan = ", propagate_nan=tl.PropagateNan.ALL" if is_float else ""
            return f"tl.{name}({a}, {b}{nan})"
        if name == "div":
            return self._div(op, a, b, dt)
        if name == "remainder":
            r = self.bind(f"({a} % {b})")
            return f"tl.where(({r} != 0) & (({r} < 0) != ({b} < 0)), {r} + {b}, {r})"
        if name == "atan2":
            return self.helper("_atan2", a, b)
        if name == "pow":
            return self._pow(a, b, dt, rhs_const)
        raise KernelUnsupported(f"no Triton lowering for {op.name}")

    def _div(self, op: g.ElementwiseBinaryOp, a: str, b: str, dt: torch.dtype) -> str:
        assert isinstance(op, g.DivOp)
        mode = op.rounding_mode.data
        if mode == "none":
            return f"({a} / {b})"
        if dt.is_floating_point:
            q = f"({a} / {b})"
            return f"tl.floor({q})" if mode == "floor" else self.helper("_trunc", q)
        if dt == torch.bool:
            raise KernelUnsupported("integer division of bools")
        q = self.bind(f"({a} // {b})")  # C-style: truncates toward zero
        if mode == "trunc":
            return q
        fix = f"((({a} % {b}) != 0) & (({a} < 0) != ({b} < 0))).to({reg_type(dt)})"
        return f"({q} - {fix})"

    def _pow(self, a: str, b: str, dt: torch.dtype, rhs_const: float | None) -> str:
        if rhs_const is not None and float(rhs_const).is_integer() and 0 <= rhs_const <= 8:
            n = int(rhs_const)
            if n == 0:
                return f"({a} * 0 + 1)"
            return "(" + " * ".join([a] * n) + ")"
        if dt.is_floating_point:
            if rhs_const == 0.5:
                return f"tl.sqrt({a})"
            if rhs_const == -1.0:
                return f"(1.0 / {a})"
            return self.helper("_pow", a, b)
        if dt in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
            bits = torch.iinfo(dt).bits
            return self.helper("_ipow", a, f"{b}.to({reg_type(dt)})", str(bits))
        raise KernelUnsupported(f"pow in {dt}")
