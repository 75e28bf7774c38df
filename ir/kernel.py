"""The kernel level: what ``fuse`` produces and every backend consumes.

A kernel-level module holds

* ``func.func @main``, the **host schedule**: block arguments (the user's
  inputs), host values (``graph.weight``, ``graph.constant``), **kernel
  calls** (``func.call @kernel_N``; after ``lower-to-loops``,
  ``host.launch @kernel_N`` from :mod:`irc.ir.host`) and **extern ops**
  (:func:`is_extern`: library calls that never enter a kernel), in execution
  order;
* one ``func.func private @kernel_N`` per kernel, marked by the unit
  attribute ``irc.kernel`` (:data:`KERNEL_ATTR`) and summarised by the string
  ``irc.iteration`` (:data:`ITERATION_ATTR`). Its body is graph ops and a
  ``func.return`` (kernel level) or scf/memref/arith loops over memrefs
  (loops level).

The kernel is a discardable attribute of ``func.func`` (as ``gpu.kernel`` is
in MLIR) rather than an op of its own, so the printed IR stays the familiar
``func.func private @kernel_0(...) attributes {irc.kernel, irc.iteration =
"..."}``, and xDSL's func ops, symbol tables and rewriters apply unchanged.
What the attribute promises is checked by :func:`verify_kernel_module`, which
:func:`irc.ir.text.verify_module` runs on every module with a kernel (so
``irc opt``, ``--verify-each`` and the pipelines all check it):

* ``irc.kernel`` is a unit attribute on a ``func.func`` other than ``@main``,
  with a body; ``irc.iteration`` is a string;
* a kernel calls nothing (no ``func.call``, no ``host.launch``). (``fuse``
  never puts an extern op into a kernel, but a kernel written by hand may hold
  one a backend can lower, such as a gather; a backend that cannot names it.)
* every ``host.launch`` names a kernel of the module. (That a ``func.call``
  passes and yields the callee's types is xDSL's own ``func.call`` verifier;
  ``host.launch`` checks its memref signature itself.)

Semantics (:mod:`irc.ir.interpreter`): a kernel call runs the kernel's body on
the call's operands and yields its ``func.return`` values; extern and host ops
have their graph-op meaning. So interpreting a module before and after
``fuse`` gives the same results.

The helpers here (:func:`find_main`, :func:`kernel_functions`,
:func:`kernels_by_name`, :func:`kernel_calls`, :func:`is_extern`) are the one
definition every pass, backend and debug tool uses.
"""

from __future__ import annotations

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr, UnitAttr
from xdsl.ir import Operation
from xdsl.utils.exceptions import VerifyException

from irc.errors import IrcError
from irc.ir import graph as g

KERNEL_ATTR = "irc.kernel"
"""Unit attribute marking a ``func.func`` as a kernel."""
ITERATION_ATTR = "irc.iteration"
"""String attribute: a one-line summary of a kernel's iteration spaces."""
MAIN = "main"
"""Name of the host schedule (the entry function)."""

EXTERN_OPS: tuple[type[Operation], ...] = (
    g.MatmulOp, g.ConvOp, g.ConvEpilogueOp, g.MaxPoolOp, g.AvgPoolOp, g.AdaptiveAvgPoolOp,
    g.GatherOp, g.IndexSelectOp, g.EmbeddingOp, g.AttentionOp, g.QuantizedMatmulOp, g.AtenCallOp,
    g.CacheUpdateOp,
)
"""Ops that backends always run as library calls; they never enter a kernel."""

MAX_FUSED_CONCAT_INPUTS = 4
"""A fused concat reads every operand for each element (then selects one):
worth it for a few operands (no separate pass over memory), not for many. A
concat of more operands is an extern op."""

EXTERN_OP_NAMES: frozenset[str] = frozenset(
    t.name for t in (*EXTERN_OPS, g.ConcatOp))  # type: ignore[attr-defined]
"""Names of the ops that can be extern (a concat only when wide)."""


def is_extern(op: Operation) -> bool:
    """True for ops that stay in ``@main`` as library calls: :data:`EXTERN_OPS`,
    and concats of more than :data:`MAX_FUSED_CONCAT_INPUTS` operands."""
    if isinstance(op, g.ConcatOp):
        return len(op.inputs) > MAX_FUSED_CONCAT_INPUTS
    return isinstance(op, EXTERN_OPS)


def is_kernel(fn: Operation) -> bool:
    """Whether ``fn`` is a ``func.func`` marked as a kernel."""
    return isinstance(fn, func.FuncOp) and KERNEL_ATTR in fn.attributes


