"""The ``lower-to-loops`` pass: kernel level -> bufferised loops.

Guarantees: every ``func.func`` carrying ``irc.kernel`` (graph ops over
tensors) is replaced by a func of the same name over flat, contiguous
``memref<N x T>`` buffers (inputs, then one trailing buffer per output; no
results) whose body is ``scf.for``/arith/math/``memref.load``/``store``.
In ``@main`` (and any other host func) each ``func.call`` of a kernel becomes
``host.launch`` (see :mod:`irc.ir.host`); extern ops stay. Kernel attributes
(``irc.kernel``, ``irc.iteration``) are kept; a kernel that only moves its one
input (permute/reshape/expand/slice chain) also gets ``irc.view``, its steps
as torch views (see :func:`movement_chain`).

How (inductor-style loop bodies): every graph value is an index function
(:mod:`loops_values`); each group of same-shaped outputs gets one loop nest
over its non-unit dims with the last dim innermost; values are placed in the
innermost loop they depend on (:mod:`loops_emit`), so row reductions
(softmax, layer-norm, RMSNorm over the last dim) become inner ``scf.for``
loops with ``iter_args`` inside the shared row loop: no full-size temporaries.
A reduction that would be recomputed by a loop it does not depend on (e.g. a
column sum used by every row) is materialised first into a kernel-local buffer
(``memref.alloca``, or ``alloc``/``dealloc`` above 64 KiB) in its own nest.
f16/bf16 are loaded, extended to f32, computed in f32 and truncated on store.

Row reductions may *stash* the values they reduce in the output buffer, so
that softmax's prologue and ``exp`` (or layer norm's input sum) are computed
once per element, also when the output is a reshape of the result
(:mod:`loops_stash`). A constant whose elements are all equal (a splat of any
shape, e.g. a zero attention-mask bias) is a scalar in the loop body; other
constants (at most :data:`CONSTANT_MAX_ELEMENTS`) are filled into a small
kernel-local buffer. A nest that only maps or moves data and reads an input
with a large stride along the output's last dim but contiguously along another
dim (a transpose, e.g. K^T for ``q @ k^T``) walks ``TILE`` x ``TILE`` blocks.

A large full reduction (e.g. ``sum(x * x)`` over millions of elements) is
split into a parallel partial kernel and a small final one beforehand, by its
own pass ``split-full-reductions`` (:mod:`loops_split`), which the CPU
pipeline runs just before this one.

When a kernel's body is a single loop nest with at least
:data:`PARALLEL_MIN_ELEMENTS` elements, its outermost loop gets the unit
attribute ``irc.parallel`` (the CPU runtime splits it over threads).
An op that cannot be lowered raises :class:`irc.errors.BackendError` naming it
and its location.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func, memref, scf
from xdsl.dialects.builtin import (DYNAMIC_INDEX, ArrayAttr, IndexType, MemRefType, ModuleOp,
                                   StringAttr, TensorType, UnitAttr)
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass

from irc.ir import graph as g
from irc.ir.host import LaunchOp
from irc.ir.symbols import (format_dim, is_symbolic_type, maybe_more_than_one,
                            symbols_of)
from irc.ir.types import dims_of, dtype_of, element_type, numel
from irc.errors import BackendError
from irc.ir.kernel import KERNEL_ATTR, is_kernel
from irc.ir import index as ix
from irc.backends.llvm.lowering.loops_emit import Emitter, Node, NodeTable, combine_ops
from irc.backends.llvm.lowering.loops_stash import find_stash
from irc.backends.llvm.lowering.loops_scalar import HALF_TYPES, compute_type
from irc.backends.llvm.lowering.loops_values import KernelValues

VIEW_ATTR = "irc.view"
PARALLEL_ATTR = "irc.parallel"
SIZES_ATTR = "irc.sizes"
"""On a kernel compiled for every binding of the sizes: the size symbols its
trailing ``index`` arguments carry, in order."""
TRIP_ATTR = "irc.trip"
"""On a parallel loop whose trip count is symbolic: that count as a size expression."""
PARALLEL_MIN_ELEMENTS = 4096
ALLOCA_MAX_BYTES = 64 * 1024
CONSTANT_MAX_ELEMENTS = 4096
TILE = 16  # a transpose walks the input and the output in blocks of TILE x TILE
TILE_MIN_ELEMENTS = 16384


def buffer_type(t: Attribute) -> MemRefType:
    """The flat memref holding a tensor of type ``t`` (a 0-d tensor holds 1 element;
    a symbolic size is ``memref<?xT>``)."""
    n = numel(dims_of(t))
    return MemRefType(t.get_element_type(), [n if isinstance(n, int) else DYNAMIC_INDEX])  # type: ignore[attr-defined]


def _bytes(t: MemRefType) -> int:
    width = getattr(t.element_type, "bitwidth", None) or 8
    return numel(t.get_shape()) * max(width // 8, 1)


def kernel_size_symbols(fn: func.FuncOp) -> list[str]:
    """The size symbols any value of kernel ``fn`` mentions, sorted."""
    names: set[str] = set()
    values = [*fn.body.block.args, *(r for op in fn.body.walk() for r in op.results)]
    for v in values:
        if is_symbolic_type(v.type):
            names |= symbols_of(dims_of(v.type))
    for op in fn.body.walk():
        if isinstance(op, g.SliceOp):
            names |= symbols_of(op.symbolic_params()[1:3])
        elif op.name == "graph.size":
            from irc.ir.symbols import parse_dim
            names |= symbols_of([parse_dim(op.expr.data)])  # type: ignore[attr-defined]
    return sorted(names)


class KernelLowering:
    """Lowers one kernel func (graph ops over tensors) to a loops func."""

    def __init__(self, fn: func.FuncOp) -> None:
        self.fn = fn
        self.table = NodeTable()
        self.values = KernelValues(self.table, self.constant_buffer)
        self.scratch: dict[SSAValue, SSAValue] = {}
        self.constants: dict[Operation, SSAValue] = {}
        self.materialising: set[SSAValue] = set()
        self.deallocs: list[SSAValue] = []

    def run(self) -> func.FuncOp:
        old = self.fn.body.block
        ret = old.last_op
        if not isinstance(ret, func.ReturnOp):
            raise BackendError(f"lower-to-loops: kernel @{self.fn.sym_name.data} does not end in "
                               "func.return")
        outputs = list(ret.operands)
        in_types = [buffer_type(a.type) for a in old.args]
        out_types = [buffer_type(v.type) for v in outputs]
        symbols = kernel_size_symbols(self.fn)
        size_types = [IndexType()] * len(symbols)
        block = Block(arg_types=[*in_types, *out_types, *size_types])
        self.block = block
        new_ret = func.ReturnOp()
        block.add_op(new_ret)
        for arg, buf in zip(old.args, block.args):
            self.values.buffers[arg] = (buf, False)
        n_bufs = len(in_types) + len(out_types)
        sizes = dict(zip(symbols, block.args[n_bufs:]))
        self.emitter = Emitter(self.table, block, new_ret, self.materialise, sizes)
        out_bufs = block.args[len(in_types):n_bufs]
        position = {op: i for i, op in enumerate(old.ops)}
        groups: dict[tuple, list[tuple[SSAValue, SSAValue]]] = {}
        for value, buf in zip(outputs, out_bufs):
            groups.setdefault(dims_of(value.type), []).append((value, buf))
        order = sorted(groups.items(), key=lambda kv: min(
            position.get(v.owner, -1) for v, _ in kv[1]))  # type: ignore[arg-type]
        stash = find_stash(self.fn)
        if stash is not None:
            self.values.stash = {value: (reduction, out_bufs[0]) for value, reduction in stash}
        for shape, members in order:
            stores = [(buf, self._output_fn(v)) for v, buf in members]
            self.emit_nest(shape, stores)
            for v, buf in members:
                self.values.buffers.setdefault(v, (buf, False))
        for buf in self.deallocs:
            block.insert_op_before(memref.DeallocOp.get(buf), new_ret)
        self._mark_parallel(block, [numel(dims_of(v.type)) for v in outputs])
        new = func.FuncOp(self.fn.sym_name.data, ([*in_types, *out_types, *size_types], []),
                          Region(block))
        for name, attr in self.fn.attributes.items():
            if name not in ("sym_name", "function_type", "sym_visibility"):
                new.attributes[name] = attr
        if symbols:
            new.attributes[SIZES_ATTR] = ArrayAttr([StringAttr(n) for n in symbols])
        view = movement_chain(self.fn)
        if view is not None:
            new.attributes[VIEW_ATTR] = StringAttr(json.dumps(view))
        return new

    def _output_fn(self, value: SSAValue) -> Callable[[tuple[ix.Lin, ...]], Node]:
        dtype = dtype_of(value.type)

        def compute(index: tuple[ix.Lin, ...]) -> Node:
            node = self.values.at(value, index)
            if dtype in HALF_TYPES:
                node = self.values.s.op("truncf", node, type_=element_type(dtype))
            return node
        return compute

    # -- nests --------------------------------------------------------------------
    def emit_nest(self, shape: tuple,
                  stores: list[tuple[SSAValue, Callable[[tuple[ix.Lin, ...]], Node]]]) -> None:
        """One loop nest over ``shape`` storing ``fn(index)`` into each buffer."""
        if numel(shape) == 0:
            return
        e = self.emitter
        base = len(e.scopes) - 1
        restore = e.scopes[base].child
        variables = [self.table.fresh_var(d) if maybe_more_than_one(d) else None for d in shape]
        index = tuple(ix.var(v) if v is not None else ix.Lin(0) for v in variables)
        order = [v for v in variables if v is not None]
        partner = self._transpose_partner(shape, variables, index, stores) if base == 0 else None
        if partner is not None:
            # a transpose: loop (..., last // B, partner, last % B) so that a block of
            # B rows of the input and B columns of the output stay in L1
            last, d = variables[-1], variables[partner]
            assert last is not None and d is not None
            block, inner = self.table.fresh_var(last.size // TILE), self.table.fresh_var(TILE)
            index = (*index[:-1], ix.add(ix.scale(ix.var(block), TILE), ix.var(inner)))
            order = [v for v in order if v is not last and v is not d] + [block, d, inner]
        loops: list[scf.ForOp] = []
        for v in order:
            loops.append(e.open_loop(v, len(e.scopes) - 1, []))
            if not isinstance(v.size, int):
                loops[-1].attributes[TRIP_ATTR] = StringAttr(format_dim(v.size))
        inner = len(e.scopes) - 1
        offset = ix.linearise(index, shape)
        for buf, fn in stores:
            value = e.emit(fn(index))
            e.put(memref.StoreOp.get(value, buf, [e.emit_lin(offset)]), inner)
        for i, loop in enumerate(reversed(loops)):
            e.close_loop(loop, [], restore if i == len(loops) - 1 else None)

    def _transpose_partner(self, shape: tuple[int, ...], variables: list[ix.Var | None],
                           index: tuple[ix.Lin, ...],
                           stores: list[tuple[SSAValue, Callable[[tuple[ix.Lin, ...]], Node]]]
                           ) -> int | None:
        """The dim to interchange with the tiled last dim, when the nest only moves or
        maps data and reads some input with a large stride along the last dim but
        contiguously along another dim (a transpose); None otherwise."""
        last = variables[-1] if variables else None
        if last is None or not all(isinstance(d, int) for d in shape):
            return None  # (symbolic sizes: never tiled)
        assert isinstance(last.size, int)
        if last.size % TILE or last.size < 2 * TILE or numel(shape) < TILE_MIN_ELEMENTS:
            return None
        loads: list[ix.Lin] = []
        seen: set[int] = set()
        work = [fn(index) for _, fn in stores]
        while work:
            node = work.pop()
            if node.serial in seen:
                continue
            seen.add(node.serial)
            if node.kind == "reduce":
                return None
            if node.kind == "load":
                loads.append(node.args[1])
            work.extend(_child_nodes(node.args))
        for offset in loads:
            coeff = {a.id: k for a, k in offset.terms if isinstance(a, ix.Var)}
            if abs(coeff.get(last.id, 0)) < TILE:
                continue
            for dim, v in enumerate(variables[:-1]):
                if v is not None and isinstance(v.size, int) and v.size >= TILE \
                        and coeff.get(v.id) == 1:
                    return dim
        return None

    def materialise(self, node: Node, redundant: bool) -> Node | None:
        """A load from a buffer holding the reduction behind ``node`` for all its
        indices, computed first in its own nest; None to compute it inline.

        Used when inline evaluation would be recomputed by a loop it does not
        depend on (``redundant``), or when the reduction runs over an outer dim
        of its input while a kept dim is inner (a column sum): inline, its inner
        loop would stride through memory; the accumulating nest walks the input
        in order instead.
        """
        value, index = node.args[4]
        op = value.owner
        assert isinstance(op, g.ReduceOp)
        outer = self._reduces_outer_dim(op)
        if value in self.materialising or not (redundant or outer):
            return None
        shape = dims_of(value.type)
        buf = self.scratch.get(value)
        if buf is None:
            self.materialising.add(value)
            e = self.emitter
            saved = e.scopes[1:]
            del e.scopes[1:]
            if outer:
                buf = self.accumulate(op, node)
            else:
                buf = self.scratch_buffer(node.type, numel(shape))
                self.emit_nest(shape, [(buf, lambda idx: self.values.raw_reduction(op, idx))])
            e.scopes.extend(saved)
            self.materialising.discard(value)
            self.scratch[value] = buf
        return self.table.load(buf, ix.linearise(index, shape))

    @staticmethod
    def _reduces_outer_dim(op: g.ReduceOp) -> bool:
        """Is a reduced dim (size > 1) before a kept dim (size > 1) of the input?"""
        shape, dims = dims_of(op.input.type), set(op.reduced_dims)
        big = [d for d in range(len(shape)) if maybe_more_than_one(shape[d])]
        kept = [d for d in big if d not in dims]
        return bool(kept) and any(d < kept[-1] for d in big if d in dims)

    def accumulate(self, op: g.ReduceOp, like: Node) -> SSAValue:
        """Reduce ``op`` by walking its input in row-major order, combining each
        element into an accumulator buffer over the kept dims."""
        e = self.emitter
        shape = dims_of(op.result.type)
        in_shape = dims_of(op.input.type)
        combine = like.args[0]
        kept_vars = [self.table.fresh_var(d) if maybe_more_than_one(d) else None for d in shape]
        kept_index = tuple(ix.var(v) if v is not None else ix.Lin(0) for v in kept_vars)
        raw = self.values.raw_reduction(op, kept_index)
        _combine, inits, body, rvars, _origin = raw.args
        types = [i.type for i in inits]
        bufs = [self.scratch_buffer(t, numel(shape)) for t in types]
        # accumulators start at the reduction's identity
        self.emit_nest(shape, [(b, (lambda i: (lambda idx: i))(init)) for b, init in zip(bufs, inits)])
        # walk the input in its own dim order: kept dims and reduced dims interleaved
        result_dims = [d for d in range(len(in_shape)) if d not in op.reduced_dims]
        by_dim: dict[int, ix.Var] = {}
        rvar_iter = iter(rvars)
        for d in op.reduced_dims:
            if in_shape[d] != 1:  # as in raw_reduction: size 0 loops 0 times
                by_dim[d] = next(rvar_iter)
        for pos, d in enumerate(result_dims):
            v = kept_vars[d if op.keeps_dims else pos]
            if v is not None:
                by_dim[d] = v
        restore = e.scopes[0].child
        loops = [e.open_loop(by_dim[d], len(e.scopes) - 1, [])
                 for d in range(len(in_shape)) if d in by_dim]
        inner = len(e.scopes) - 1
        offset = e.emit_lin(ix.linearise(kept_index, shape))
        accs = [e.put(memref.LoadOp.get(b, [offset]), inner) for b in bufs]
        iv = e.emit_atom(rvars[0]) if rvars and combine in ("argmax", "argmin") else None
        new = combine_ops(e, combine, accs, e.emit(body), iv, inner)
        for b, v in zip(bufs, new):
            e.put(memref.StoreOp.get(v, b, [offset]), inner)
        for i, loop in enumerate(reversed(loops)):
            e.close_loop(loop, [], restore if i == len(loops) - 1 else None)
        return bufs[-1] if combine in ("argmax", "argmin") else bufs[0]

    def scratch_buffer(self, element: Attribute, n: ix.Size) -> SSAValue:
        """A kernel-local buffer of ``n`` elements; of a symbolic ``n``, a heap
        ``memref<?xT>`` of the size computed from the size arguments (freed at
        the kernel's end)."""
        if isinstance(n, int):
            return self.allocate(MemRefType(element, [n]))
        size = self.emitter.index_value(n)
        buf = self.emitter.put(memref.AllocOp([size], [], MemRefType(element, [DYNAMIC_INDEX])), 0)
        self.deallocs.append(buf)
        return buf

    def allocate(self, mtype: MemRefType) -> SSAValue:
        if _bytes(mtype) <= ALLOCA_MAX_BYTES:
            return self.emitter.put(memref.AllocaOp.get(mtype.element_type,
                                                        shape=mtype.get_shape()), 0)
        buf = self.emitter.put(memref.AllocOp([], [], mtype), 0)
        self.deallocs.append(buf)
        return buf

    def constant_buffer(self, op: g.ConstantOp) -> SSAValue:
        buf = self.constants.get(op)
        if buf is not None:
            return buf
        from irc.ir.interpreter import dense_to_tensor
        dtype = dtype_of(op.result.type)
        values = dense_to_tensor(op.value).reshape(-1)
        if values.numel() > CONSTANT_MAX_ELEMENTS:
            raise BackendError(f"lower-to-loops: constant of {values.numel()} elements inside "
                               f"kernel @{self.fn.sym_name.data} (at most "
                               f"{CONSTANT_MAX_ELEMENTS}; keep large constants in @main)")
        ctype = compute_type(dtype)
        buf = self.allocate(MemRefType(ctype, [values.numel()]))
        as_python = values.float().tolist() if dtype.is_floating_point else values.long().tolist()
        for i, v in enumerate(as_python):
            c = self.emitter.const(v, ctype)
            self.emitter.put(memref.StoreOp.get(c, buf, [self.emitter.emit_lin(ix.const(i))]), 0)
        self.constants[op] = buf
        return buf

    @staticmethod
    def _mark_parallel(block: Block, sizes: list) -> None:
        loops = [op for op in block.ops if isinstance(op, scf.ForOp)]
        side_effects = [op for op in block.ops if isinstance(op, memref.StoreOp)]
        # (a symbolic size counts as large: the runtime splits by the actual trip count)
        static = [n for n in sizes if isinstance(n, int)]
        if len(loops) != 1 or side_effects or not sizes or \
                (static and min(static) < PARALLEL_MIN_ELEMENTS):
            return
        loops[0].attributes[PARALLEL_ATTR] = UnitAttr()


def _child_nodes(args: object) -> list[Node]:
    """The nodes among a node's arguments (nested in tuples; index atoms not entered)."""
    if isinstance(args, Node):
        return [args]
    if isinstance(args, tuple):
        return [n for a in args for n in _child_nodes(a)]
    return []


def _size_json(d: ix.Size) -> int | str:
    """A size in a view step: an int, or a symbolic size's printed expression
    (the runtime evaluates it under the call's binding)."""
    return d if isinstance(d, int) else format_dim(d)


def movement_chain(fn: func.FuncOp) -> list[list] | None:
    """The kernel as torch view steps, if it only moves data of its one input.

    ``[["permute", dims] | ["reshape", shape] | ["expand", shape] |
    ["slice", dim, start, end, step], ...]``, applied in order to the input;
    a symbolic size is its expression as a string.
    A runtime may run such a kernel as a torch view where its result only
    feeds library calls (e.g. a weight transpose before a matmul: no copy).
    """
    block = fn.body.block
    ops = list(block.ops)
    if len(block.args) != 1 or len(ops) < 2 or len(ops[-1].operands) != 1:
        return None
    current: SSAValue = block.args[0]
    steps: list[list] = []
    for op in ops[:-1]:
        if len(op.operands) != 1 or op.operands[0] is not current:
            return None
        out = [_size_json(d) for d in dims_of(op.results[0].type)]
        if isinstance(op, g.PermuteOp):
            steps.append(["permute", list(g.ints(op.dims))])
        elif isinstance(op, (g.ReshapeOp, g.SqueezeOp, g.UnsqueezeOp)):
            steps.append(["reshape", out])
        elif isinstance(op, g.ExpandOp):
            steps.append(["expand", out])
        elif isinstance(op, g.SliceOp):
            steps.append(["slice", *(_size_json(p) for p in op.symbolic_params())])
        else:
            return None
        current = op.results[0]
    return steps if ops[-1].operands[0] is current else None


def is_lowered(fn: func.FuncOp) -> bool:
    return all(isinstance(t, (MemRefType, IndexType)) for t in fn.function_type.inputs.data) and \
        not fn.function_type.outputs.data


@dataclass(frozen=True)
class LowerToLoops(ModulePass):
    """kernel level -> loops level (see the module docstring)."""

    name = "lower-to-loops"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        kernels = [f for f in op.ops if is_kernel(f) and f.body.blocks and not is_lowered(f)]
        lowered: set[str] = set()
        for fn in kernels:
            new = KernelLowering(fn).run()
            module_block = op.body.block
            module_block.insert_op_before(new, fn)
            fn.detach()
            fn.erase(safe_erase=False)
            lowered.add(new.sym_name.data)
        for host in [f for f in op.ops if isinstance(f, func.FuncOp) and not is_kernel(f)]:
            for call in [o for o in host.walk() if isinstance(o, func.CallOp)]:
                callee = call.callee.string_value()
                if callee not in lowered:
                    continue
                if not all(isinstance(v.type, TensorType) for v in (*call.operands, *call.results)):
                    raise BackendError(f"lower-to-loops: call of @{callee} must pass tensors")
                launch = LaunchOp(callee, list(call.operands), [r.type for r in call.results])
                launch.location = call.location  # the user's source line, for the profiler
                parent = call.parent_block()
                assert parent is not None
                parent.insert_op_before(launch, call)
                for old_res, new_res in zip(call.results, launch.results):
                    old_res.replace_all_uses_with(new_res)
                call.detach()
                call.erase()


__all__ = ["LowerToLoops", "KernelLowering", "PARALLEL_ATTR", "KERNEL_ATTR"]
