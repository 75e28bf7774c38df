"""Which IR level each pass works on, and the check :func:`run_pipeline` makes.

A pass states the levels of IR it accepts and the level it leaves (class
attributes ``levels`` and ``produces`` on the pass, for plugins; the built-in
passes are listed in :data:`BUILTIN_LEVELS`, so the pass files stay as they
are). A pass run on IR of another level is a :class:`PassError` naming it and
the pass that produces the level it needs (``lower-to-loops`` on graph-level
IR: run ``fuse`` first), never a wrong result or a crash.

The level of a module is read from its IR (:func:`ir_levels`): ``loops`` once
kernels are lowered (``host.launch``, memref kernels), ``kernel`` once there
are outlined kernels, ``graph`` before. A module with no kernel and nothing
left to fuse (only library calls) is at every level.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects import func
from xdsl.dialects.builtin import MemRefType, ModuleOp
from xdsl.passes import ModulePass

from irc.errors import PassError

GRAPH, KERNEL, LOOPS = "graph", "kernel", "loops"
ORDER = (GRAPH, KERNEL, LOOPS)


@dataclass(frozen=True)
class PassLevels:
    """The levels a pass accepts and the level its output is at (None: unchanged)."""

    levels: tuple[str, ...]
    produces: str | None = None
    approximates: bool = False
    """True for a pass that changes results on purpose within a stated error
    (``quantize-weights``); property tests compare the others exactly."""


# The graph passes also work on the host schedule of a kernel-level module
# (tests/test_random_pipelines.py checks every pass at every level it claims);
# none of them knows scf/memref loops (dce and canonicalize erase loop
# terminators there).
_TENSOR = PassLevels((GRAPH, KERNEL))
BUILTIN_LEVELS: dict[str, PassLevels] = {
    "dce": _TENSOR,
    "cse": _TENSOR,
    "canonicalize": _TENSOR,
    "constant-fold": _TENSOR,
    "fold-batch-norm": _TENSOR,
    "channels-last": _TENSOR,
    "swap-skinny-matmul": _TENSOR,
    # a matmul instead of a convolution: the same terms, summed in another order
    "patch-matmul": PassLevels((GRAPH, KERNEL), approximates=True),
    "conv-epilogue": _TENSOR,
    "quantize-weights": PassLevels((GRAPH,), approximates=True),
    "merge-quantized-matmuls": PassLevels((GRAPH,), approximates=True),
    "fuse": PassLevels((GRAPH, KERNEL), KERNEL),
    "memory-plan": PassLevels((KERNEL, LOOPS)),
    "matmul-epilogues": PassLevels((GRAPH, KERNEL)),
    "split-full-reductions": PassLevels((KERNEL,)),
    "lower-to-loops": PassLevels((KERNEL,), LOOPS),
}


# Every pass takes modules with symbolic sizes (``?`` dims): the graph passes
# transform them, the kernel and loops stages handle the ops they can and raise
# irc.ir.symbols.SymbolicShapeError naming what needs a static size
# (irc.compile then compiles per binding of the sizes: irc/symbolic_executable.py).


def levels_of(p: ModulePass | type[ModulePass]) -> PassLevels | None:
    """What a pass declares (class attributes first, then the built-in table);
    None for a pass that declares nothing (it is then not checked)."""
    cls = p if isinstance(p, type) else type(p)
    declared = getattr(cls, "levels", None)
    if isinstance(declared, tuple):
        return PassLevels(declared, getattr(cls, "produces", None))
    return BUILTIN_LEVELS.get(getattr(cls, "name", ""))


def ir_levels(module: ModuleOp) -> set[str]:
    """The levels ``module``'s IR is at (see the module docstring)."""
    from irc.passes.fusion_groups import is_fusible
    from irc.ir.kernel import kernel_functions
    kernels = kernel_functions(module)
    lowered = any(isinstance(t, MemRefType) for fn in kernels for t in fn.function_type.inputs) or \
        any(op.name == "host.launch" for fn in module.ops if isinstance(fn, func.FuncOp)
            for op in fn.body.walk())
    if lowered:
        return {LOOPS}
    if kernels:
        return {KERNEL}
    host = [fn for fn in module.ops if isinstance(fn, func.FuncOp)]
    if any(is_fusible(op) for fn in host for op in fn.body.walk()):
        return {GRAPH}
    return {GRAPH, KERNEL, LOOPS}  # nothing to fuse, no kernel to lower: every level


def _producer_of(level: str) -> str | None:
    for name, spec in BUILTIN_LEVELS.items():
        if spec.produces == level:
            return name
    return None


def check_levels(passes: list[ModulePass], module: ModuleOp) -> None:
    """Each pass in order gets IR of a level it accepts, or a PassError saying
    which pass has to run before it."""
    current = ir_levels(module)
    previous = "the input"
    for p in passes:
        spec = levels_of(p)
        if spec is None:
            continue
        if not current & set(spec.levels):
            wanted = min(spec.levels, key=ORDER.index)
            have = "/".join(sorted(current, key=ORDER.index))
            producer = _producer_of(wanted)
            if producer is not None and ORDER.index(wanted) > ORDER.index(min(current, key=ORDER.index)):
                hint = f": run '{producer}' before '{p.name}'"
            else:
                hint = f": '{p.name}' runs before '{_producer_of(have) or 'the lowering'}', not after it"
            raise PassError(f"pass '{p.name}' needs {' or '.join(spec.levels)}-level IR, but "
                            f"{previous} is {have}-level{hint}")
        if spec.produces is not None:
            current = {spec.produces}
        previous = f"the output of '{p.name}'"
