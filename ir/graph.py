"""The ``graph`` dialect: tensor-level ops close to core aten.

Value semantics, static shapes, builtin ``tensor<...>`` types. Elementwise ops
broadcast like torch and follow torch's type promotion (each op states its
result-dtype rule in ``DTYPE_RULE``). Every op verifies its operand and result
shapes and dtypes; a failure names the op and what mismatched (the diagnostics
layer adds where, from the op's location or its position in a .mlir file).

Large weights are not printed: ``graph.weight {name = "fc1.weight"}`` refers to
a tensor held beside the module (``Program.weights`` in
:mod:`irc.frontends.program`).
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, TypeVar, cast

import torch
from xdsl.dialects.builtin import (
    BoolAttr,
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    StringAttr,
    TensorType,
    UnitAttr,
    f64,
    i64,
)
from xdsl.ir import Attribute, Dialect, Operation, SSAValue
from xdsl.irdl import (
    AnyAttr,
    AttrSizedOperandSegments,
    IRDLOperation,
    ParamAttrConstraint,
    VarConstraint,
    ParsePropInAttrDict,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.traits import Commutative, ConstantLike, EffectInstance, MemoryEffect, MemoryEffectKind, Pure
from xdsl.utils.exceptions import VerifyException

if TYPE_CHECKING:
    from irc.ir.symbols import Dim
from irc.ir.types import broadcast_shapes, default_float, dims_of, dtype_of, numel, promote

# ----------------------------------------------------------------------------
# helpers


def i64_array(values: Sequence[int]) -> DenseArrayBase:
    """``array<i64: ...>`` property value."""
    return DenseArrayBase.from_list(i64, list(values))


def dense_attr(type_: Attribute, values: Sequence[int | float]) -> DenseIntOrFPElementsAttr:
    """``dense<...>`` of a tensor type whose element type is known only at run
    time (xDSL's ``from_list`` overloads want it statically)."""
    return DenseIntOrFPElementsAttr.from_list(cast(Any, type_), values)


def int_attr(value: int) -> IntegerAttr:
    return IntegerAttr(value, i64)


def ints(attr: DenseArrayBase[Any]) -> tuple[int, ...]:
    return tuple(int(v) for v in attr.get_values())


def _fail(op: Operation, message: str) -> NoReturn:
    raise VerifyException(f"'{op.name}' op {message}")


def _fmt(shape: Sequence[Dim]) -> str:
    return "x".join(str(d) for d in shape) if shape else "scalar"


def _check_result_shape(op: Operation, want: Sequence[Dim]) -> None:
    """The verifiers' shape rule: the (first) result has shape ``want``."""
    got = dims_of(op.results[0].type)
    if got != tuple(want):
        _fail(op, f"result shape {_fmt(got)} should be {_fmt(want)}")


def _check_index_dtype(op: Operation, value: SSAValue, what: str) -> None:
    """An index operand of ``op`` is i64 or i32 (``what``: how the op names it)."""
    if dtype_of(value.type) not in (torch.int64, torch.int32):
        _fail(op, f"{what} must be i64 or i32")


_UNARY_FORMAT = "$input attr-dict `:` type($input) `->` type($result)"
_BINARY_FORMAT = "$lhs `,` $rhs attr-dict `:` `(` type($lhs) `,` type($rhs) `)` `->` type($result)"


# ----------------------------------------------------------------------------
# elementwise


class ElementwiseUnaryOp(IRDLOperation, ABC):
    """``result = f(input)`` elementwise; result has the input's shape.

    DTYPE_RULE: ``same`` (result dtype = input dtype), ``float`` (floats keep
    their dtype, integers/bool become the default float), ``bool`` (i1).
    """

    DTYPE_RULE: ClassVar[str] = "same"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = _UNARY_FORMAT
    irdl_options = (ParsePropInAttrDict(),)

    def __init__(self, input: SSAValue | Operation, result_type: Attribute | None = None,
                 properties: dict[str, Attribute] | None = None) -> None:
        value = SSAValue.get(input)
        if result_type is None:
            result_type = self.infer_type(value.type)
        super().__init__(operands=[value], result_types=[result_type], properties=properties or {})

    @classmethod
    def result_dtype(cls, dtype: torch.dtype) -> torch.dtype:
        if cls.DTYPE_RULE == "float":
            return default_float(dtype)
        if cls.DTYPE_RULE == "bool":
            return torch.bool
        return dtype

    @classmethod
    def infer_type(cls, input_type: Attribute) -> Attribute:
        from irc.ir.types import tensor_type
        return tensor_type(dims_of(input_type), cls.result_dtype(dtype_of(input_type)))

    def verify_(self) -> None:
        in_shape, out_shape = dims_of(self.input.type), dims_of(self.result.type)
        if in_shape != out_shape:
            _fail(self, f"result shape {_fmt(out_shape)} differs from input shape {_fmt(in_shape)}")
        want = self.result_dtype(dtype_of(self.input.type))
        got = dtype_of(self.result.type)
        if got != want:
            _fail(self, f"result dtype {got} should be {want} for input dtype {dtype_of(self.input.type)}")


def _unary(class_name: str, op_name: str, rule: str, doc: str) -> type[ElementwiseUnaryOp]:
    cls = type(class_name, (ElementwiseUnaryOp,), {
        "name": f"graph.{op_name}", "DTYPE_RULE": rule, "__doc__": doc,
        "__module__": __name__, "__qualname__": class_name,
        "__annotations__": {"DTYPE_RULE": "ClassVar[str]"},
    })
    return irdl_op_definition(cls)


NegOp = _unary("NegOp", "neg", "same", "-x")
AbsOp = _unary("AbsOp", "abs", "same", "|x|")
ExpOp = _unary("ExpOp", "exp", "float", "e**x")
Exp2Op = _unary("Exp2Op", "exp2", "float", "2**x")
LogOp = _unary("LogOp", "log", "float", "natural logarithm")
Log2Op = _unary("Log2Op", "log2", "float", "base-2 logarithm")
Log1pOp = _unary("Log1pOp", "log1p", "float", "log(1 + x)")
Expm1Op = _unary("Expm1Op", "expm1", "float", "exp(x) - 1")
SqrtOp = _unary("SqrtOp", "sqrt", "float", "square root")
RsqrtOp = _unary("RsqrtOp", "rsqrt", "float", "1 / sqrt(x)")
SinOp = _unary("SinOp", "sin", "float", "sine")
CosOp = _unary("CosOp", "cos", "float", "cosine")
TanOp = _unary("TanOp", "tan", "float", "tangent")
TanhOp = _unary("TanhOp", "tanh", "float", "hyperbolic tangent")
SigmoidOp = _unary("SigmoidOp", "sigmoid", "float", "1 / (1 + exp(-x))")
ErfOp = _unary("ErfOp", "erf", "float", "error function")
ReciprocalOp = _unary("ReciprocalOp", "reciprocal", "float", "1 / x")
ReluOp = _unary("ReluOp", "relu", "same", "max(x, 0)")
FloorOp = _unary("FloorOp", "floor", "same", "round toward -inf (identity on integers)")
CeilOp = _unary("CeilOp", "ceil", "same", "round toward +inf (identity on integers)")
RoundOp = _unary("RoundOp", "round", "same", "round half to even (identity on integers)")
TruncOp = _unary("TruncOp", "trunc", "same", "round toward zero (identity on integers)")
SignOp = _unary("SignOp", "sign", "same", "-1, 0 or 1 (torch gives 0 for NaN)")
LogicalNotOp = _unary("LogicalNotOp", "logical_not", "bool", "x == 0")
BitwiseNotOp = _unary("BitwiseNotOp", "bitwise_not", "same", "~x (integers and bool)")
IsNanOp = _unary("IsNanOp", "isnan", "bool", "x != x")
IsInfOp = _unary("IsInfOp", "isinf", "bool", "|x| == inf")
SiluOp = _unary("SiluOp", "silu", "float", "x * sigmoid(x)")


@irdl_op_definition
class GeluOp(ElementwiseUnaryOp):
    """GELU: ``approximate = "none"`` (erf form) or ``"tanh"``."""

    name = "graph.gelu"
    DTYPE_RULE: ClassVar[str] = "float"
    approximate = prop_def(StringAttr, default_value=StringAttr("none"))

    def verify_(self) -> None:
        super().verify_()
        if self.approximate.data not in ("none", "tanh"):
            _fail(self, f"approximate must be \"none\" or \"tanh\", got \"{self.approximate.data}\"")


class ElementwiseBinaryOp(IRDLOperation, ABC):
    """``result = f(lhs, rhs)`` elementwise with torch broadcasting.

    DTYPE_RULE: ``promote`` (torch.promote_types), ``float`` (promoted, then
    integers become the default float), ``bool`` (i1, e.g. comparisons).
    Operands may differ in dtype: the op computes in the promoted dtype.
    """

    DTYPE_RULE: ClassVar[str] = "promote"
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = _BINARY_FORMAT
    irdl_options = (ParsePropInAttrDict(),)

    def __init__(self, lhs: SSAValue | Operation, rhs: SSAValue | Operation,
                 result_type: Attribute | None = None,
                 properties: dict[str, Attribute] | None = None) -> None:
        a, b = SSAValue.get(lhs), SSAValue.get(rhs)
        if result_type is None:
            result_type = self.infer_type(a.type, b.type)
        super().__init__(operands=[a, b], result_types=[result_type], properties=properties or {})

    @classmethod
    def result_dtype(cls, a: torch.dtype, b: torch.dtype) -> torch.dtype:
        p = promote(a, b)
        if cls.DTYPE_RULE == "float":
            return default_float(p)
        if cls.DTYPE_RULE == "bool":
            return torch.bool
        return p

    @classmethod
    def infer_type(cls, a: Attribute, b: Attribute) -> Attribute:
        from irc.ir.types import tensor_type
        shape = broadcast_shapes(dims_of(a), dims_of(b))
        if shape is None:
            raise VerifyException(f"'{cls.name}' op operand shapes {_fmt(dims_of(a))} and "
                                  f"{_fmt(dims_of(b))} do not broadcast")
        return tensor_type(shape, cls.result_dtype(dtype_of(a), dtype_of(b)))

    def verify_(self) -> None:
        a, b = dims_of(self.lhs.type), dims_of(self.rhs.type)
        shape = broadcast_shapes(a, b)
        if shape is None:
            _fail(self, f"operand shapes {_fmt(a)} and {_fmt(b)} do not broadcast")
        out = dims_of(self.result.type)
        if out != shape:
            _fail(self, f"result shape {_fmt(out)} should be the broadcast shape {_fmt(shape or ())}")
        want = self.result_dtype(dtype_of(self.lhs.type), dtype_of(self.rhs.type))
        got = dtype_of(self.result.type)
        if got != want:
            _fail(self, f"result dtype {got} should be {want} for operand dtypes "
                        f"{dtype_of(self.lhs.type)} and {dtype_of(self.rhs.type)}")


def _binary(class_name: str, op_name: str, rule: str, doc: str,
            commutative: bool = False) -> type[ElementwiseBinaryOp]:
    body: dict[str, object] = {
        "name": f"graph.{op_name}", "DTYPE_RULE": rule, "__doc__": doc,
        "__module__": __name__, "__qualname__": class_name,
        "__annotations__": {"DTYPE_RULE": "ClassVar[str]"},
    }
    if commutative:
        body["traits"] = traits_def(Pure(), Commutative())
    return irdl_op_definition(type(class_name, (ElementwiseBinaryOp,), body))


AddOp = _binary("AddOp", "add", "promote", "lhs + rhs", commutative=True)
SubOp = _binary("SubOp", "sub", "promote", "lhs - rhs")
MulOp = _binary("MulOp", "mul", "promote", "lhs * rhs", commutative=True)
PowOp = _binary("PowOp", "pow", "promote", "lhs ** rhs")
MaximumOp = _binary("MaximumOp", "maximum", "promote", "max(lhs, rhs), NaN-propagating", True)
MinimumOp = _binary("MinimumOp", "minimum", "promote", "min(lhs, rhs), NaN-propagating", True)
RemainderOp = _binary("RemainderOp", "remainder", "promote", "Python-style modulo (sign of rhs)")
Atan2Op = _binary("Atan2Op", "atan2", "float", "atan2(lhs, rhs)")
EqOp = _binary("EqOp", "eq", "bool", "lhs == rhs", commutative=True)
NeOp = _binary("NeOp", "ne", "bool", "lhs != rhs", commutative=True)
LtOp = _binary("LtOp", "lt", "bool", "lhs < rhs")
LeOp = _binary("LeOp", "le", "bool", "lhs <= rhs")
GtOp = _binary("GtOp", "gt", "bool", "lhs > rhs")
GeOp = _binary("GeOp", "ge", "bool", "lhs >= rhs")
LogicalAndOp = _binary("LogicalAndOp", "logical_and", "bool", "lhs != 0 and rhs != 0", True)
LogicalOrOp = _binary("LogicalOrOp", "logical_or", "bool", "lhs != 0 or rhs != 0", True)
BitwiseAndOp = _binary("BitwiseAndOp", "bitwise_and", "promote", "lhs & rhs (integers, bool)", True)
BitwiseOrOp = _binary("BitwiseOrOp", "bitwise_or", "promote", "lhs | rhs (integers, bool)", True)
BitwiseXorOp = _binary("BitwiseXorOp", "bitwise_xor", "promote", "lhs ^ rhs (integers, bool)", True)


@irdl_op_definition
class DivOp(ElementwiseBinaryOp):
    """Division. ``rounding_mode``: ``"none"`` true division (integers give the
    default float), ``"trunc"`` or ``"floor"`` (integers stay integers)."""

    name = "graph.div"
    rounding_mode = prop_def(StringAttr, default_value=StringAttr("none"))

    def _mode(self) -> str:
        return self.rounding_mode.data

    def verify_(self) -> None:
        if self._mode() not in ("none", "trunc", "floor"):
            _fail(self, f"rounding_mode must be none, trunc or floor, got {self._mode()}")
        a, b = dtype_of(self.lhs.type), dtype_of(self.rhs.type)
        want = promote(a, b) if self._mode() != "none" else default_float(promote(a, b))
        got = dtype_of(self.result.type)
        if got != want:
            _fail(self, f"result dtype {got} should be {want} for operand dtypes {a} and {b}")
        shape = broadcast_shapes(dims_of(self.lhs.type), dims_of(self.rhs.type))
        if shape is None or shape != dims_of(self.result.type):
            _fail(self, f"result shape {_fmt(dims_of(self.result.type))} should be the broadcast of "
                        f"{_fmt(dims_of(self.lhs.type))} and {_fmt(dims_of(self.rhs.type))}")

    @classmethod
    def result_dtype(cls, a: torch.dtype, b: torch.dtype) -> torch.dtype:
        return default_float(promote(a, b))  # true division; build with result_type otherwise


COMPARISON_OPS: tuple[type[ElementwiseBinaryOp], ...] = (EqOp, NeOp, LtOp, LeOp, GtOp, GeOp)


@irdl_op_definition
class WhereOp(IRDLOperation):
    """``cond ? lhs : rhs`` elementwise, broadcasting all three (cond is i1)."""

    name = "graph.where"
    cond = operand_def(TensorType)
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = ("$cond `,` $lhs `,` $rhs attr-dict `:` `(` type($cond) `,` type($lhs) `,` "
                       "type($rhs) `)` `->` type($result)")

    def __init__(self, cond: SSAValue | Operation, lhs: SSAValue | Operation,
                 rhs: SSAValue | Operation, result_type: Attribute | None = None) -> None:
        from irc.ir.types import tensor_type
        c, a, b = SSAValue.get(cond), SSAValue.get(lhs), SSAValue.get(rhs)
        if result_type is None:
            shape = broadcast_shapes(dims_of(c.type), dims_of(a.type), dims_of(b.type))
            if shape is None:
                raise VerifyException("'graph.where' op operand shapes do not broadcast")
            result_type = tensor_type(shape, promote(dtype_of(a.type), dtype_of(b.type)))
        super().__init__(operands=[c, a, b], result_types=[result_type])

    def verify_(self) -> None:
        if dtype_of(self.cond.type) != torch.bool:
            _fail(self, f"condition must be bool (i1), got {dtype_of(self.cond.type)}")
        shapes = [dims_of(v.type) for v in self.operands]
        shape = broadcast_shapes(*shapes)
        if shape is None:
            _fail(self, f"operand shapes {', '.join(_fmt(s) for s in shapes)} do not broadcast")
        if dims_of(self.result.type) != shape:
            _fail(self, f"result shape {_fmt(dims_of(self.result.type))} should be {_fmt(shape or ())}")
        want = promote(dtype_of(self.lhs.type), dtype_of(self.rhs.type))
        if dtype_of(self.result.type) != want:
            _fail(self, f"result dtype {dtype_of(self.result.type)} should be {want}")


@irdl_op_definition
class CastOp(IRDLOperation):
    """Convert to the result's dtype like ``tensor.to(dtype)`` (floats to
    integers truncate toward zero; to bool is ``!= 0``)."""

    name = "graph.cast"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = _UNARY_FORMAT

    def __init__(self, input: SSAValue | Operation, result_type: Attribute) -> None:
        super().__init__(operands=[SSAValue.get(input)], result_types=[result_type])

    def verify_(self) -> None:
        if dims_of(self.input.type) != dims_of(self.result.type):
            _fail(self, f"cannot change shape {_fmt(dims_of(self.input.type))} to "
                        f"{_fmt(dims_of(self.result.type))}")


# ----------------------------------------------------------------------------
# reductions


class ReduceOp(IRDLOperation, ABC):
    """Reduce ``dims`` (sorted, non-negative, at least one) of ``input``;
    ``keepdim`` keeps them as size 1. DTYPE_RULE: ``same``, ``sum`` (integers
    and bool accumulate to i64), ``float`` (mean), ``index`` (i64), ``bool``."""

    DTYPE_RULE: ClassVar[str] = "same"
    input = operand_def(TensorType)
    dims = prop_def(DenseArrayBase)
    keepdim = prop_def(BoolAttr, default_value=BoolAttr(False, IntegerType(1)))
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = _UNARY_FORMAT
    irdl_options = (ParsePropInAttrDict(),)

    def __init__(self, input: SSAValue | Operation, dims: Sequence[int], keepdim: bool = False,
                 result_type: Attribute | None = None) -> None:
        from irc.ir.types import tensor_type
        value = SSAValue.get(input)
        shape = dims_of(value.type)
        dims = sorted(d % len(shape) if shape else d for d in dims)
        if result_type is None:
            out = [1 if i in dims else s for i, s in enumerate(shape)] if keepdim else \
                [s for i, s in enumerate(shape) if i not in dims]
            result_type = tensor_type(out, self.result_dtype(dtype_of(value.type)))
        super().__init__(operands=[value], result_types=[result_type], properties={
            "dims": i64_array(dims), "keepdim": BoolAttr(keepdim, IntegerType(1))})

    @classmethod
    def result_dtype(cls, dtype: torch.dtype) -> torch.dtype:
        if cls.DTYPE_RULE == "sum":
            return dtype if dtype.is_floating_point else torch.int64
        if cls.DTYPE_RULE == "float":
            return default_float(dtype)
        if cls.DTYPE_RULE == "index":
            return torch.int64
        if cls.DTYPE_RULE == "bool":
            return torch.bool
        return dtype

    @property
    def reduced_dims(self) -> tuple[int, ...]:
        return ints(self.dims)

    @property
    def keeps_dims(self) -> bool:
        return bool(self.keepdim.value.data)

    def verify_(self) -> None:
        shape = dims_of(self.input.type)
        dims = self.reduced_dims
        if not dims and shape:
            _fail(self, "needs at least one dim to reduce")
        if list(dims) != sorted(set(dims)) or any(d < 0 or d >= max(len(shape), 1) for d in dims):
            _fail(self, f"dims {list(dims)} must be sorted, distinct and in [0, {len(shape)})")
        if self.keeps_dims:
            want = tuple(1 if i in dims else s for i, s in enumerate(shape))
        else:
            want = tuple(s for i, s in enumerate(shape) if i not in dims)
        got = dims_of(self.result.type)
        if got != want:
            _fail(self, f"result shape {_fmt(got)} should be {_fmt(want)} "
                        f"(input {_fmt(shape)}, dims {list(dims)}, keepdim={self.keeps_dims})")
        want_dtype = self.result_dtype(dtype_of(self.input.type))
        if dtype_of(self.result.type) != want_dtype:
            _fail(self, f"result dtype {dtype_of(self.result.type)} should be {want_dtype}")


def _reduce(class_name: str, op_name: str, rule: str, doc: str) -> type[ReduceOp]:
    return irdl_op_definition(type(class_name, (ReduceOp,), {
        "name": f"graph.{op_name}", "DTYPE_RULE": rule, "__doc__": doc,
        "__module__": __name__, "__qualname__": class_name,
        "__annotations__": {"DTYPE_RULE": "ClassVar[str]"}}))


SumOp = _reduce("SumOp", "sum", "sum", "sum over dims")
MeanOp = _reduce("MeanOp", "mean", "float", "arithmetic mean over dims")
ProdOp = _reduce("ProdOp", "prod", "sum", "product over dims")
AmaxOp = _reduce("AmaxOp", "amax", "same", "maximum over dims (NaN-propagating)")
AminOp = _reduce("AminOp", "amin", "same", "minimum over dims (NaN-propagating)")
AnyOp = _reduce("AnyOp", "any", "bool", "true if any element is non-zero")
AllOp = _reduce("AllOp", "all", "bool", "true if every element is non-zero")


class _ArgReduceOp(ReduceOp, ABC):
    DTYPE_RULE: ClassVar[str] = "index"

    def verify_(self) -> None:
        super().verify_()
        if len(self.reduced_dims) != 1:
            _fail(self, f"reduces exactly one dim, got {list(self.reduced_dims)}")


@irdl_op_definition
class ArgmaxOp(_ArgReduceOp):
    """index of the first maximum along one dim (i64)."""

    name = "graph.argmax"


@irdl_op_definition
class ArgminOp(_ArgReduceOp):
    """index of the first minimum along one dim (i64)."""

    name = "graph.argmin"


REDUCE_OPS: tuple[type[ReduceOp], ...] = (SumOp, MeanOp, ProdOp, AmaxOp, AminOp, AnyOp, AllOp,
                                           ArgmaxOp, ArgminOp)


# ----------------------------------------------------------------------------
# movement (views in torch; value semantics here)


class _ShapeOp(IRDLOperation, ABC):
    input = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = _UNARY_FORMAT
    irdl_options = (ParsePropInAttrDict(),)

    def _same_dtype(self) -> None:
        if dtype_of(self.input.type) != dtype_of(self.result.type):
            _fail(self, f"result dtype {dtype_of(self.result.type)} differs from input dtype "
                        f"{dtype_of(self.input.type)}")


@irdl_op_definition
class ReshapeOp(_ShapeOp):
    """Row-major reshape to the result type's shape (same element count)."""

    name = "graph.reshape"

    def __init__(self, input: SSAValue | Operation, result_type: Attribute) -> None:
        super().__init__(operands=[SSAValue.get(input)], result_types=[result_type])

    def verify_(self) -> None:
        self._same_dtype()
        a, b = dims_of(self.input.type), dims_of(self.result.type)
        if numel(a) != numel(b):
            _fail(self, f"cannot reshape {_fmt(a)} ({numel(a)} elements) to {_fmt(b)} "
                        f"({numel(b)} elements)")


@irdl_op_definition
class PermuteOp(_ShapeOp):
    """``result.shape[i] = input.shape[dims[i]]`` (transpose generalised)."""

    name = "graph.permute"
    dims = prop_def(DenseArrayBase)

    def __init__(self, input: SSAValue | Operation, dims: Sequence[int]) -> None:
        from irc.ir.types import tensor_type
        value = SSAValue.get(input)
        shape = dims_of(value.type)
        out = tensor_type([shape[d] for d in dims], dtype_of(value.type))
        super().__init__(operands=[value], result_types=[out], properties={"dims": i64_array(dims)})

    def verify_(self) -> None:
        self._same_dtype()
        shape, dims = dims_of(self.input.type), ints(self.dims)
        if sorted(dims) != list(range(len(shape))):
            _fail(self, f"dims {list(dims)} is not a permutation of 0..{len(shape) - 1}")
        want = tuple(shape[d] for d in dims)
        _check_result_shape(self, want)


@irdl_op_definition
class ExpandOp(_ShapeOp):
    """Broadcast to the result shape like ``torch.expand``: dims align from the
    right, a size-1 dim stretches, new dims are added on the left."""

    name = "graph.expand"

    def __init__(self, input: SSAValue | Operation, result_type: Attribute) -> None:
        super().__init__(operands=[SSAValue.get(input)], result_types=[result_type])

    def verify_(self) -> None:
        self._same_dtype()
        a, b = dims_of(self.input.type), dims_of(self.result.type)
        ok = len(b) >= len(a) and all(x in (1, y) for x, y in zip(reversed(a), reversed(b)))
        if not ok:
            _fail(self, f"cannot expand {_fmt(a)} to {_fmt(b)}")


@irdl_op_definition
class SliceOp(_ShapeOp):
    """``input[start:end:step]`` along ``dim``; 0 <= start <= end <= size, step >= 1.
    ``start`` and ``end`` are integers, or size expressions (a string, e.g.
    ``"s1"``, :mod:`irc.ir.symbols`) where they are symbolic; specialising a
    module to one binding of its sizes makes them integers."""

    name = "graph.slice"
    dim = prop_def(IntegerAttr)
    start = prop_def(IntegerAttr | StringAttr)
    end = prop_def(IntegerAttr | StringAttr)
    step = prop_def(IntegerAttr)

    def __init__(self, input: SSAValue | Operation, dim: int, start: Any, end: Any,
                 step: int = 1) -> None:
        from irc.ir.types import tensor_type
        value = SSAValue.get(input)
        shape = list(dims_of(value.type))
        shape[dim] = _slice_size(start, end, step)
        super().__init__(operands=[value], result_types=[tensor_type(shape, dtype_of(value.type))],
                         properties={"dim": int_attr(dim), "start": _bound_attr(start),
                                     "end": _bound_attr(end), "step": int_attr(step)})

    def params(self) -> tuple[int, int, int, int]:
        """``(dim, start, end, step)`` of a static slice (symbolic bounds raise)."""
        dim, start, end, step = self.symbolic_params()
        if not isinstance(start, int) or not isinstance(end, int):
            from irc.ir.symbols import SymbolicShapeError
            raise SymbolicShapeError(f"graph.slice bounds {start}:{end} are symbolic")
        return dim, start, end, step

    def symbolic_params(self) -> tuple[int, Any, Any, int]:
        """``(dim, start, end, step)``, bounds as :data:`irc.ir.symbols.Dim`."""
        return (self.dim.value.data, _bound(self.start), _bound(self.end), self.step.value.data)

    def verify_(self) -> None:
        self._same_dtype()
        shape = dims_of(self.input.type)
        dim, start, end, step = self.symbolic_params()
        if not 0 <= dim < len(shape):
            _fail(self, f"dim {dim} out of range for rank {len(shape)}")
        if _provably_false(0 <= start) or _provably_false(start <= end) \
                or _provably_false(end <= shape[dim]) or step < 1:
            _fail(self, f"slice {start}:{end}:{step} is not normalised for size {shape[dim]}")
        want = list(shape)
        want[dim] = _slice_size(start, end, step)
        _check_result_shape(self, want)


def _bound_attr(value: Any) -> IntegerAttr | StringAttr:
    if isinstance(value, int):
        return int_attr(value)
    from irc.ir.symbols import canonical, format_dim
    d = canonical(value)
    return int_attr(d) if isinstance(d, int) else StringAttr(format_dim(d))


def _bound(attr: IntegerAttr | StringAttr) -> Any:
    if isinstance(attr, StringAttr):
        from irc.ir.symbols import parse_dim
        return parse_dim(attr.data)
    return attr.value.data


def _slice_size(start: Any, end: Any, step: int) -> Any:
    if isinstance(start, int) and isinstance(end, int):
        return max(0, -(-(end - start) // step))
    from irc.ir.symbols import canonical
    return canonical(-((start - end) // step))


def _provably_false(relation: Any) -> bool:
    """A relation between sizes that is false (a symbolic one that sympy
    cannot decide is taken as the guard dynamo checks, not as false)."""
    if isinstance(relation, bool):
        return not relation
    import sympy
    return relation is sympy.false


@irdl_op_definition
class ConcatOp(IRDLOperation):
    """Concatenate the operands along ``dim`` (same dtype, other dims equal)."""

    name = "graph.concat"
    inputs = var_operand_def(TensorType)
    dim = prop_def(IntegerAttr)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = "$inputs attr-dict `:` `(` type($inputs) `)` `->` type($result)"
    irdl_options = (ParsePropInAttrDict(),)

    def __init__(self, inputs: Sequence[SSAValue | Operation], dim: int) -> None:
        from irc.ir.types import tensor_type
        values = [SSAValue.get(v) for v in inputs]
        shape = list(dims_of(values[0].type))
        shape[dim] = sum(dims_of(v.type)[dim] for v in values)
        super().__init__(operands=[values], result_types=[tensor_type(shape, dtype_of(values[0].type))],
                         properties={"dim": int_attr(dim)})

    def verify_(self) -> None:
        if not self.inputs:
            _fail(self, "needs at least one input")
        dim = self.dim.value.data
        shapes = [dims_of(v.type) for v in self.inputs]
        rank = len(shapes[0])
        if not 0 <= dim < rank:
            _fail(self, f"dim {dim} out of range for rank {rank}")
        for s, v in zip(shapes, self.inputs):
            if len(s) != rank or any(a != b for i, (a, b) in enumerate(zip(s, shapes[0])) if i != dim):
                _fail(self, f"input shapes {', '.join(_fmt(x) for x in shapes)} differ outside dim {dim}")
            if dtype_of(v.type) != dtype_of(self.result.type):
                _fail(self, "inputs and result must have the same dtype")
        want = list(shapes[0])
        want[dim] = sum(s[dim] for s in shapes)
        _check_result_shape(self, want)


@irdl_op_definition
class SqueezeOp(_ShapeOp):
    """Drop the size-1 ``dims``."""

    name = "graph.squeeze"
    dims = prop_def(DenseArrayBase)

    def verify_(self) -> None:
        self._same_dtype()
        shape, dims = dims_of(self.input.type), ints(self.dims)
        if any(not 0 <= d < len(shape) or shape[d] != 1 for d in dims):
            _fail(self, f"dims {list(dims)} must be size-1 dims of {_fmt(shape)}")
        want = tuple(s for i, s in enumerate(shape) if i not in dims)
        _check_result_shape(self, want)


@irdl_op_definition
class UnsqueezeOp(_ShapeOp):
    """Insert a size-1 dim at position ``dim`` of the result."""

    name = "graph.unsqueeze"
    dim = prop_def(IntegerAttr)

    def verify_(self) -> None:
        self._same_dtype()
        shape, dim = list(dims_of(self.input.type)), self.dim.value.data
        if not 0 <= dim <= len(shape):
            _fail(self, f"dim {dim} out of range for rank {len(shape)}")
        want = shape[:dim] + [1] + shape[dim:]
        _check_result_shape(self, want)


# ----------------------------------------------------------------------------
# contractions, convolution, pooling (extern calls on the CPU)


@irdl_op_definition
class MatmulOp(IRDLOperation):
    """``[..., M, K] @ [..., K, N] -> [..., M, N]``; batch dims broadcast.
    Both operands have rank >= 2 and one dtype."""

    name = "graph.matmul"
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = _BINARY_FORMAT

    def __init__(self, lhs: SSAValue | Operation, rhs: SSAValue | Operation) -> None:
        from irc.ir.types import tensor_type
        a, b = SSAValue.get(lhs), SSAValue.get(rhs)
        sa, sb = dims_of(a.type), dims_of(b.type)
        batch = broadcast_shapes(sa[:-2], sb[:-2]) or ()
        super().__init__(operands=[a, b],
                         result_types=[tensor_type([*batch, sa[-2], sb[-1]], dtype_of(a.type))])

    def verify_(self) -> None:
        a, b = dims_of(self.lhs.type), dims_of(self.rhs.type)
        if len(a) < 2 or len(b) < 2:
            _fail(self, f"operands must have rank >= 2, got {_fmt(a)} and {_fmt(b)}")
        if a[-1] != b[-2]:
            _fail(self, f"contraction sizes differ: {_fmt(a)} @ {_fmt(b)} ({a[-1]} vs {b[-2]})")
        batch = broadcast_shapes(a[:-2], b[:-2])
        if batch is None:
            _fail(self, f"batch dims of {_fmt(a)} and {_fmt(b)} do not broadcast")
        want = (*(batch or ()), a[-2], b[-1])
        _check_result_shape(self, want)
        dt = {dtype_of(self.lhs.type), dtype_of(self.rhs.type), dtype_of(self.result.type)}
        if len(dt) != 1:
            _fail(self, f"operands and result must share one dtype, got {sorted(map(str, dt))}")


@irdl_op_definition
class AttentionOp(IRDLOperation):
    """Scaled dot-product attention, ``softmax(q @ k^T * scale + mask) @ v``, like
    ``torch.nn.functional.scaled_dot_product_attention`` without dropout.

    ``query [..., L, E]``, ``key [..., S, E]``, ``value [..., S, Ev]`` share
    their batch dims, except that key and value may have fewer heads (dim -3)
    than the query when theirs divide it: grouped-query attention, each kv
    head serving ``Hq / Hkv`` consecutive query heads (torch's CPU kernel and
    ``enable_gqa``). The result is ``[..., L, Ev]``. The optional ``mask``
    broadcasts to ``[..., L, S]``: a bool mask keeps where true, a float mask
    is added. ``is_causal`` keeps ``k <= l`` only. A row with no key left gives
    zeros, as torch's kernels do. Backends run it as one library call (the
    scores are never materialised by torch's fused CPU kernel).
    """

    name = "graph.attention"
    query = operand_def(TensorType)
    key = operand_def(TensorType)
    value = operand_def(TensorType)
    mask = opt_operand_def(TensorType)
    scale = prop_def(FloatAttr)
    is_causal = opt_prop_def(UnitAttr)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = ("$query `,` $key `,` $value (`,` $mask^)? attr-dict `:` `(` type($query) `,` "
                       "type($key) `,` type($value) (`,` type($mask)^)? `)` `->` type($result)")
    irdl_options = (ParsePropInAttrDict(),)

    def verify_(self) -> None:
        # lists: the rank checks below are data, not tuple shapes to narrow
        q, k, v = (list(dims_of(x.type)) for x in (self.query, self.key, self.value))
        out = dims_of(self.result.type)
        grouped = len(q) >= 3 and len(k) == len(q) and k[-3] > 0 and q[-3] % k[-3] == 0 \
            and q[:-3] == k[:-3]  # grouped-query attention: fewer kv heads
        same_batch = q[:-2] == k[:-2] or grouped
        if not (len(q) == len(k) == len(v) >= 2) or not same_batch or k[:-2] != v[:-2]:
            _fail(self, f"query {_fmt(q)}, key {_fmt(k)} and value {_fmt(v)} must share their "
                        "rank (>= 2) and batch dims (key/value heads may divide the query's)")
        if q[-1] != k[-1] or k[-2] != v[-2]:
            _fail(self, f"query {_fmt(q)}, key {_fmt(k)}, value {_fmt(v)}: embedding or "
                        "sequence sizes disagree")
        if out != (*q[:-1], v[-1]):
            _fail(self, f"result shape {_fmt(out)} should be {_fmt((*q[:-1], v[-1]))}")
        dtypes = {dtype_of(x.type) for x in (self.query, self.key, self.value, self.result)}
        if len(dtypes) != 1 or not next(iter(dtypes)).is_floating_point:
            _fail(self, "query, key, value and result must share one floating-point dtype")
        if self.mask is not None:
            scores = (*q[:-1], k[-2])
            if broadcast_shapes(dims_of(self.mask.type), scores) != scores:
                _fail(self, f"mask {_fmt(dims_of(self.mask.type))} does not broadcast to the "
                            f"scores {_fmt(scores)}")


def conv_output_size(size: Dim, kernel: Dim, stride: int, padding: int, dilation: int,
                     ceil_mode: bool = False) -> Dim:
    """Output length of a convolution/pooling window along one dim (torch's formula)."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1  # the last window must start inside the input or left padding
    return out


_D = TypeVar("_D")  # a dimension: int, or a symbolic Dim


def channels_first(shape: tuple[_D, ...]) -> tuple[_D, ...]:
    """``[N, *spatial, C]`` -> ``[N, C, *spatial]`` (the shape a channels-last tensor stands for)."""
    return (shape[0], shape[-1], *shape[1:-1]) if len(shape) >= 3 else shape


def channels_last_dims(rank: int) -> list[int]:
    """The permutation taking ``[N, C, *spatial]`` to ``[N, *spatial, C]``."""
    return [0, *range(2, rank), 1]


def is_channels_last(op: Operation) -> bool:
    """True for a conv/pooling op whose input and result are ``[N, *spatial, C]``
    (see :mod:`irc.passes.channels_last`)."""
    return "channels_last" in op.properties


@irdl_op_definition
class ConvOp(IRDLOperation):
    """N-d convolution (cross-correlation) like ``torch.nn.functional.convNd``:
    input ``[N, C, *spatial]``, weight ``[O, C/groups, *kernel]``, optional bias ``[O]``.

    With the unit property ``channels_last`` the input and result are laid out
    ``[N, *spatial, C]`` instead (the weight keeps its layout): the same
    convolution, on data whose channels are contiguous, which CPU convolution
    libraries (oneDNN) run several times faster than ``[N, C, H, W]``.
    """

    name = "graph.conv"
    input = operand_def(TensorType)
    weight = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    stride = prop_def(DenseArrayBase)
    padding = prop_def(DenseArrayBase)
    dilation = prop_def(DenseArrayBase)
    groups = prop_def(IntegerAttr)
    channels_last = opt_prop_def(UnitAttr)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = ("$input `,` $weight (`,` $bias^)? attr-dict `:` `(` type($input) `,` "
                       "type($weight) (`,` type($bias)^)? `)` `->` type($result)")
    irdl_options = (ParsePropInAttrDict(),)

    def verify_(self) -> None:
        x, w = dims_of(self.input.type), dims_of(self.weight.type)
        result = dims_of(self.result.type)
        if self.channels_last is not None:
            x, result = channels_first(x), channels_first(result)
        nsp = len(x) - 2
        stride, padding, dilation = ints(self.stride), ints(self.padding), ints(self.dilation)
        groups = self.groups.value.data
        if nsp < 1 or len(w) != len(x) or not (len(stride) == len(padding) == len(dilation) == nsp):
            _fail(self, f"input {_fmt(x)}, weight {_fmt(w)} and stride/padding/dilation "
                        f"lengths {len(stride)}/{len(padding)}/{len(dilation)} disagree")
        if groups < 1 or x[1] % groups or w[0] % groups or w[1] * groups != x[1]:
            _fail(self, f"channels: input has {x[1]}, weight {_fmt(w)}, groups {groups}")
        if self.bias is not None and dims_of(self.bias.type) != (w[0],):
            _fail(self, f"bias shape {_fmt(dims_of(self.bias.type))} should be {w[0]}")
        want = (x[0], w[0], *(conv_output_size(x[2 + i], w[2 + i], stride[i], padding[i],
                                               dilation[i]) for i in range(nsp)))
        if result != want:
            _fail(self, f"result shape {_fmt(result)} should be {_fmt(want)}"
                  + (" (channels-first; the op is channels_last)" if self.channels_last is not None else ""))


CONV_EPILOGUE_UNARY: dict[str, int] = {"none": 0, "relu": 0, "hardtanh": 2, "swish": 0,
                                       "sigmoid": 0, "tanh": 0}
"""The activations a ``graph.conv_epilogue`` applies, with their scalar count
(``hardtanh``: min, max; ``swish`` is silu); the names are oneDNN's post-ops."""


@irdl_op_definition
class ConvEpilogueOp(IRDLOperation):
    """A 2-d channels-last convolution and its epilogue, one library call:
    ``unary(conv(input, weight, bias) + other)``. ``other`` (optional: the
    residual) has the result's shape; ``unary`` is a key of
    :data:`CONV_EPILOGUE_UNARY` with its ``unary_scalars``. Input, other and
    result are ``[N, H, W, C]``; the weight is ``[O, C/groups, kH, kW]``.
    Made by ``conv-epilogue`` (cpu), run as oneDNN's post-ops.
    """

    name = "graph.conv_epilogue"
    input = operand_def(TensorType)
    weight = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    other = opt_operand_def(TensorType)
    stride = prop_def(DenseArrayBase)
    padding = prop_def(DenseArrayBase)
    dilation = prop_def(DenseArrayBase)
    groups = prop_def(IntegerAttr)
    unary = prop_def(StringAttr)
    unary_scalars = prop_def(DenseArrayBase)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    irdl_options = (AttrSizedOperandSegments(as_property=True),)

    def __init__(self, input: SSAValue, weight: SSAValue, bias: SSAValue | None,
                 other: SSAValue | None, result_type: Attribute, conv_properties: dict[str, Attribute],
                 unary: str, scalars: Sequence[float] = ()) -> None:
        """``conv_properties``: stride, padding, dilation and groups (a conv's)."""
        super().__init__(
            operands=[input, weight, [bias] if bias is not None else [],
                      [other] if other is not None else []],
            result_types=[result_type],
            properties={**{k: conv_properties[k] for k in ("stride", "padding", "dilation", "groups")},
                        "unary": StringAttr(unary),
                        "unary_scalars": DenseArrayBase.from_list(f64, [float(v) for v in scalars])})

    @classmethod
    def of_conv(cls, conv: ConvOp, other: SSAValue | None, unary: str,
                scalars: Sequence[float] = ()) -> "ConvEpilogueOp":
        """``conv`` (channels-last, 2-d) with the epilogue ``unary(. + other)``."""
        return cls(conv.input, conv.weight, conv.bias, other, conv.result.type,
                   dict(conv.properties), unary, scalars)

    def scalars(self) -> list[float]:
        return [float(v) for v in self.unary_scalars.get_values()]  # pyright: ignore[reportAttributeAccessIssue]  # xDSL types get_values on the parametrised DenseArrayBase only

    def verify_(self) -> None:
        x, w = dims_of(self.input.type), dims_of(self.weight.type)
        result = dims_of(self.result.type)
        stride, padding, dilation = ints(self.stride), ints(self.padding), ints(self.dilation)
        groups = self.groups.value.data
        if len(x) != 4 or len(w) != 4 or not (len(stride) == len(padding) == len(dilation) == 2):
            _fail(self, f"needs a 2-d convolution, got input {_fmt(x)}, weight {_fmt(w)}")
        if groups < 1 or x[3] % groups or w[0] % groups or w[1] * groups != x[3]:
            _fail(self, f"channels: input has {x[3]}, weight {_fmt(w)}, groups {groups}")
        if self.bias is not None and dims_of(self.bias.type) != (w[0],):
            _fail(self, f"bias shape {_fmt(dims_of(self.bias.type))} should be {w[0]}")
        want = (x[0], *(conv_output_size(x[1 + i], w[2 + i], stride[i], padding[i], dilation[i])
                        for i in range(2)), w[0])
        if result != want:
            _fail(self, f"result shape {_fmt(result)} should be {_fmt(want)} (channels-last)")
        if self.other is not None and self.other.type != self.result.type:
            _fail(self, f"other {self.other.type} should be the result's type {self.result.type}")
        unary = self.unary.data
        if unary not in CONV_EPILOGUE_UNARY:
            _fail(self, f"unary '{unary}' is not one of {', '.join(CONV_EPILOGUE_UNARY)}")
        if len(self.scalars()) != CONV_EPILOGUE_UNARY[unary]:
            _fail(self, f"unary '{unary}' takes {CONV_EPILOGUE_UNARY[unary]} scalars, "
                        f"got {len(self.scalars())}")


class _PoolOp(IRDLOperation, ABC):
    """Pooling windows over the trailing ``len(kernel)`` dims; with the unit
    property ``channels_last``, over dims ``1 .. len(kernel)`` of an
    ``[N, *spatial, C]`` input (result laid out the same way)."""

    input = operand_def(TensorType)
    kernel = prop_def(DenseArrayBase)
    stride = prop_def(DenseArrayBase)
    padding = prop_def(DenseArrayBase)
    ceil_mode = prop_def(BoolAttr, default_value=BoolAttr(False, IntegerType(1)))
    channels_last = opt_prop_def(UnitAttr)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = _UNARY_FORMAT
    irdl_options = (ParsePropInAttrDict(),)

    def dilations(self) -> tuple[int, ...]:
        return (1,) * len(ints(self.kernel))

    def verify_(self) -> None:
        x, result = dims_of(self.input.type), dims_of(self.result.type)
        if self.channels_last is not None:
            if len(x) != len(ints(self.kernel)) + 2:
                _fail(self, f"a channels_last input must be [N, *spatial, C], got {_fmt(x)}")
            x, result = channels_first(x), channels_first(result)
        k, s, p, d = ints(self.kernel), ints(self.stride), ints(self.padding), self.dilations()
        nsp = len(k)
        if len(x) < nsp + 1 or not (len(s) == len(p) == len(d) == nsp):
            _fail(self, f"input {_fmt(x)} and kernel/stride/padding lengths disagree")
        ceil = bool(self.ceil_mode.value.data)
        lead = x[:len(x) - nsp]
        want = (*lead, *(conv_output_size(x[len(lead) + i], k[i], s[i], p[i], d[i], ceil)
                         for i in range(nsp)))
        if result != want:
            _fail(self, f"result shape {_fmt(result)} should be {_fmt(want)}")


@irdl_op_definition
class MaxPoolOp(_PoolOp):
    """Max pooling over the trailing ``len(kernel)`` dims (padding is -inf)."""

    name = "graph.max_pool"
    dilation = prop_def(DenseArrayBase)

    def dilations(self) -> tuple[int, ...]:
        return ints(self.dilation)


@irdl_op_definition
class AvgPoolOp(_PoolOp):
    """Average pooling over the trailing ``len(kernel)`` dims; ``divisor = 0``
    means no divisor override."""

    name = "graph.avg_pool"
    count_include_pad = prop_def(BoolAttr, default_value=BoolAttr(True, IntegerType(1)))
    divisor = prop_def(IntegerAttr, default_value=IntegerAttr(0, i64))


@irdl_op_definition
class AdaptiveAvgPoolOp(IRDLOperation):
    """Adaptive average pooling of the trailing dims to the result's sizes."""

    name = "graph.adaptive_avg_pool"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = _UNARY_FORMAT

    def verify_(self) -> None:
        a, b = dims_of(self.input.type), dims_of(self.result.type)
        if len(a) != len(b) or len(a) < 3 or a[:2] != b[:2] and len(a) == 4:
            _fail(self, f"cannot adaptively pool {_fmt(a)} to {_fmt(b)}")


# ----------------------------------------------------------------------------
# indexing


@irdl_op_definition
class GatherOp(IRDLOperation):
    """``torch.gather(input, dim, index)``: result[i][j] = input[index[i][j]][j] (dim=0)."""

    name = "graph.gather"
    input = operand_def(TensorType)
    index = operand_def(TensorType)
    dim = prop_def(IntegerAttr)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = _BINARY_FORMAT.replace("$lhs", "$input").replace("$rhs", "$index")
    irdl_options = (ParsePropInAttrDict(),)

    def verify_(self) -> None:
        x, idx = dims_of(self.input.type), dims_of(self.index.type)
        if len(x) != len(idx) or not 0 <= self.dim.value.data < max(len(x), 1):
            _fail(self, f"input {_fmt(x)} and index {_fmt(idx)} ranks differ or dim out of range")
        _check_index_dtype(self, self.index, "index")
        if dims_of(self.result.type) != idx or dtype_of(self.result.type) != dtype_of(self.input.type):
            _fail(self, "result must have the index's shape and the input's dtype")


@irdl_op_definition
class IndexSelectOp(IRDLOperation):
    """``torch.index_select(input, dim, index)`` with a 1-d index."""

    name = "graph.index_select"
    input = operand_def(TensorType)
    index = operand_def(TensorType)
    dim = prop_def(IntegerAttr)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = _BINARY_FORMAT.replace("$lhs", "$input").replace("$rhs", "$index")
    irdl_options = (ParsePropInAttrDict(),)

    def verify_(self) -> None:
        x, idx, dim = dims_of(self.input.type), dims_of(self.index.type), self.dim.value.data
        if len(idx) != 1 or not 0 <= dim < len(x):
            _fail(self, f"index must be 1-d and dim in range (input {_fmt(x)}, index {_fmt(idx)})")
        want = list(x)
        want[dim] = idx[0]
        _check_result_shape(self, want)


@irdl_op_definition
class EmbeddingOp(IRDLOperation):
    """``weight[indices]``: weight ``[V, D]``, integer indices ``[...]`` -> ``[..., D]``."""

    name = "graph.embedding"
    weight = operand_def(TensorType)
    indices = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = _BINARY_FORMAT.replace("$lhs", "$weight").replace("$rhs", "$indices")

    def verify_(self) -> None:
        w, idx = dims_of(self.weight.type), dims_of(self.indices.type)
        if len(w) != 2:
            _fail(self, f"weight must be 2-d, got {_fmt(w)}")
        _check_index_dtype(self, self.indices, "indices")
        _check_result_shape(self, (*idx, w[1]))


# ----------------------------------------------------------------------------
# library calls of aten ops the dialect has no op for


_GENERATOR_EFFECTS = frozenset({EffectInstance(MemoryEffectKind.READ),
                                EffectInstance(MemoryEffectKind.WRITE)})


class _AtenCallEffects(MemoryEffect):
    """No effect, except a ``seeded`` call (it reads and advances torch's
    random generator) and a call without results (a check that may raise):
    those are never merged, folded, cached or dropped."""

    @classmethod
    def get_effects(cls, op: Operation) -> frozenset[EffectInstance]:
        return _GENERATOR_EFFECTS if "seeded" in op.properties or not op.results else frozenset()


@irdl_op_definition
class AtenCallOp(IRDLOperation):
    """A call of the functional op ``callee`` (``"aten::sort.stable"``),
    run by every backend as torch's own kernel (a library call, like
    inductor's fallback kernels). Value semantics: results never alias the
    operands.

    ``args`` is the call's arguments as JSON, ``[positional, keyword]``, with
    ``{"$t": i}`` for operand ``i`` (a tensor argument, also inside lists),
    ``{"$dtype": "float32"}``, ``{"$device": "cpu"}``, ``{"$layout": ..}`` and
    ``{"$memory_format": ..}`` for those torch types. The results are the
    op's tensor outputs in order, in the types the op gives (a runtime casts
    to the declared dtype); none for an op returning nothing (a check such as
    ``_linalg_check_errors``, kept for the error it raises). ``seeded``: the op draws from torch's generator
    (``rand``, ``bernoulli``...); it runs where eager would, once per call.
    """

    name = "graph.aten_call"
    inputs = var_operand_def(TensorType)
    callee = prop_def(StringAttr)
    args = prop_def(StringAttr)
    seeded = opt_prop_def(UnitAttr)
    outputs = var_result_def(TensorType)
    traits = traits_def(_AtenCallEffects())
    assembly_format = "$callee `(` $inputs `)` attr-dict `:` functional-type($inputs, $outputs)"
    irdl_options = (ParsePropInAttrDict(),)

    def verify_(self) -> None:
        import json
        if "::" not in self.callee.data or "." not in self.callee.data.split("::", 1)[1]:
            _fail(self, f"callee must name an op overload (\"aten::name.overload\"), "
                        f"got {self.callee.data!r}")
        try:
            decoded = json.loads(self.args.data)
        except ValueError as err:
            _fail(self, f"args is not JSON: {err}")
        refs: list[int] = []

        def walk(value: object) -> None:
            if isinstance(value, dict) and "$t" in value:
                refs.append(value["$t"])  # type: ignore[arg-type]
            elif isinstance(value, dict):
                for v in value.values():
                    walk(v)
            elif isinstance(value, list):
                for v in value:
                    walk(v)

        walk(decoded)
        if sorted(refs) != list(range(len(self.inputs))):
            _fail(self, f"args refer to operands {sorted(refs)}, the op has {len(self.inputs)}")


# ----------------------------------------------------------------------------
# constants


@irdl_op_definition
class ConstantOp(IRDLOperation):
    """A constant tensor: ``dense<...>`` (a splat prints as one value)."""

    name = "graph.constant"
    _T: ClassVar = VarConstraint("T", AnyAttr())
    result = result_def(_T)
    value = prop_def(ParamAttrConstraint(DenseIntOrFPElementsAttr, (_T, AnyAttr())))
    traits = traits_def(Pure(), ConstantLike())
    assembly_format = "attr-dict $value"  # the dense attribute carries the type

    def __init__(self, value: DenseIntOrFPElementsAttr) -> None:
        super().__init__(properties={"value": value}, result_types=[value.type])

    def verify_(self) -> None:
        if self.value.type != self.result.type:
            _fail(self, f"value type {self.value.type} differs from result type {self.result.type}")


@irdl_op_definition
class SizeOp(IRDLOperation):
    """A 0-d i64 tensor holding a size expression's value (``"s0"``,
    ``"4*s1 - 1"``: :mod:`irc.ir.symbols`), like MLIR's ``tensor.dim``: how a
    symbolic size reaches arithmetic (a variance's ``n - 1``, ``x / x.size(0)``).
    Specialising a module to one binding of its sizes makes it a constant."""

    name = "graph.size"
    expr = prop_def(StringAttr)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = "$expr attr-dict `:` type($result)"
    irdl_options = (ParsePropInAttrDict(),)

    def __init__(self, expr: str) -> None:
        from irc.ir.types import tensor_type
        super().__init__(properties={"expr": StringAttr(expr)},
                         result_types=[tensor_type((), torch.int64)])

    def verify_(self) -> None:
        from irc.ir.symbols import SymbolicShapeError, parse_dim
        if dims_of(self.result.type) != () or dtype_of(self.result.type) != torch.int64:
            _fail(self, f"result must be tensor<i64>, got {self.result.type}")
        try:
            parse_dim(self.expr.data)
        except SymbolicShapeError as err:
            _fail(self, str(err))


@irdl_op_definition
class IotaOp(IRDLOperation):
    """``arange(n)`` as i64, ``n`` the result's (symbolic) size: how
    ``torch.arange`` of a symbolic length is spelled (a static one is folded to
    a constant at import). Specialising a module to one binding of its sizes
    makes it a constant."""

    name = "graph.iota"
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = "attr-dict `:` type($result)"

    def __init__(self, result_type: Attribute) -> None:
        super().__init__(result_types=[result_type])

    def verify_(self) -> None:
        if len(dims_of(self.result.type)) != 1 or dtype_of(self.result.type) != torch.int64:
            _fail(self, f"result must be a 1-d i64 tensor, got {self.result.type}")


@irdl_op_definition
class WeightOp(IRDLOperation):
    """A named tensor held beside the module (a model's parameter or buffer,
    or a folded constant too large to print). Its value lives in the module's
    weight store under ``name``; the text shows only the name and type."""

    name = "graph.weight"
    sym_name = prop_def(StringAttr, prop_name="name")
    result = result_def(TensorType)
    traits = traits_def(Pure(), ConstantLike())
    assembly_format = "$name attr-dict `:` type($result)"

    def __init__(self, name: str, result_type: Attribute) -> None:
        super().__init__(properties={"name": StringAttr(name)}, result_types=[result_type])


# ----------------------------------------------------------------------------
# weight-only quantization (made by the quantize-weights pass)


def quantized_row_bytes(k: Dim, bits: int) -> Dim:
    """Bytes per output row of a quantized weight: ``k`` for int8, ``ceil(k/2)`` for int4."""
    return k if bits == 8 else (k + 1) // 2


@irdl_op_definition
class QuantizedMatmulOp(IRDLOperation):
    """``input @ dequantize(qweight, scales)^T``: a linear layer whose weight is
    stored in 8 or 4 bits (symmetric, no zero point).

    ``input`` ``[..., M, K]`` (float), ``qweight`` ``[N, K]`` i8 for ``bits = 8``
    or ``[N, ceil(K/2)]`` i8 for ``bits = 4`` (two values per byte: element
    ``2j`` in the low nibble, ``2j+1`` in the high one, each stored as
    ``q + 8`` with ``q`` in ``[-8, 7]``), ``scales`` ``[N, ceil(K/group_size)]``
    f32: element ``(n, k)`` of the weight is ``q[n, k] * scales[n, k // group_size]``
    (int8 per output channel is ``group_size = K``; the last group of a K not
    divisible by the group size is shorter). Result ``[..., M, N]``, the
    input's dtype. The reference interpreter defines it as dequantize, then
    matmul in float32.
    """

    name = "graph.quantized_matmul"
    input = operand_def(TensorType)
    qweight = operand_def(TensorType)
    scales = operand_def(TensorType)
    bits = prop_def(IntegerAttr)
    group_size = prop_def(IntegerAttr)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = ("$input `,` $qweight `,` $scales attr-dict `:` `(` type($input) `,` "
                       "type($qweight) `,` type($scales) `)` `->` type($result)")
    irdl_options = (ParsePropInAttrDict(),)

    def __init__(self, input: SSAValue | Operation, qweight: SSAValue | Operation,
                 scales: SSAValue | Operation, bits: int, group_size: int) -> None:
        from irc.ir.types import tensor_type
        x, q, s = SSAValue.get(input), SSAValue.get(qweight), SSAValue.get(scales)
        sx = dims_of(x.type)
        super().__init__(operands=[x, q, s], properties={
            "bits": int_attr(bits), "group_size": int_attr(group_size)},
            result_types=[tensor_type([*sx[:-1], dims_of(q.type)[0]], dtype_of(x.type))])

    def verify_(self) -> None:
        x, q, s = dims_of(self.input.type), dims_of(self.qweight.type), dims_of(self.scales.type)
        bits, group = self.bits.value.data, self.group_size.value.data
        if bits not in (4, 8):
            _fail(self, f"bits must be 8 or 4, got {bits}")
        if group < 1 or (bits == 4 and group % 2):
            _fail(self, f"group_size must be positive (and even for int4), got {group}")
        if len(x) < 2 or len(q) != 2 or len(s) != 2:
            _fail(self, f"input must have rank >= 2 and qweight/scales rank 2, got "
                        f"{_fmt(x)}, {_fmt(q)}, {_fmt(s)}")
        k, n = x[-1], q[0]
        if q[1] != quantized_row_bytes(k, bits):
            _fail(self, f"qweight {_fmt(q)} should have {quantized_row_bytes(k, bits)} bytes "
                        f"per row for K = {k} at {bits} bits")
        if s != (n, -(-k // group)):
            _fail(self, f"scales {_fmt(s)} should be {_fmt((n, -(-k // group)))}")
        if dtype_of(self.qweight.type) != torch.int8 or dtype_of(self.scales.type) != torch.float32:
            _fail(self, "qweight must be i8 and scales f32")
        if not dtype_of(self.input.type).is_floating_point:
            _fail(self, f"input must be a float tensor, got {dtype_of(self.input.type)}")
        want = (*x[:-1], n)
        if dims_of(self.result.type) != want or dtype_of(self.result.type) != dtype_of(self.input.type):
            _fail(self, f"result should be {_fmt(want)} of the input's dtype")


# ----------------------------------------------------------------------------
# in-place update of a cache buffer (a static KV cache)


_WRITES = frozenset({EffectInstance(MemoryEffectKind.WRITE)})


class _WritesCache(MemoryEffect):
    """Writes its cache operand: never dropped, merged, folded or moved."""

    @classmethod
    def get_effects(cls, op: Operation) -> frozenset[EffectInstance]:
        return _WRITES


@irdl_op_definition
class CacheUpdateOp(IRDLOperation):
    """``cache.index_copy_(dim, index, values)``: writes ``values`` into the
    caller's buffer ``cache`` at positions ``index`` (1-d, i64/i32) along
    ``dim``, in place; only those positions are written. The result is the
    same buffer after the write (it aliases ``cache``), for the ops that read
    the updated cache.

    The one op of the dialect with an effect on its operand, so it is
    restricted: ``cache`` is an argument of the enclosing function (the
    caller's tensor, e.g. a ``transformers`` static cache layer), and every
    other use of that argument comes before the update (nothing reads the
    old contents after they are overwritten). The reference interpreter
    defines it as torch's ``index_copy_`` on the argument."""

    name = "graph.cache_update"
    cache = operand_def(TensorType)
    index = operand_def(TensorType)
    values = operand_def(TensorType)
    dim = prop_def(IntegerAttr)
    result = result_def(TensorType)
    traits = traits_def(_WritesCache())
    assembly_format = ("$cache `,` $index `,` $values attr-dict `:` `(` type($cache) `,` "
                       "type($index) `,` type($values) `)` `->` type($result)")
    irdl_options = (ParsePropInAttrDict(),)

    def __init__(self, cache: SSAValue | Operation, index: SSAValue | Operation,
                 values: SSAValue | Operation, dim: int) -> None:
        c = SSAValue.get(cache)
        super().__init__(operands=[c, SSAValue.get(index), SSAValue.get(values)],
                         properties={"dim": int_attr(dim)}, result_types=[c.type])

    def verify_(self) -> None:
        from xdsl.ir import BlockArgument
        c, idx, v = dims_of(self.cache.type), dims_of(self.index.type), dims_of(self.values.type)
        dim = self.dim.value.data
        if not 0 <= dim < len(c) or len(idx) != 1:
            _fail(self, f"dim {dim} out of range for cache {_fmt(c)}, or index {_fmt(idx)} not 1-d")
        _check_index_dtype(self, self.index, "index")
        want = tuple(idx[0] if d == dim else n for d, n in enumerate(c))
        if v != want or dtype_of(self.values.type) != dtype_of(self.cache.type):
            _fail(self, f"values {_fmt(v)} should be {_fmt(want)} of the cache's dtype")
        if self.result.type != self.cache.type:
            _fail(self, "result type must be the cache's type")
        block = self.parent_block()
        if block is None:
            return
        if not (isinstance(self.cache, BlockArgument) and self.cache.block is block):
            _fail(self, "cache must be an argument of the enclosing function (the caller's buffer)")
        for use in self.cache.uses:
            other = use.operation
            if other is not self and (other.parent_block() is not block
                                      or block.get_operation_index(other)
                                      > block.get_operation_index(self)):
                _fail(self, f"{other.name} reads the cache after it is updated in place")


# ----------------------------------------------------------------------------

GRAPH_OPS: list[type[IRDLOperation]] = [
    v for v in list(globals().values())
    if isinstance(v, type) and issubclass(v, IRDLOperation) and getattr(v, "name", "").startswith("graph.")
    and ABC not in v.__bases__ and v.__module__ == __name__
]

Graph = Dialect("graph", list[type[Operation]](GRAPH_OPS), [])
