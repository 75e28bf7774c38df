"""``math`` dialect -> LLVM (used by :mod:`translate`).

f32 ``exp``, ``exp2``, ``log``, ``log2``, ``tanh`` and ``erf`` are emitted
inline as branch-free polynomial approximations (Cephes-style range reduction),
so that loops containing them vectorise (LLVM's ``llvm.exp`` & co. become scalar
libm calls on x86).  Each is within a few ulp of the correctly rounded result
and exact on special values: NaN propagates, exp(+-inf) = inf/0, exp overflows
to inf and underflows gradually through the denormals, log(0) = -inf,
log(x<0) = NaN, log(inf) = inf, denormal inputs to log are handled, tanh/erf
saturate to +-1.  f64 (and rare ops) use LLVM intrinsics or libm.  Math on
f16/bf16 operands is computed in f32 and rounded back.
"""


from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from llvmlite import ir
from xdsl.dialects.builtin import BFloat16Type, Float16Type
from xdsl.ir import Operation

from .llvm_types import F32, F64, I1, I32, Builder, Value, int_width, reg_type
from .translate_arith import from_float, to_float

if TYPE_CHECKING:
    from .translate import FuncEmitter

CONTRACT = ("contract",)
LOG2E = 1.44269504088896341
LN2_HI = 0.693359375
LN2_LO = -2.12194440e-4

EXP_POLY = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
            1.6666665459e-1, 5.0000001201e-1)
LOG_POLY = (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1,
            1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1,
            3.3333331174e-1)
TANH_POLY = (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2,
             1.33314422036e-1, -3.33332819422e-1)
# erf(x)/x as a polynomial in x*x on [0, 1] (least squares fit, f32 coefficients)
ERF_SMALL = (7.933414599392563e-05, -0.0008034825441427529, 0.005191216245293617,
             -0.02685539796948433, 0.11283625662326813, -0.3761262893676758,
             1.128379225730896)
# erf(t) as a polynomial in t - 2.46 on [1, 3.92] (iteratively reweighted least
# squares toward minimax relative to the f32 ulp; <= 1.8 ulp with f32 Horner/FMA).
# Above 3.92, erf rounds to 1 in f32.  No exp: a third of the former cost.
ERF_MID_CENTRE = 2.46
ERF_ONE_FROM = 3.92
ERF_MID = (-9.125563337875064e-06, 2.5420504243811592e-05, 5.167208655620925e-05,
           -0.00030167505610734224, 0.0003911185485776514, 0.0004621653351932764,
           -0.0029634954407811165, 0.006797656416893005, -0.009904833510518074,
           0.009832995012402534, -0.0065357619896531105, 0.0026561934500932693,
           0.9994966983795166)

# op name -> (f32 symbol, f64 symbol); "llvm.*" names are intrinsics
UNARY_CALLS = {
    "math.sqrt": ("llvm.sqrt", "llvm.sqrt"),
    "math.absf": ("llvm.fabs", "llvm.fabs"),
    "math.floor": ("llvm.floor", "llvm.floor"),
    "math.ceil": ("llvm.ceil", "llvm.ceil"),
    "math.round": ("llvm.round", "llvm.round"),
    "math.roundeven": ("llvm.roundeven", "llvm.roundeven"),
    "math.trunc": ("llvm.trunc", "llvm.trunc"),
    "math.sin": ("llvm.sin", "llvm.sin"),
    "math.cos": ("llvm.cos", "llvm.cos"),
    "math.tan": ("tanf", "tan"),
    "math.exp": (None, "llvm.exp"),
    "math.exp2": (None, "llvm.exp2"),
    "math.log": (None, "llvm.log"),
    "math.log2": (None, "llvm.log2"),
    "math.log10": ("log10f", "log10"),
    "math.tanh": (None, "tanh"),
    "math.erf": (None, "erf"),
    "math.log1p": ("log1pf", "log1p"),
    "math.expm1": ("expm1f", "expm1"),
    "math.sinh": ("sinhf", "sinh"),
    "math.cosh": ("coshf", "cosh"),
    "math.asin": ("asinf", "asin"),
    "math.acos": ("acosf", "acos"),
    "math.atan": ("atanf", "atan"),
    "math.asinh": ("asinhf", "asinh"),
    "math.acosh": ("acoshf", "acosh"),
    "math.atanh": ("atanhf", "atanh"),
    "math.cbrt": ("cbrtf", "cbrt"),
}
BINARY_CALLS = {
    "math.powf": ("llvm.pow", "llvm.pow"),
    "math.copysign": ("llvm.copysign", "llvm.copysign"),
    "math.atan2": ("atan2f", "atan2"),
}


def c(value: float) -> ir.Constant:
    return ir.Constant(F32, value)


