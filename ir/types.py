"""Element types, shapes and torch's promotion rules, shared by every IR level.

The graph dialect uses builtin ``tensor<...>`` types with these element types:
f64, f32, f16, bf16, i64, i32, i8 and i1 (bool). Integers are signless in MLIR
but always mean torch's *signed* integers here (i1 is bool).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from xdsl.dialects.builtin import (
    BFloat16Type,
    Float16Type,
    Float32Type,
    Float64Type,
    IntegerType,
    TensorType,
)
from xdsl.dialects.builtin import DYNAMIC_INDEX
from xdsl.ir import Attribute

from irc.ir.symbols import Dim, SymbolicShapeError, make_tensor_type, type_dims

TORCH_TO_ELEMENT: dict[torch.dtype, Attribute] = {
    torch.float64: Float64Type(),
    torch.float32: Float32Type(),
    torch.float16: Float16Type(),
    torch.bfloat16: BFloat16Type(),
    torch.int64: IntegerType(64),
    torch.int32: IntegerType(32),
    torch.int8: IntegerType(8),
    torch.bool: IntegerType(1),
}
ELEMENT_TO_TORCH: dict[Attribute, torch.dtype] = {v: k for k, v in TORCH_TO_ELEMENT.items()}

SUPPORTED_DTYPES: tuple[torch.dtype, ...] = tuple(TORCH_TO_ELEMENT)
FLOAT_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)


def element_type(dtype: torch.dtype) -> Attribute:
    """The MLIR element type of a torch dtype (KeyError names unsupported ones)."""
    try:
        return TORCH_TO_ELEMENT[dtype]
    except KeyError:
        raise KeyError(f"dtype {dtype} is not supported by irc "
                       f"(supported: {', '.join(str(d) for d in SUPPORTED_DTYPES)})") from None


def torch_dtype(element: Attribute) -> torch.dtype:
    """The torch dtype of an MLIR element type."""
    try:
        return ELEMENT_TO_TORCH[element]
    except KeyError:
        raise KeyError(f"element type {element} has no torch dtype") from None


def tensor_type(shape: Sequence[Any], dtype: torch.dtype) -> TensorType[Attribute]:
    """``tensor<shape x dtype>``; a 0-d shape gives a scalar tensor type. A
    symbolic size (sympy expression or torch ``SymInt``) becomes a ``?`` tied
    to its expression (:mod:`irc.ir.symbols`)."""
    if all(type(d) is int for d in shape):
        return TensorType(element_type(dtype), list(shape))
    return make_tensor_type(element_type(dtype), shape)


def shape_of(t: Attribute) -> tuple[int, ...]:
    """Static shape of a tensor or memref type; a ``?`` dimension raises
    :class:`irc.ir.symbols.SymbolicShapeError` (code that handles symbolic
    sizes uses :func:`dims_of`)."""
    shape = tuple(int(d) for d in t.get_shape())  # type: ignore[attr-defined]
    if DYNAMIC_INDEX in shape:
        raise SymbolicShapeError(f"a static shape is needed here, got {t}")
    return shape


def dims_of(t: Attribute) -> tuple[Dim, ...]:
    """Dimensions of a tensor or memref type: ints, and each ``?`` as its size expression."""
    return type_dims(t)


def dtype_of(t: Attribute) -> torch.dtype:
    """torch dtype of a tensor or memref type."""
    return torch_dtype(t.get_element_type())  # type: ignore[attr-defined]


def is_float(dtype: torch.dtype) -> bool:
    return dtype.is_floating_point


def broadcast_shapes(*shapes: Sequence[Dim]) -> tuple[Dim, ...] | None:
    """torch's broadcasting of shapes, or None when they do not broadcast.
    Symbolic sizes broadcast only against 1 or the same expression (a size
    that would have to be 1 at run time is never assumed)."""
    rank = max((len(s) for s in shapes), default=0)
    out: list[Dim] = []
    for i in range(rank):
        size: Dim = 1
        for s in shapes:
            j = len(s) - rank + i
            if j < 0:
                continue
            d = s[j]
            if d == 1:
                continue
            if size not in (1, d):
                return None
            size = d
        out.append(size)
    return tuple(out)


def promote(*dtypes: torch.dtype) -> torch.dtype:
    """torch.promote_types folded over all dtypes."""
    result = dtypes[0]
    for d in dtypes[1:]:
        result = torch.promote_types(result, d)
    return result


def default_float(dtype: torch.dtype) -> torch.dtype:
    """The dtype of a float-valued op (exp, div, mean...) on this input dtype."""
    return dtype if dtype.is_floating_point else torch.get_default_dtype()


def numel(shape: Sequence[Any]) -> Any:
    n: Any = 1
    for d in shape:
        n *= d
    return n