def mark_kernel(fn: func.FuncOp, iteration: str | None = None) -> func.FuncOp:
    """Mark ``fn`` as a kernel (with an ``irc.iteration`` summary when given)."""
    fn.attributes[KERNEL_ATTR] = UnitAttr()
    if iteration is not None:
        fn.attributes[ITERATION_ATTR] = StringAttr(iteration)
    return fn


def find_main(module: ModuleOp, who: str | None = None,
              error: type[IrcError] = IrcError) -> func.FuncOp:
    """``func.func @main`` of ``module``; else ``error`` saying so (prefixed
    with ``who``, the pass or backend asking)."""
    for op in module.ops:
        if isinstance(op, func.FuncOp) and op.sym_name.data == MAIN:
            return op
    prefix = f"{who}: " if who else ""
    raise error(f"{prefix}the module has no func.func @main")


def kernel_functions(module: ModuleOp) -> list[func.FuncOp]:
    """The kernels of ``module``, in module order."""
    return [op for op in module.ops if is_kernel(op)]  # type: ignore[misc]


def kernels_by_name(module: ModuleOp) -> dict[str, func.FuncOp]:
    """The kernels of ``module`` by name, in module order."""
    return {fn.sym_name.data: fn for fn in kernel_functions(module)}


def is_kernel_level(module: ModuleOp) -> bool:
    """Whether ``module`` has kernels (fuse has run)."""
    return any(is_kernel(op) for op in module.ops)


def kernel_calls(module: ModuleOp) -> list[func.CallOp]:
    """The host schedule's ``func.call``s of kernels, in execution order."""
    kernels = kernels_by_name(module)
    return [op for op in find_main(module).body.block.ops
            if isinstance(op, func.CallOp) and op.callee.string_value() in kernels]


# ----------------------------------------------------------------------------
# the verifier


class KernelVerifyException(VerifyException):
    """A broken kernel-level invariant; ``op`` is where it broke."""

    def __init__(self, op: Operation, message: str) -> None:
        super().__init__(message)
        self.op = op


def verify_kernel_module(module: ModuleOp) -> None:
    """Check the kernel-level invariants (module docstring) of ``module``;
    raises :class:`KernelVerifyException` at the first op that breaks one."""
    from irc.ir.host import LaunchOp
    kernels = kernels_by_name(module)
    for op in module.walk():
        if KERNEL_ATTR in op.attributes and not isinstance(op, func.FuncOp):
            raise KernelVerifyException(op, f"'{op.name}' op: '{KERNEL_ATTR}' marks a "
                                            "func.func, not this op")
    for name, fn in kernels.items():
        _verify_kernel(name, fn)
    for fn in module.ops:
        if not isinstance(fn, func.FuncOp) or is_kernel(fn):
            continue
        for op in fn.walk():
            if isinstance(op, LaunchOp) and op.callee.string_value() not in kernels:
                raise KernelVerifyException(op, f"'host.launch' op: @{op.callee.string_value()} "
                                                "is not a kernel of the module")


def _verify_kernel(name: str, fn: func.FuncOp) -> None:
    from irc.ir.host import LaunchOp
    if not isinstance(fn.attributes[KERNEL_ATTR], UnitAttr):
        raise KernelVerifyException(fn, f"'func.func' op: '{KERNEL_ATTR}' of @{name} must be a "
                                        "unit attribute")
    iteration = fn.attributes.get(ITERATION_ATTR)
    if iteration is not None and not isinstance(iteration, StringAttr):
        raise KernelVerifyException(fn, f"'func.func' op: '{ITERATION_ATTR}' of @{name} must be "
                                        "a string")
    if name == MAIN:
        raise KernelVerifyException(fn, "'func.func' op: @main is the host schedule and cannot "
                                        "be a kernel")
    if not fn.body.blocks:
        raise KernelVerifyException(fn, f"'func.func' op: kernel @{name} has no body")
    for op in fn.walk():
        if isinstance(op, (func.CallOp, LaunchOp)):
            raise KernelVerifyException(op, f"'{op.name}' op: kernel @{name} calls "
                                            f"@{op.callee.string_value()}; a kernel calls "
                                            "nothing")


__all__ = ["EXTERN_OPS", "EXTERN_OP_NAMES", "ITERATION_ATTR", "KERNEL_ATTR", "MAIN",
           "MAX_FUSED_CONCAT_INPUTS", "KernelVerifyException", "find_main", "is_extern",
           "is_kernel", "is_kernel_level", "kernel_calls", "kernel_functions", "kernels_by_name",
           "mark_kernel", "verify_kernel_module"]
