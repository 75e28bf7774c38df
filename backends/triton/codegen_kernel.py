"""One ``irc.kernel`` function -> ``@triton.jit`` kernel source.

The kernel is written *by pulling*: each output is evaluated at its store
coordinates, which evaluates the ops it depends on at derived coordinates
(:mod:`codegen_index`), memoised per (value, coordinates) so shared
subexpressions are computed once. Two iteration spaces exist:

* **pointwise** (no reduction): ``offs = pid * XBLOCK + tl.arange(0, XBLOCK)``
  over the flattened output, ``mask = offs < N``.
* **reduction** (the kernel's reductions all reduce the same dims of the same
  shape ``D``): ``o`` (rows of the kept dims, block axis 0, ``mask_o``) times
  ``r`` (the reduced dims, block axis 1, ``mask_r``). Outputs of shape ``D``
  are stored at ``(o, r)``, outputs of the kept shape at ``o``. A persistent
  kernel has one ``r`` block covering the whole row; otherwise every reduction
  and the store of full-shape outputs loop over ``r`` in ``RBLOCK`` chunks.

Anything else (two different reduction layouts in one kernel, integer pow
with a variable exponent...) raises :class:`KernelUnsupported`; the backend
then runs that one kernel in eager torch and says so in the generated source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr
from xdsl.ir import Operation, SSAValue

from irc.backends.triton.autotune import Tiling
from irc.backends.triton.codegen_index import (
    AXES_NONE,
    Coords,
    IndexPrinter,
    Ix,
    broadcast_coords,
    permute_coords,
    reshape_coords,
    slice_coords,
)
from irc.backends.triton.codegen_ops import (
    HALF_DTYPES,
    KernelUnsupported,
    OpEmitter,
    Val,
    convert,
    literal,
    round_half,
    tl_type,
)
from irc.backends.triton.codegen_reduce import ReductionAccumulator
from irc.ir import graph as g
from irc.ir import index as ix
from irc.ir.types import dtype_of, numel, shape_of


@dataclass
class KernelSpec:
    """What one Triton kernel computes: ``outputs`` from ``inputs`` through ``ops``.

    ``known`` maps an input position to a scalar value known at compile time
    (a splat constant at the call site), which is then inlined as a literal.
    """

    name: str
    inputs: list[SSAValue]
    ops: list[Operation]
    outputs: list[SSAValue]
    known: dict[int, float | int | bool] = field(default_factory=dict)


@dataclass(frozen=True)
class ReductionLayout:
    """The reduction space of a kernel: input shape ``D`` and reduced ``dims``."""

    shape: tuple[int, ...]
    dims: tuple[int, ...]

    @property
    def kept_shape(self) -> tuple[int, ...]:
        return tuple(s for i, s in enumerate(self.shape) if i not in self.dims)

    @property
    def reduced_shape(self) -> tuple[int, ...]:
        return tuple(self.shape[d] for d in self.dims)

    @property
    def rows(self) -> int:
        return numel(self.kept_shape)

    @property
    def reduced(self) -> int:
        return numel(self.reduced_shape)

    @property
    def suffix(self) -> bool:
        """The reduced dims are the trailing dims (rows are contiguous)."""
        n = len(self.shape)
        return self.dims == tuple(range(n - len(self.dims), n))

    def outer_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        keep = tuple(1 if i in self.dims else s for i, s in enumerate(self.shape))
        return self.kept_shape, keep

    def place(self, shape: tuple[int, ...]) -> str | None:
        """Where an output of ``shape`` is stored: ``"full"`` (one element per
        (row, reduced lane): the layout's shape, or any shape of that size when
        rows are contiguous), ``"outer"`` (one element per row), or None."""
        n = numel(shape)
        if shape == self.shape or (self.suffix and n == numel(self.shape)):
            if self.reduced > 1 or shape == self.shape:
                return "full"
        if n == self.rows:
            return "outer"
        return None


def layout_of(op: g.ReduceOp) -> ReductionLayout:
    """The op's reduction layout; reduced size-1 dims count as kept (same rows)."""
    shape = shape_of(op.input.type)
    return ReductionLayout(shape, tuple(d for d in op.reduced_dims if shape[d] != 1))


