"""The ``host`` dialect: how the loops-level host schedule launches a kernel.

After ``lower-to-loops`` a kernel is a ``func.func`` over memrefs with no
results, so ``@main`` (which still works on tensors) can no longer reach it
with a type-checked ``func.call``.  ``host.launch`` names the kernel and takes
the input tensors; its results are the output tensors the host allocates and
passes as the kernel's trailing memref arguments:

    %y = host.launch @kernel_0(%x, %w) : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>

The launch verifies that the callee is a func whose memref arguments match
the operand and result tensors in element count and element type. A kernel
compiled for every binding of symbolic sizes takes trailing ``index`` size
arguments (``irc.sizes``) that the launch does not list: the runtime passes
the values of the call's binding.
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects.builtin import (DYNAMIC_INDEX, FlatSymbolRefAttrConstr, IndexType, MemRefType,
                                   SymbolRefAttr, TensorType)
from xdsl.ir import Attribute, Dialect, Operation, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    irdl_op_definition,
    prop_def,
    var_operand_def,
    var_result_def,
)
from xdsl.traits import SymbolTable
from xdsl.utils.exceptions import VerifyException


def _numel(t: Attribute) -> int:
    n = 1
    for d in t.get_shape():  # type: ignore[attr-defined]
        n *= d
    return n


def _holds(buffer: MemRefType, t: Attribute) -> bool:
    """Does the flat ``buffer`` hold a tensor of type ``t``? (``memref<?xT>``
    holds a tensor with a symbolic size; a static one, its element count.)"""
    shape = [int(d) for d in buffer.get_shape()]
    symbolic = DYNAMIC_INDEX in [int(d) for d in t.get_shape()]  # type: ignore[attr-defined]
    if DYNAMIC_INDEX in shape or symbolic:
        return shape == [DYNAMIC_INDEX] and symbolic
    return _numel(buffer) == _numel(t)


@irdl_op_definition
class LaunchOp(IRDLOperation):
    """Run loops-level kernel ``callee`` on the operand tensors; results are its outputs."""

    name = "host.launch"
    callee = prop_def(FlatSymbolRefAttrConstr)
    args = var_operand_def(TensorType)
    res = var_result_def(TensorType)
    assembly_format = "$callee `(` $args `)` attr-dict `:` functional-type($args, $res)"

    def __init__(self, callee: str, args: Sequence[SSAValue | Operation],
                 result_types: Sequence[Attribute]) -> None:
        super().__init__(operands=[list(args)], result_types=[list(result_types)],
                         properties={"callee": SymbolRefAttr(callee)})

    def verify_(self) -> None:
        from xdsl.dialects import func
        target = SymbolTable.lookup_symbol(self, self.callee)
        if not isinstance(target, func.FuncOp):
            raise VerifyException(f"'host.launch' callee {self.callee} is not a func")
        params = list(target.function_type.inputs.data)
        while params and isinstance(params[-1], IndexType):
            params.pop()  # trailing size arguments: the runtime passes the binding's sizes
        values = [*self.args, *self.res]
        if len(params) != len(values) or target.function_type.outputs.data:
            raise VerifyException(f"'host.launch' callee {self.callee} takes {len(params)} memrefs "
                                  f"and no results; launch passes {len(values)} tensors")
        for i, (p, v) in enumerate(zip(params, values)):
            if not isinstance(p, MemRefType) or p.element_type != v.type.element_type \
                    or not _holds(p, v.type):
                raise VerifyException(f"'host.launch' buffer {i} of {self.callee} is {p}, "
                                      f"which does not hold {v.type}")


Host = Dialect("host", [LaunchOp], [])
