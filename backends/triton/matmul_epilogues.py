"""The ``matmul-epilogues`` pass: which matmuls the Triton template may run,
and which consumer kernel it runs as each one's epilogue (kernel level ->
kernel level; the last pass of the ``cuda`` backend's kernel stage).

Guarantees: every ``graph.matmul`` of ``@main`` that the template can run
(f32/f16/bf16, non-empty, batch within grid axis 1:
:func:`~irc.backends.triton.codegen_matmul.template_legal`) gets the unit
attribute ``irc.template``; when its product's only user is the call of a
kernel whose Triton code is pointwise and reads the product only at the
element it stores (bias, activation, residual, casts, also through permutes and
reshapes), the matmul also gets ``irc.epilogue = @that_kernel``, and no other
matmul claims that call. Other matmuls carry neither attribute (earlier ones
are replaced, so running the pass twice changes nothing). Only attributes
change, so the meaning of the module is the same.

The code generator emits exactly these decisions
(:func:`~irc.backends.triton.codegen_matmul.plan_matmul_sites`); the backend
option ``matmul`` then chooses the schedule: ``"cublas"`` ignores them,
``"triton"`` runs each marked matmul as the template (its epilogue kernel is
no longer launched), ``"auto"`` emits both and times them on the GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, SymbolRefAttr, UnitAttr
from xdsl.passes import ModulePass

from irc.backends.triton.codegen import epilogue_candidate
from irc.backends.triton.codegen_matmul import (
    EPILOGUE,
    TEMPLATE,
    epilogue_fits,
    only_use,
    template_legal,
)
from irc.errors import PassError
from irc.ir import graph as g
from irc.ir.kernel import find_main, kernels_by_name


@dataclass(frozen=True)
class MatmulEpilogues(ModulePass):
    """Mark template matmuls and their fused epilogue kernels (see the module docstring)."""

    name = "matmul-epilogues"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        main = find_main(op, self.name, error=PassError)
        kernels = kernels_by_name(op)
        claimed: set[int] = set()
        for mm in main.body.block.ops:
            if not isinstance(mm, g.MatmulOp):
                continue
            mm.attributes.pop(TEMPLATE, None)
            mm.attributes.pop(EPILOGUE, None)
            if not template_legal(mm):
                continue
            mm.attributes[TEMPLATE] = UnitAttr()
            call = _epilogue(mm, kernels, claimed)
            if call is not None:
                claimed.add(id(call))
                mm.attributes[EPILOGUE] = SymbolRefAttr(call.callee.root_reference)


def _epilogue(mm: g.MatmulOp, kernels: dict[str, func.FuncOp],
              claimed: set[int]) -> func.CallOp | None:
    """The call of the kernel the template can run as ``mm``'s epilogue, or None."""
    user = only_use(mm.result)
    if not isinstance(user, func.CallOp) or id(user) in claimed:
        return None
    callee = kernels.get(user.callee.string_value())
    if callee is None:
        return None
    spec = epilogue_candidate(user, callee)
    return user if spec is not None and epilogue_fits(mm, user, spec) else None