def live_ops(ops: Sequence[Operation], outputs: Sequence[SSAValue]) -> list[Operation]:
    """The ops the outputs depend on, in order."""
    defs = {r: op for op in ops for r in op.results}
    live: set[int] = set()
    work = [defs[v] for v in outputs if v in defs]
    while work:
        op = work.pop()
        if id(op) in live:
            continue
        live.add(id(op))
        work.extend(defs[v] for v in op.operands if v in defs)
    return [op for op in ops if id(op) in live]


def reduction_layout(ops: Sequence[Operation]) -> ReductionLayout | None:
    """The one reduction layout of ``ops`` (None: no reductions; unsupported: several)."""
    layouts = {layout_of(op) for op in ops if isinstance(op, g.ReduceOp) and not is_trivial(op)}
    if not layouts:
        return None
    if len(layouts) > 1:
        raise KernelUnsupported("reductions over different layouts in one kernel: "
                                + ", ".join(f"{lay.shape} dims {lay.dims}" for lay in sorted(
                                    layouts, key=str)))
    return layouts.pop()


def is_trivial(op: g.ReduceOp) -> bool:
    """A reduction over one element per row (size-1 dims, or a scalar): elementwise."""
    shape = shape_of(op.input.type)
    return not shape or numel([shape[d] for d in op.reduced_dims]) == 1


def splat_value(op: Operation) -> float | int | bool | None:
    if isinstance(op, g.ConstantOp) and isinstance(op.value, DenseIntOrFPElementsAttr) \
            and op.value.is_splat():
        v = op.value.get_values()[0]
        return bool(v) if dtype_of(op.result.type) == torch.bool else v
    return None