class MathEmitter:
    def __init__(self, fe: "FuncEmitter") -> None:
        self.fe = fe

    @property
    def b(self) -> Builder:
        return self.fe.b

    # -- small helpers -------------------------------------------------
    def call(self, symbol: str, args: list[Value]) -> Value:
        ty = args[0].type
        if symbol.startswith("llvm."):
            symbol += ".f64" if ty == F64 else ".f32"
        fn = self.fe.intrinsic(symbol, ty, [a.type for a in args])
        return self.b.call(fn, args)

    def mul(self, x: Value, y: Value) -> Value:
        return self.b.fmul(x, y, flags=CONTRACT)

    def add(self, x: Value, y: Value) -> Value:
        return self.b.fadd(x, y, flags=CONTRACT)

    def sub(self, x: Value, y: Value) -> Value:
        return self.b.fsub(x, y, flags=CONTRACT)

    def horner(self, x: Value, coeffs: tuple[float, ...]) -> Value:
        acc: Value = c(coeffs[0])
        for k in coeffs[1:]:
            acc = self.add(self.mul(acc, x), c(k))
        return acc

    def clamp_keep_nan(self, x: Value, lo: float, hi: float) -> Value:
        b = self.b
        x = b.select(b.fcmp_ordered(">", x, c(hi)), c(hi), x)
        return b.select(b.fcmp_ordered("<", x, c(lo)), c(lo), x)

    def pass_nan(self, x: Value, res: Value) -> Value:
        return self.b.select(self.b.fcmp_unordered("uno", x, x), x, res)

    def pow2(self, n: Value) -> Value:
        """2**n for an i32 n in [-126, 127] as f32 (exact)."""
        b = self.b
        biased = b.shl(b.add(n, ir.Constant(I32, 127)), ir.Constant(I32, 23))
        return b.bitcast(biased, F32)

    def scale(self, p: Value, n: Value) -> Value:
        """p * 2**n for float n in [-151, 129]; two steps reach inf and denormals."""
        b = self.b
        ni = b.fptosi(n, I32)
        n1 = b.ashr(ni, ir.Constant(I32, 1))
        n2 = b.sub(ni, n1)
        return self.mul(self.mul(p, self.pow2(n1)), self.pow2(n2))

    def exp_poly(self, r: Value) -> Value:
        y = self.horner(r, EXP_POLY)
        return self.add(self.add(self.mul(y, self.mul(r, r)), r), c(1.0))

    # -- inline f32 functions -----------------------------------------
    def exp_f32(self, x: Value) -> Value:
        xc = self.clamp_keep_nan(x, -104.0, 89.0)
        n = self.call("llvm.roundeven", [self.mul(xc, c(LOG2E))])
        r = self.sub(xc, self.mul(n, c(LN2_HI)))
        r = self.sub(r, self.mul(n, c(LN2_LO)))
        return self.pass_nan(x, self.scale(self.exp_poly(r), n))

    def exp2_f32(self, x: Value) -> Value:
        xc = self.clamp_keep_nan(x, -151.0, 129.0)
        n = self.call("llvm.roundeven", [xc])
        r = self.mul(self.sub(xc, n), c(0.6931471805599453))
        return self.pass_nan(x, self.scale(self.exp_poly(r), n))

    def log_parts(self, x: Value) -> tuple[Value, Value, Value]:
        """(e, f, y) with log(x) = e*ln2 + f + y, f in [sqrt(.5)-1, sqrt(2)-1]."""
        b = self.b
        small = b.fcmp_ordered("<", x, c(1.17549435e-38))
        xs = b.select(small, self.mul(x, c(8388608.0)), x)
        bits = b.bitcast(xs, I32)
        e = b.sub(b.lshr(bits, ir.Constant(I32, 23)), ir.Constant(I32, 127))
        e = b.sub(e, b.select(small, ir.Constant(I32, 23), ir.Constant(I32, 0)))
        mbits = b.or_(b.and_(bits, ir.Constant(I32, 0x007FFFFF)), ir.Constant(I32, 0x3F800000))
        m = b.bitcast(mbits, F32)
        big = b.fcmp_ordered(">", m, c(1.41421356))
        m = b.select(big, self.mul(m, c(0.5)), m)
        e = b.add(e, b.zext(big, I32))
        f = self.sub(m, c(1.0))
        z = self.mul(f, f)
        y = self.mul(self.mul(f, z), self.horner(f, LOG_POLY))
        y = self.sub(y, self.mul(z, c(0.5)))
        return b.sitofp(e, F32), f, y

    def log_specials(self, x: Value, res: Value) -> Value:
        b = self.b
        inf = c(float("inf"))
        res = b.select(b.fcmp_ordered("==", x, c(0.0)), c(float("-inf")), res)
        res = b.select(b.fcmp_ordered("<", x, c(0.0)), c(float("nan")), res)
        res = b.select(b.fcmp_ordered("==", x, inf), inf, res)
        return self.pass_nan(x, res)

    def log_f32(self, x: Value) -> Value:
        e, f, y = self.log_parts(x)
        y = self.add(y, self.mul(e, c(LN2_LO)))
        res = self.add(self.add(f, y), self.mul(e, c(LN2_HI)))
        return self.log_specials(x, res)

    def log2_f32(self, x: Value) -> Value:
        e, f, y = self.log_parts(x)
        k = c(LOG2E - 1.0)
        t = self.add(self.add(self.mul(y, k), self.mul(f, k)), self.add(y, f))
        return self.log_specials(x, self.add(e, t))

    def tanh_f32(self, x: Value) -> Value:
        b = self.b
        ax = self.call("llvm.fabs", [x])
        z = self.mul(x, x)
        small = self.add(self.mul(self.mul(self.horner(z, TANH_POLY), z), x), x)
        e = self.exp_f32(self.add(ax, ax))
        large = self.sub(c(1.0), b.fdiv(c(2.0), self.add(e, c(1.0))))
        large = self.call("llvm.copysign", [large, x])
        return b.select(b.fcmp_ordered("<", ax, c(0.625)), small, large)

    def erf_f32(self, x: Value) -> Value:
        b = self.b
        ax = self.call("llvm.fabs", [x])
        small = self.mul(x, self.horner(self.mul(x, x), ERF_SMALL))
        t = self.clamp_keep_nan(ax, 1.0, ERF_ONE_FROM)
        large = self.horner(self.sub(t, c(ERF_MID_CENTRE)), ERF_MID)
        saturated = b.or_(b.fcmp_ordered(">=", ax, c(ERF_ONE_FROM)),
                          b.fcmp_ordered(">", large, c(1.0)))
        large = b.select(saturated, c(1.0), large)  # NaN: no ordered compare holds
        large = self.call("llvm.copysign", [large, x])
        return b.select(b.fcmp_ordered("<", ax, c(1.0)), small, large)

    # -- op emitters ---------------------------------------------------
    def unary(self, name: str) -> Callable[[Operation], None]:
        inline = {"math.exp": self.exp_f32, "math.exp2": self.exp2_f32,
                  "math.log": self.log_f32, "math.log2": self.log2_f32,
                  "math.tanh": self.tanh_f32, "math.erf": self.erf_f32}.get(name)
        sym32, sym64 = UNARY_CALLS.get(name, (None, None))

        def compute(x: Value) -> Value:
            if x.type == F32 and inline is not None:
                return inline(x)
            return self.call(sym64 if x.type == F64 else sym32, [x])
        return self.wrap(compute, 1)

    def binary(self, name: str) -> Callable[[Operation], None]:
        sym32, sym64 = BINARY_CALLS[name]
        return self.wrap(lambda x, y: self.call(sym64 if x.type == F64 else sym32, [x, y]), 2)

    def rsqrt(self, x: Value) -> Value:
        one = ir.Constant(x.type, 1.0)
        return self.b.fdiv(one, self.call("llvm.sqrt", [x]))

    def wrap(self, compute: Callable[..., Value], arity: int) -> Callable[[Operation], None]:
        """Run ``compute`` in f32 for f16/bf16 operands, natively otherwise."""
        def emit(op: Operation) -> None:
            attr = op.results[0].type
            args = [self.fe.get(v) for v in op.operands[:arity]]
            narrow = isinstance(attr, (Float16Type, BFloat16Type))
            if narrow:
                args = [to_float(self.b, a, attr, F32) for a in args]
            res = compute(*args)
            if narrow:
                res = from_float(self.b, res, attr, reg_type(attr))
            self.fe.values[op.results[0]] = res
        return emit

    def fpowi(self, op: Operation) -> None:
        x, n = (self.fe.get(v) for v in op.operands)
        nf = self.b.sitofp(n, x.type)
        self.fe.values[op.results[0]] = self.call("llvm.pow", [x, nf])

    def absi(self, op: Operation) -> None:
        x = self.fe.get(op.operands[0])
        fn = self.fe.intrinsic(f"llvm.abs.i{int_width(x.type)}", x.type, [x.type, I1])
        self.fe.values[op.results[0]] = self.b.call(fn, [x, ir.Constant(I1, 0)])

    def fma(self, op: Operation) -> None:
        x, y, z = (self.fe.get(v) for v in op.operands)
        self.fe.values[op.results[0]] = self.call("llvm.fma", [x, y, z])

    def handlers(self) -> dict[str, Callable[[Operation], None]]:
        table: dict[str, Callable[[Operation], None]] = {
            name: self.unary(name) for name in UNARY_CALLS}
        table.update({name: self.binary(name) for name in BINARY_CALLS})
        table["math.rsqrt"] = self.wrap(self.rsqrt, 1)
        table["math.fpowi"] = self.fpowi
        table["math.absi"] = self.absi
        table["math.fma"] = self.fma
        return table
