"""Kernel-level module -> one Python/Triton source module.

:func:`plan_module` *decides* (which Triton kernels each ``irc.kernel`` becomes,
their tilings, which scalars are inlined, which kernels stay eager);
:func:`emit_module` *emits* the text: helper jit functions, one
``@triton.jit`` kernel per ``irc.kernel`` (more only when outputs of unrelated
sizes must be split), and ``def main(...)``, the host schedule as a readable
Python wrapper (allocate outputs, launch kernels, call torch for extern ops).
:func:`generate_source` is what ``irc translate --to triton`` prints.

Matmul sites of the Triton template (and the consumer kernels fused into
them) are decided by the ``matmul-epilogues`` pass (attributes on each
``graph.matmul``, :mod:`matmul_epilogues`) and emitted by
:mod:`codegen_matmul` (the ``matmul`` argument chooses the schedule).

Graph ops left directly in ``@main`` (an unfused, graph-level module) are
compiled as one-op kernels, so the backend accepts both levels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue

from irc.backends.triton.autotune import Tiling, choose_pointwise, choose_reduction
from irc.backends.triton.codegen_host import aten_call_text, extern_call
from irc.backends.triton.codegen_matmul import (
    LAUNCH_MATMUL,
    MATMUL_MODES,
    MatmulSite,
    launch_lines,
    plan_matmul_sites,
    tilings_text,
)
from irc.backends.triton.codegen_kernel import (
    KernelSpec,
    KernelWriter,
    ReductionLayout,
    is_trivial,
    live_ops,
    reduction_layout,
    splat_value,
)
from irc.backends.triton.codegen_ops import HELPERS, KernelUnsupported
from irc.errors import BackendError, UnsupportedOpError
from irc.ir import graph as g
from irc.ir.kernel import find_main, is_extern, is_kernel
from irc.ir.types import dtype_of, numel, shape_of


COMBINE_HELPERS = {
    "_prod_combine": "\n@triton.jit\ndef _prod_combine(a, b):\n    return a * b\n",
    "_max_nan": "\n@triton.jit\ndef _max_nan(a, b):\n"
                "    return tl.maximum(a, b, propagate_nan=tl.PropagateNan.ALL)\n",
    "_min_nan": "\n@triton.jit\ndef _min_nan(a, b):\n"
                "    return tl.minimum(a, b, propagate_nan=tl.PropagateNan.ALL)\n",
}


@dataclass
class TritonKernel:
    """One emitted ``@triton.jit`` function and how to launch it."""

    name: str
    source: str
    tiling: Tiling
    outputs: list[int]  # positions in the irc kernel's outputs
    hidden: list[torch.Tensor]


@dataclass
class KernelPlan:
    """An ``irc.kernel`` call site: its Triton kernels, or the eager fallback."""

    spec: KernelSpec
    kernels: list[TritonKernel] = field(default_factory=list)
    eager_reason: str | None = None
    view: str | None = None  # a movement-only kernel feeding library calls: a torch view
    function: func.FuncOp | None = None  # for the eager fallback


@dataclass
class ModulePlan:
    """Everything :func:`emit_module` needs."""

    main: func.FuncOp
    kernels: dict[str, KernelPlan]
    call_names: dict[int, str]  # id(call op or inline op) -> kernel plan name
    helpers: set[str]
    constants: list[torch.Tensor]
    constant_index: dict[int, int]  # id(constant op) -> index in constants
    matmuls: list[MatmulSite] = field(default_factory=list)  # template sites (codegen_matmul)
    matmul_of: dict[int, MatmulSite] = field(default_factory=dict)  # id(matmul or fused call)


def _functions(module: ModuleOp) -> dict[str, func.FuncOp]:
    return {op.sym_name.data: op for op in module.ops if isinstance(op, func.FuncOp)}


def plan_kernel(spec: KernelSpec, interpret: bool, helpers: set[str]) -> KernelPlan:
    """Decide the Triton kernels (and tilings) for one kernel call."""
    plan = KernelPlan(spec)
    try:
        layout = reduction_layout(live_ops(spec.ops, spec.outputs))
        groups = _output_groups(spec, layout)
        for k, (outs, group_layout, gathered) in enumerate(groups):
            name = spec.name if k == 0 else f"{spec.name}_{k}"
            sub = KernelSpec(name, spec.inputs, spec.ops, [spec.outputs[j] for j in outs],
                             spec.known)
            tiling = _tiling(sub, group_layout, interpret, gathered)
            local: set[str] = set()
            writer = KernelWriter(sub, tiling, group_layout, local, gathered)
            source = writer.write()
            plan.kernels.append(TritonKernel(name, source, tiling, outs, writer.hidden))
            helpers |= local
    except KernelUnsupported as err:
        plan.kernels = []
        plan.eager_reason = str(err)
    return plan


def _output_groups(spec: KernelSpec, layout: ReductionLayout | None
                   ) -> list[tuple[list[int], ReductionLayout | None, bool]]:
    """Outputs that share one Triton kernel: those in the reduction space (if
    any) together, the rest grouped by element count (pointwise kernels, or
    per-element reductions when they depend on a reduction)."""
    groups: list[tuple[list[int], ReductionLayout | None, bool]] = []
    rest: dict[int, list[int]] = {}
    reduced: list[int] = []
    for j, out in enumerate(spec.outputs):
        shape = shape_of(out.type)
        if layout is not None and layout.place(shape) is not None:
            reduced.append(j)
        else:
            rest.setdefault(numel(shape), []).append(j)
    if reduced:
        groups.append((reduced, layout, False))
    for _, outs in sorted(rest.items(), reverse=True):
        cone = live_ops(spec.ops, [spec.outputs[j] for j in outs])
        if layout is not None and any(isinstance(op, g.ReduceOp) and not is_trivial(op)
                                      for op in cone):
            groups.append((outs, layout, True))
        else:
            groups.append((outs, None, False))
    return groups


def _tiling(spec: KernelSpec, layout: ReductionLayout | None, interpret: bool,
            gathered: bool = False) -> Tiling:
    if layout is None:
        return choose_pointwise(numel(shape_of(spec.outputs[0].type)), interpret)
    rows = numel(shape_of(spec.outputs[0].type)) if gathered else layout.rows
    return choose_reduction(rows, layout.reduced, interpret)


def plan_module(module: ModuleOp, interpret: bool = False, matmul: str = "cublas") -> ModulePlan:
    """Decide everything about ``module`` (kernel or graph level).

    ``matmul`` ("cublas", "triton", "auto"; see :mod:`codegen_matmul`) says
    which ``graph.matmul`` ops get the Triton template; under the interpreter
    "auto" means "cublas" (nothing is timed there)."""
    if matmul not in MATMUL_MODES:
        raise BackendError(f"matmul must be one of {', '.join(MATMUL_MODES)}, got {matmul!r}")
    main = find_main(module, error=BackendError)
    functions = _functions(module)
    plan = ModulePlan(main, {}, {}, set(), [], {})
    for op in main.body.block.ops:
        if isinstance(op, g.ConstantOp):
            plan.constant_index[id(op)] = len(plan.constants)
            from irc.ir.interpreter import dense_to_tensor
            plan.constants.append(dense_to_tensor(op.value))
        elif isinstance(op, func.CallOp):
            callee = functions.get(op.callee.string_value())
            if callee is None or not is_kernel(callee):
                raise BackendError(f"@main calls @{op.callee.string_value()}, which is not an "
                                   f"irc.kernel function of the module")
            name = _unique(callee.sym_name.data, plan.kernels)
            spec = call_spec(name, op, callee)
            kplan = _view_plan(spec, op, callee) or plan_kernel(spec, interpret, plan.helpers)
            kplan.function = callee
            plan.kernels[name] = kplan
            plan.call_names[id(op)] = name
        elif _is_inline_kernel(op):
            known = {i: v for i, arg in enumerate(op.operands)
                     if (v := _known_scalar(arg)) is not None}
            name = _unique(f"op{len(plan.call_names)}_{op.name.removeprefix('graph.')}",
                           plan.kernels)
            spec = KernelSpec(name, list(op.operands), [op], list(op.results), known)
            plan.kernels[name] = _view_plan(spec, op) or plan_kernel(spec, interpret, plan.helpers)
            plan.call_names[id(op)] = name
    _plan_matmuls(plan, "cublas" if interpret and matmul == "auto" else matmul, interpret)
    return plan


def call_spec(name: str, call: func.CallOp, callee: func.FuncOp) -> KernelSpec:
    """What the call of ``callee`` computes (splat constant operands known)."""
    body = list(callee.body.block.ops)
    ret = body[-1]
    assert isinstance(ret, func.ReturnOp)
    known = {i: v for i, arg in enumerate(call.operands)
             if (v := _known_scalar(arg)) is not None}
    return KernelSpec(name, list(callee.body.block.args), body[:-1], list(ret.operands), known)


def epilogue_candidate(call: func.CallOp, callee: func.FuncOp) -> KernelSpec | None:
    """The spec of a kernel call that may become a matmul template's epilogue:
    Triton kernels of its own, all pointwise (not a view, not eager); else None.
    Used by the ``matmul-epilogues`` pass."""
    spec = call_spec(callee.sym_name.data, call, callee)
    kplan = _view_plan(spec, call, callee) or plan_kernel(spec, False, set())
    if kplan.view is not None or kplan.eager_reason is not None \
            or not all(k.tiling.kind == "pointwise" for k in kplan.kernels):
        return None
    return spec


def _plan_matmuls(plan: ModulePlan, mode: str, interpret: bool) -> None:
    """Template sites for the matmuls the ``matmul-epilogues`` pass marked; a
    consumer fused into the template in "triton" mode is no longer a kernel of
    its own ("auto" keeps it for the library schedule)."""
    def consumer(call: func.CallOp) -> tuple[str, KernelSpec]:
        name = plan.call_names[id(call)]
        return name, plan.kernels[name].spec

    plan.matmuls = plan_matmul_sites(plan.main, consumer, mode, interpret, plan.helpers)
    for site in plan.matmuls:
        plan.matmul_of[id(site.op)] = site
        if site.call is not None:
            plan.matmul_of[id(site.call)] = site
            if mode == "triton" and site.consumer is not None:
                del plan.kernels[site.consumer]
                del plan.call_names[id(site.call)]


MOVEMENT_OPS = (g.PermuteOp, g.ReshapeOp, g.ExpandOp, g.SqueezeOp, g.UnsqueezeOp, g.SliceOp)


def _view_plan(spec: KernelSpec, call: Operation,
               callee: func.FuncOp | None = None) -> KernelPlan | None:
    """A kernel that only moves one input (e.g. a weight transpose) and feeds
    only library calls needs no copy: torch views are enough (cuBLAS takes
    transposed operands). Triton kernels index with static contiguous strides,
    so a view is used only when no kernel reads it. The decision is the one
    shared with the CPU runtime and the memory plan
    (:func:`irc.passes.memory_plan.view_only_kernel`)."""
    from irc.passes.memory_plan import view_only_kernel
    if len(spec.outputs) != 1 or len(spec.inputs) != 1 or not spec.ops:
        return None
    if not view_only_kernel(call, callee):
        return None
    current: SSAValue = spec.inputs[0]
    suffix = ""
    for op in spec.ops:
        if not isinstance(op, MOVEMENT_OPS) or op.operands[0] is not current:
            return None
        suffix += _view_text(op)
        current = op.results[0]
    if current is not spec.outputs[0]:
        return None
    return KernelPlan(spec, view=suffix)


def _view_text(op: Operation) -> str:
    out_shape = tuple(shape_of(op.results[0].type))
    if isinstance(op, g.PermuteOp):
        return f".permute{tuple(g.ints(op.dims))!r}"
    if isinstance(op, g.ExpandOp):
        return f".expand({out_shape!r})"
    if isinstance(op, g.SliceOp):
        dim, start, end, step = op.params()
        index = [":"] * dim + [f"{start}:{end}:{step}"]
        return f"[{', '.join(index)}]"
    return f".reshape({out_shape!r})"  # reshape, squeeze, unsqueeze


def _unique(name: str, taken: dict[str, KernelPlan]) -> str:
    if name not in taken:
        return name
    k = 1
    while f"{name}_c{k}" in taken:
        k += 1
    return f"{name}_c{k}"


def _is_inline_kernel(op: Operation) -> bool:
    return (op.name.startswith("graph.") and not is_extern(op)
            and not isinstance(op, (g.WeightOp, g.ConstantOp)))


def _known_scalar(value: SSAValue) -> float | int | bool | None:
    owner = value.owner
    return splat_value(owner) if isinstance(owner, Operation) else None


# ----------------------------------------------------------------------------
# emission


def emit_module(plan: ModulePlan, title: str = "") -> str:
    """The whole generated module as text."""
    parts = ['"""Generated by irc (Triton backend)' + (f": {title}" if title else "") + '."""',
             "import torch",
             "import torch.nn.functional as F",
             "import triton",
             "import triton.language as tl",
             ""]
    if any(isinstance(op, g.AtenCallOp) for op in plan.main.body.block.ops):
        parts.insert(-1, "from irc.ir.interpreter import run_aten_call")
    for name in sorted(plan.helpers):  # jit helpers resolve each other at call time
        parts.append(COMBINE_HELPERS.get(name) or HELPERS[name])
    for kplan in plan.kernels.values():
        for k in kplan.kernels:
            parts.append("")
            parts.append(k.source)
    for site in plan.matmuls:
        parts.append("")
        parts.append(site.source)
    if any(isinstance(op, g.QuantizedMatmulOp) for op in plan.main.body.block.ops):
        from irc.backends.triton.quantized_matmul import SOURCE as QUANTIZED_MATMUL
        parts.append(QUANTIZED_MATMUL)
    parts.append(_tilings_text(plan))
    parts.append(LAUNCH_DEFAULT)
    if plan.matmuls:
        parts.append(tilings_text(plan.matmuls))
        parts.append(LAUNCH_MATMUL)
    parts.append(_host_text(plan))
    return "\n".join(parts) + "\n"


def _tilings_text(plan: ModulePlan) -> str:
    lines = ["# Launch configuration per Triton kernel (the runtime may autotune these).",
             "TILINGS = {"]
    for kplan in plan.kernels.values():
        for k in kplan.kernels:
            t = k.tiling
            lines.append(f"    {k.name!r}: {{'extent': {t.extent}, **{t.meta()!r}}},")
    lines.append("}")
    return "\n".join(lines)


LAUNCH_DEFAULT = '''
EAGER = {}  # irc.kernel name -> eager torch callable (filled by the runtime)
_device = torch.device("cuda")


def _launch(kernel, name, *args):
    """Launch ``kernel`` over its grid with its tiling from TILINGS."""
    meta = dict(TILINGS[name])
    extent = meta.pop("extent")
    kernel[(triton.cdiv(extent, meta["XBLOCK"]),)](*args, **meta)
'''


def _host_text(plan: ModulePlan) -> str:
    main = plan.main
    block = main.body.block
    names: dict[SSAValue, str] = {}
    params = []
    for i, arg in enumerate(block.args):
        names[arg] = f"arg{i}"
        params.append(f"arg{i}")
    lines = [f"def main({', '.join(params)}):",
             '    """The host schedule of @main: kernels, library calls, outputs."""']
    counter = [0]

    def fresh() -> str:
        counter[0] += 1
        return f"t{counter[0]}"

    for op in block.ops:
        if isinstance(op, func.ReturnOp):
            outs = ", ".join(names[v] for v in op.operands)
            lines.append(f"    return [{outs}]")
            break
        if isinstance(op, g.WeightOp):
            names[op.result] = fresh()
            lines.append(f"    {names[op.result]} = WEIGHTS[{op.sym_name.data!r}]")
        elif isinstance(op, g.ConstantOp):
            names[op.result] = fresh()
            lines.append(f"    {names[op.result]} = CONSTANTS[{plan.constant_index[id(op)]}]")
        elif id(op) in plan.matmul_of:
            lines.extend(_matmul_text(plan, plan.matmul_of[id(op)], op, names, fresh))
        elif id(op) in plan.call_names:
            kplan = plan.kernels[plan.call_names[id(op)]]
            lines.extend(_kernel_call_text(kplan, op, names, fresh))
        elif isinstance(op, g.AtenCallOp):
            outs = [fresh() for _ in op.results]
            names.update(zip(op.results, outs))
            assign = f"{', '.join(outs)}, = " if outs else ""
            lines.append(f"    {assign}{aten_call_text(op, [names[v] for v in op.operands])}")
        elif is_extern(op):
            names[op.results[0]] = fresh()
            args = [names[v] for v in op.operands]
            lines.append(f"    {names[op.results[0]]} = {extern_call(op, args)}")
        else:
            raise UnsupportedOpError(op.name, reason="the Triton backend cannot run it in @main")
    return "\n".join(lines) + "\n"


def _matmul_text(plan: ModulePlan, site: MatmulSite, op: Operation, names: dict[SSAValue, str],
                 fresh) -> list[str]:  # type: ignore[no-untyped-def]
    """A template site: at the matmul when it has no epilogue, else at the
    consumer's call. "auto" emits both schedules as closures and lets
    ``_matmul`` (the runtime) pick one per shape."""
    if op is site.op and site.call is not None:
        return [f"    # graph.matmul: fused into {site.name} at the call of {site.consumer} below"]
    mm = site.op
    # the consumer's operands (the product's own positions are not passed on)
    args = [names[mm.lhs], names[mm.rhs]] + [names.get(v, "None") for v in
                                             (site.call.operands if site.call else [])]
    results = list(site.call.results) if site.call is not None else [mm.result]
    outs = [fresh() for _ in results]
    for r, n in zip(results, outs):
        names[r] = n
    if site.mode == "triton":
        return launch_lines(site, args, outs, "    ")
    inner = dict(names)
    library = [f"    def _{site.name}_cublas():"]
    inner[mm.result] = fresh()
    library.append(f"        {inner[mm.result]} = {extern_call(mm, args[:2])}")
    if site.call is not None:
        assert site.consumer is not None
        for r in results:
            del inner[r]
        kernel = _kernel_call_text(plan.kernels[site.consumer], site.call, inner, fresh)
        library.extend("    " + line for line in kernel)
    library.append(f"        return [{', '.join(inner[r] for r in results)}]")
    template = [f"    def _{site.name}_triton():", *launch_lines(site, args, outs, "        "),
                f"        return [{', '.join(outs)}]"]
    return [*library, *template,
            f"    {', '.join(outs)}, = _matmul({site.name!r}, _{site.name}_cublas, "
            f"_{site.name}_triton)  # {site.describe()}"]


def _kernel_call_text(kplan: KernelPlan, op: Operation, names: dict[SSAValue, str],
                      fresh) -> list[str]:  # type: ignore[no-untyped-def]
    spec = kplan.spec
    args = [names[v] for v in op.operands]
    outs = [fresh() for _ in op.results]
    for r, n in zip(op.results, outs):
        names[r] = n
    if kplan.view is not None:
        return [f"    {outs[0]} = {args[0]}{kplan.view}  # {spec.name}: a view, read by "
                f"library calls only"]
    if kplan.eager_reason is not None:
        return [f"    # {spec.name}: runs in eager torch ({kplan.eager_reason})",
                f"    {', '.join(outs)}, = EAGER[{spec.name!r}]({', '.join(args)})"]
    lines = []
    for r, n in zip(op.results, outs):
        shape, dtype = shape_of(r.type), dtype_of(r.type)
        lines.append(f"    {n} = torch.empty({tuple(shape)!r}, dtype={dtype}, device=_device)")
    for k in kplan.kernels:
        if k.tiling.extent == 0 or any(numel(shape_of(op.results[j].type)) == 0
                                       for j in k.outputs):
            continue
        hidden = [f"HIDDEN[{k.name!r}][{i}]" for i in range(len(k.hidden))]
        kouts = [outs[j] for j in k.outputs]
        call_args = ", ".join([*args, *hidden, *kouts])
        lines.append(f"    _launch({k.name}, {k.name!r}, {call_args})  # {k.tiling.kind}, "
                     f"grid {k.tiling.grid}")
    return lines


def generate_source(module: ModuleOp, interpret: bool = False, matmul: str = "cublas") -> str:
    """The whole module's Triton source: all kernels plus the host wrapper."""
    return emit_module(plan_module(module, interpret, matmul))