class KernelWriter:
    """Emits one ``@triton.jit`` function for a :class:`KernelSpec`."""

    def __init__(self, spec: KernelSpec, tiling: Tiling, layout: ReductionLayout | None,
                 helpers: set[str], gathered: bool = False) -> None:
        self.gathered = gathered  # outputs elsewhere than the layout's rows (see write_gathered)
        self.spec = spec
        self.tiling = tiling
        self.layout = layout
        self.helpers = helpers
        self.lines: list[str] = []
        self.indent = 1
        self.counter = 0
        self.memo: list[dict[tuple[object, ...], Val]] = [{}]
        self.hidden: list[torch.Tensor] = []  # non-splat constants inside the kernel
        self.hidden_ops: dict[int, int] = {}
        self.defs: dict[SSAValue, Operation] = {r: op for op in spec.ops for r in op.results}
        self.inputs: dict[SSAValue, int] = {v: i for i, v in enumerate(spec.inputs)}
        self.ops = OpEmitter(lambda e: self.bind(e, AXES_NONE).text, self.helpers.add)
        self.index = IndexPrinter(self.bind_index)
        # current (r, its name, mask_r) of the reduction space
        self.r_stack: list[tuple[ix.Lin, Ix, str]] = []
        self.o: ix.Lin | None = None
        self.kept: ix.Index = ()
        self.unmoved: dict[tuple[object, ...], Coords] = {}  # see forward_coords
        self.wide_index = any(numel(shape_of(v.type)) >= 2**31
                              for v in [*spec.inputs, *spec.outputs])

    # -- emission helpers -----------------------------------------------------

    def emit(self, line: str) -> None:
        self.lines.append("    " * self.indent + line)

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def bind(self, expr: str, axes: frozenset[int], prefix: str = "t") -> Ix:
        """``name = expr`` (once per scope: the same text gives the same name)."""
        if expr.isidentifier():
            return Ix(expr, axes)
        key = ("expr", expr)
        for scope in reversed(self.memo):
            if key in scope:
                return Ix(scope[key].text, axes)
        name = self.fresh(prefix)
        self.emit(f"{name} = {expr}")
        self.memo[-1][key] = Val(name, torch.int64, axes)
        return Ix(name, axes)

    def bind_index(self, expr: str, axes: frozenset[int]) -> Ix:
        return self.bind(expr, axes, "i")

    def value(self, expr: str, dtype: torch.dtype, axes: frozenset[int],
              rounded: bool = False) -> Val:
        """Bind an op's result. ``rounded``: round a half result like torch
        does after every op (halves are computed in f32 registers)."""
        if rounded and dtype in HALF_DTYPES:
            expr = round_half(expr, dtype)
        if expr.isidentifier() or expr.startswith("tl.full([]"):
            return Val(expr, dtype, axes)
        return Val(self.bind(expr, axes, "v").text, dtype, axes)

    def mask_for(self, axes: frozenset[int]) -> str | None:
        if not axes:
            return None
        if self.layout is None:
            return "mask"
        parts = []
        if 0 in axes:
            parts.append("mask_o")
        if 1 in axes:
            parts.append(self.r_stack[-1][2])
        return " & ".join(parts)

    # -- the kernel -----------------------------------------------------------

    def params(self) -> list[str]:
        ins = [f"in{i}" for i in range(len(self.spec.inputs))]
        hidden = [f"h{i}" for i in range(len(self.hidden))]
        outs = [f"out{j}" for j in range(len(self.spec.outputs))]
        consts = ["XBLOCK: tl.constexpr"] + (["RBLOCK: tl.constexpr"] if self.layout else [])
        return ins + hidden + outs + consts

    def write(self) -> str:
        pid = "tl.program_id(0).to(tl.int64)" if self.wide_index else "tl.program_id(0)"
        self.emit(f"pid = {pid}")
        if self.layout is None:
            self.write_pointwise()
        elif self.gathered:
            self.write_gathered()
        else:
            self.write_reduction(self.layout)
        header = f"def {self.spec.name}({', '.join(self.params())}):"
        doc = f'    """{self.describe()}"""'
        if any("_round_bf16(" in line for line in self.lines):  # from round_half
            self.helpers.add("_round_bf16")
        return "\n".join(["@triton.jit", header, doc, *self.lines]) + "\n"

    def describe(self) -> str:
        t = self.tiling
        if self.layout is None:
            return f"pointwise over {t.extent} elements"
        form = "persistent" if t.persistent else "looped"
        if self.gathered:
            return (f"{form} reduction per output element: {t.extent} elements x {t.reduced} "
                    f"reduced (shape {list(self.layout.shape)}, dims {list(self.layout.dims)})")
        return (f"{form} reduction: {t.extent} rows x {t.reduced} reduced elements "
                f"(shape {list(self.layout.shape)}, dims {list(self.layout.dims)})")

    def write_pointwise(self) -> None:
        n = self.tiling.extent
        self.emit("offs = pid * XBLOCK + tl.arange(0, XBLOCK)")
        self.emit(f"mask = offs < {n}")
        offs = self.index.var("offs", n, frozenset({0}))
        for j, out in enumerate(self.spec.outputs):
            shape = shape_of(out.type)
            if numel(shape) != n:
                raise KernelUnsupported("pointwise outputs of different sizes")
            self.store(j, out, Coords(shape, flat=offs), "mask", "[XBLOCK]")

    def write_gathered(self) -> None:
        """Outputs that are neither the layout's elements nor its rows (e.g. a
        row sum broadcast to another shape): one lane per output element, each
        reducing the row its coordinates select (rows may be reduced twice)."""
        n = self.tiling.extent
        self.emit("o = pid * XBLOCK + tl.arange(0, XBLOCK)[:, None]")
        self.emit(f"mask_o = o < {n}")
        self.o = self.index.var("o", n, frozenset({0}))
        if self.tiling.persistent:
            self.open_r("tl.arange(0, RBLOCK)[None, :]")
        for j, out in enumerate(self.spec.outputs):
            shape = shape_of(out.type)
            if numel(shape) != n:
                raise KernelUnsupported("outputs of different sizes in one kernel")
            self.store(j, out, Coords(shape, flat=self.o), "mask_o", "[XBLOCK, 1]")

    def write_reduction(self, layout: ReductionLayout) -> None:
        t = self.tiling
        self.emit("o = pid * XBLOCK + tl.arange(0, XBLOCK)[:, None]")
        self.emit(f"mask_o = o < {layout.rows}")
        self.o = self.index.var("o", layout.rows, frozenset({0}))
        self.kept = ix.unravel(self.o, layout.kept_shape)
        full, outer = [], []
        for j, out in enumerate(self.spec.outputs):
            shape = shape_of(out.type)
            place = layout.place(shape)
            if place is None:
                raise KernelUnsupported(f"output shape {list(shape)} is neither the reduction's "
                                        f"shape {list(layout.shape)} nor its rows")
            (full if place == "full" else outer).append(j)
        if t.persistent:
            self.open_r("tl.arange(0, RBLOCK)[None, :]")
        else:  # hoist every reduction out of the store loop, in program order
            for op in live_ops(self.spec.ops, self.spec.outputs):
                if isinstance(op, g.ReduceOp) and not is_trivial(op):
                    self.eval(op.result, self.outer_coords(shape_of(op.result.type)))
        for j in outer:
            shape = shape_of(self.spec.outputs[j].type)
            self.store(j, self.spec.outputs[j], self.outer_coords(shape), "mask_o",
                       "[XBLOCK, 1]")
        if not full:
            return
        if not t.persistent:
            self.open_loop()
        mask_r = self.r_stack[-1][2]
        coords = self.full_coords()
        for j in full:
            out = self.spec.outputs[j]
            shape = shape_of(out.type)
            mask, block = f"mask_o & {mask_r}", "[XBLOCK, RBLOCK]"
            chain = None if shape == layout.shape else self.permuted_chain(out)
            if chain is not None:  # computed per element of the row, stored where it moves
                self.store(j, out, self.forward_coords(coords, chain), mask, block)
                continue
            c = coords if shape == layout.shape else Coords(shape, flat=coords.flat())
            self.store(j, out, c, mask, block)

    def permuted_chain(self, out: SSAValue) -> list[Operation] | None:
        """The movement ops (source first) by which ``out`` is elementwise work on
        a value of the layout's shape moved by reshapes/squeezes/unsqueezes and
        at least one permute; None when there is no such path.

        Such an output (layer norm -> split heads -> transpose) would, read at its
        own flat index, need the row statistics of another row per reduced lane;
        instead it is read where the row's own elements move to (a bijection, so
        the row's mask is the store's mask; see :meth:`forward_coords`)."""
        assert self.layout is not None
        def walk(v: SSAValue, chain: list[Operation]) -> list[Operation] | None:
            if shape_of(v.type) == self.layout.shape:  # type: ignore[union-attr]
                return chain[::-1] if any(isinstance(op, g.PermuteOp) for op in chain) else None
            op = self.defs.get(v)
            if op is None:
                return None
            if isinstance(op, (g.ReshapeOp, g.PermuteOp, g.SqueezeOp, g.UnsqueezeOp)):
                return walk(op.operands[0], [*chain, op])
            if isinstance(op, (g.ElementwiseUnaryOp, g.ElementwiseBinaryOp, g.WhereOp, g.CastOp)):
                # same coordinates for same-shaped operands
                for x in op.operands:
                    if shape_of(x.type) == shape_of(v.type):
                        found = walk(x, chain)
                        if found is not None:
                            return found
            return None

        return walk(out, [])

    def forward_coords(self, c: Coords, chain: Sequence[Operation]) -> Coords:
        """Where the element at ``c`` lands after the movement ops of ``chain``
        (the forward direction of :func:`permute_coords` / :func:`reshape_coords`).
        Each step is remembered so that evaluating the op at the moved coordinates
        reads its input at exactly the coordinates it came from (the row's own
        ``(o, r)``, which a reduction of that row can consume)."""
        for op in chain:
            shape = shape_of(op.results[0].type)
            if isinstance(op, g.PermuteOp):
                moved = Coords(shape, ix.permute_forward(c.dims(), g.ints(op.dims)))
            else:  # reshape, squeeze, unsqueeze keep the flat index
                moved = Coords(shape, flat=c.flat())
            for k in moved.keys():
                self.unmoved[(id(op), k)] = c
            c = moved
        return c

    def open_loop(self) -> None:
        """``for rN in range(0, R, RBLOCK):`` with a fresh scope and r."""
        assert self.layout is not None
        start = self.fresh("r_start")
        self.emit(f"for {start} in range(0, {self.layout.reduced}, RBLOCK):")
        self.indent += 1
        self.memo.append({})
        self.open_r(f"{start} + tl.arange(0, RBLOCK)[None, :]")

    def close_loop(self) -> None:
        self.r_stack.pop()
        self.memo.pop()
        self.indent -= 1

    def open_r(self, expr: str) -> None:
        assert self.layout is not None
        name = self.fresh("r")
        self.emit(f"{name} = {expr}")
        mask = self.fresh("mask_r")
        self.emit(f"{mask} = {name} < {self.layout.reduced}")
        r = self.index.var(name, self.layout.reduced, frozenset({1}))
        self.r_stack.append((r, Ix(name, frozenset({1})), mask))

    def outer_coords(self, shape: tuple[int, ...]) -> Coords:
        """A row (``o``) in ``shape`` (the kept shape, keepdim shape, or any of that size)."""
        assert self.layout is not None and self.o is not None
        kept_shape, keep_shape = self.layout.outer_shapes()
        if shape == keep_shape:
            it = iter(self.kept)
            dims = [ix.ZERO if i in self.layout.dims else next(it) for i in range(len(shape))]
            return Coords(shape, dims, flat=self.o)
        if shape == kept_shape:
            return Coords(shape, self.kept, flat=self.o)
        return Coords(shape, flat=self.o)

    def full_coords(self) -> Coords:
        """The element ``(o, r)`` of the layout's shape."""
        assert self.o is not None
        return self.reduction_input(self.kept)

    def store(self, j: int, out: SSAValue, coords: Coords, mask: str, block: str) -> None:
        """Store output ``j`` at ``coords``; ``block`` is the store's block shape
        (a pointer that varies along fewer axes is broadcast to it)."""
        self.store_val(j, self.eval(out, coords), coords, mask, block)

    def store_val(self, j: int, val: Val, coords: Coords, mask: str, block: str) -> None:
        """Store ``val`` as output ``j`` at ``coords``."""
        dtype = dtype_of(self.spec.outputs[j].type)
        flat = self.index.print(coords.flat())
        ptr = f"out{j}" if flat.const == 0 else f"out{j} + {flat.paren()}"
        full = frozenset({0, 1}) if "RBLOCK" in block else frozenset({0})
        if flat.axes != full:
            ptr += f" + tl.zeros({block}, tl.int32)"
        text = val.text if dtype not in HALF_DTYPES else f"{val.text}.to({tl_type(dtype)})"
        self.emit(f"tl.store({ptr}, {text}, mask={mask})")

    # -- evaluation -------------------------------------------------------------

    def lookup(self, key: tuple[object, ...]) -> Val | None:
        for scope in reversed(self.memo):
            if key in scope:
                return scope[key]
        return None

    def eval(self, value: SSAValue, coords: Coords) -> Val:
        for k in coords.keys():
            found = self.lookup((id(value), k))
            if found is not None:
                return found
        val = self._eval(value, coords)
        for k in coords.keys():
            self.memo[-1][(id(value), k)] = val
        return val

    def _eval(self, value: SSAValue, c: Coords) -> Val:  # noqa: C901 - a flat dispatch over op kinds
        dtype = dtype_of(value.type)
        if value in self.inputs:
            i = self.inputs[value]
            if i in self.spec.known:
                return Val(literal(self.spec.known[i], dtype), dtype, AXES_NONE)
            return self.load(f"in{i}", dtype, c)
        op = self.defs.get(value)
        if op is None:
            raise KernelUnsupported(f"value {value.name_hint or '?'} is defined outside the kernel")
        if isinstance(op, g.ConstantOp):
            splat = splat_value(op)
            if splat is not None:
                return Val(literal(splat, dtype), dtype, AXES_NONE)
            if id(op) not in self.hidden_ops:
                from irc.ir.interpreter import dense_to_tensor
                self.hidden_ops[id(op)] = len(self.hidden)
                self.hidden.append(dense_to_tensor(op.value))
            return self.load(f"h{self.hidden_ops[id(op)]}", dtype, c)
        if isinstance(op, g.ElementwiseUnaryOp):
            x = self.eval(op.input, c)
            ct = dtype_of(op.input.type) if type(op).DTYPE_RULE in ("bool", "same") else dtype
            text = self.ops.unary(op, convert(x.text, x.dtype, ct), ct)
            if type(op).DTYPE_RULE == "bool":
                return self.value(text, dtype, x.axes)
            return self.value(convert(text, ct, dtype) if ct != dtype else text, dtype, x.axes,
                              rounded=True)
        if isinstance(op, g.ElementwiseBinaryOp):
            x = self.eval(op.lhs, broadcast_coords(c, shape_of(op.lhs.type)))
            y = self.eval(op.rhs, broadcast_coords(c, shape_of(op.rhs.type)))
            ct = dtype if type(op).DTYPE_RULE != "bool" else torch.promote_types(x.dtype, y.dtype)
            if isinstance(op, g.DivOp):
                ct = dtype
            text = self.ops.binary(op, convert(x.text, x.dtype, ct), convert(y.text, y.dtype, ct),
                                   ct, self.scalar_of(op.rhs))
            return self.value(text, dtype, x.axes | y.axes, rounded=True)
        if isinstance(op, g.WhereOp):
            cond = self.eval(op.cond, broadcast_coords(c, shape_of(op.cond.type)))
            x = self.eval(op.lhs, broadcast_coords(c, shape_of(op.lhs.type)))
            y = self.eval(op.rhs, broadcast_coords(c, shape_of(op.rhs.type)))
            text = (f"tl.where({cond.text}, {convert(x.text, x.dtype, dtype)}, "
                    f"{convert(y.text, y.dtype, dtype)})")
            return self.value(text, dtype, cond.axes | x.axes | y.axes)
        if isinstance(op, g.CastOp):
            x = self.eval(op.input, c)
            return self.value(convert(x.text, x.dtype, dtype), dtype, x.axes)
        if isinstance(op, g.ReduceOp):
            return self.reduce(op, c)
        in_shape = shape_of(op.operands[0].type) if op.operands else ()
        for k in c.keys():  # an op that forward_coords moved the row through
            if (id(op), k) in self.unmoved:
                return self.eval(op.operands[0], self.unmoved[(id(op), k)])
        if isinstance(op, (g.ReshapeOp, g.SqueezeOp, g.UnsqueezeOp)):
            return self.eval(op.input, reshape_coords(c, in_shape))
        if isinstance(op, g.ExpandOp):
            return self.eval(op.input, broadcast_coords(c, in_shape))
        if isinstance(op, g.PermuteOp):
            return self.eval(op.input, permute_coords(c, g.ints(op.dims), in_shape))
        if isinstance(op, g.SliceOp):
            dim, start, _end, step = op.params()
            return self.eval(op.input, slice_coords(c, dim, start, step, in_shape))
        if isinstance(op, g.ConcatOp):
            return self.concat(op, c)
        raise KernelUnsupported(f"{op.name} has no Triton lowering")

    def concat(self, op: g.ConcatOp, c: Coords) -> Val:
        """Select between the operands by the index along ``dim``; each operand is
        read at that index clamped into its own range, so every load is in bounds
        (the same scheme as the CPU lowering, :meth:`KernelValues.concat`)."""
        dim, dtype = op.dim.value.data, dtype_of(op.result.type)
        operands = list(op.inputs)
        sizes = [shape_of(v.type)[dim] for v in operands]
        dims = c.dims()
        pos = dims[dim]
        if pos.is_const:  # a fixed index: read the one operand holding it
            found = ix.concat_operand_at(pos.const, dims, dim, sizes)
            if found is None:  # an empty result: no program reads this
                return Val(literal(0, dtype), dtype, AXES_NONE)
            k, sub = found
            val = self.eval(operands[k], Coords(shape_of(operands[k].type), sub))
            return self.value(convert(val.text, val.dtype, dtype), dtype, val.axes)
        pieces = [(offset, self.eval(operands[k], Coords(shape_of(operands[k].type), sub)))
                  for k, offset, sub in ix.concat_pieces(dims, dim, sizes)]
        if not pieces:  # an empty result: no program reads this
            return Val(literal(0, dtype), dtype, AXES_NONE)
        at = self.index.print(pos)
        last = pieces[-1][1]
        text, axes = convert(last.text, last.dtype, dtype), last.axes | at.axes
        for k in range(len(pieces) - 2, -1, -1):
            val = pieces[k][1]
            text = (f"tl.where({at.paren()} < {pieces[k + 1][0]}, "
                    f"{convert(val.text, val.dtype, dtype)}, {text})")
            axes |= val.axes
        return self.value(text, dtype, axes)

    def scalar_of(self, value: SSAValue) -> float | int | bool | None:
        if value in self.inputs:
            return self.spec.known.get(self.inputs[value])
        op = self.defs.get(value)
        return splat_value(op) if op is not None else None

    def load(self, ptr: str, dtype: torch.dtype, c: Coords) -> Val:
        flat = self.index.print(c.flat())
        mask = self.mask_for(flat.axes)
        address = ptr if flat.const == 0 else f"{ptr} + {flat.paren()}"
        text = f"tl.load({address}{', mask=' + mask if mask else ''})"
        if dtype in HALF_DTYPES:
            text += ".to(tl.float32)"
        return self.value(text, dtype, flat.axes)

    # -- reductions -------------------------------------------------------------

    def reduce(self, op: g.ReduceOp, c: Coords) -> Val:
        dtype = dtype_of(op.result.type)
        in_shape = shape_of(op.input.type)
        if is_trivial(op):
            return self.trivial_reduce(op, c)
        layout = self.layout
        if layout is None or self.o is None:
            raise KernelUnsupported(f"{op.name} outside the kernel's reduction space")
        if 1 in self.index.axes(c.flat()):
            raise KernelUnsupported(f"{op.name} result is needed per reduced element")
        if layout_of(op) != layout:
            raise KernelUnsupported(f"{op.name} reduces another layout than the kernel")
        dims = c.dims()
        if not op.keeps_dims:  # back to the input's rank: reduced dims at 0
            it = iter(dims)
            dims = [ix.ZERO if i in op.reduced_dims else next(it) for i in range(len(in_shape))]
        kept = [d for i, d in enumerate(dims) if i not in layout.dims]
        persistent = self.tiling.persistent
        if not persistent:
            acc = ReductionAccumulator(self, op)
            acc.init()
            self.open_loop()
        x = self.eval(op.input, self.reduction_input(tuple(kept)))
        _, r, mask_r = self.r_stack[-1]
        if persistent:
            text = ReductionAccumulator(self, op).persistent(x, r, mask_r)
        else:
            acc.update(x, r, mask_r)
            self.close_loop()
            text = acc.finish()
        return self.value(text, dtype, frozenset({0}), rounded=True)

    def trivial_reduce(self, op: g.ReduceOp, c: Coords) -> Val:
        """A reduction over one element: the element itself, converted."""
        dtype = dtype_of(op.result.type)
        kind = op.name.removeprefix("graph.")
        if kind in ("argmax", "argmin"):
            return Val(literal(0, dtype), dtype, AXES_NONE)
        in_shape = shape_of(op.input.type)
        if not in_shape or op.keeps_dims:
            inner = c if not in_shape else Coords(in_shape, c.dims())
        else:
            it = iter(c.dims())
            inner = Coords(in_shape, [ix.ZERO if i in op.reduced_dims else next(it)
                                      for i in range(len(in_shape))])
        x = self.eval(op.input, inner)
        if kind in ("any", "all"):
            return self.value(f"({x.text} != 0)", dtype, x.axes)
        return self.value(convert(x.text, x.dtype, dtype), dtype, x.axes, rounded=True)

    def reduction_input(self, kept: ix.Index) -> Coords:
        """The element of the layout's shape at the row ``kept`` and the current ``r``."""
        assert self.layout is not None
        layout = self.layout
        r = self.r_stack[-1][0]
        rdims = iter(ix.unravel(r, layout.reduced_shape))
        kdims = iter(kept)
        dims = [next(rdims) if i in layout.dims else next(kdims) for i in range(len(layout.shape))]
        return Coords(layout.shape, dims)
