"""The Triton matmul template, with the consumer kernel fused in as its epilogue.

Deciding and emitting for ``graph.matmul`` ops of ``@main`` when the backend's
``matmul`` option is ``"triton"`` or ``"auto"`` (see :class:`TritonOptions`):

* **Legal** (:func:`plan_matmul_sites`): f32/f16/bf16 operands, no size-0 dim,
  at most 65535 batch matrices (grid axis 1). Other matmuls stay ``torch.matmul``.
* **Template**: one program per ``BLOCK_M x BLOCK_N`` output tile (tiles
  ordered in groups of ``GROUP_M`` rows for L2 reuse), batch on grid axis 1;
  a loop over K in ``BLOCK_K`` steps of ``tl.dot`` into a float32
  accumulator; ragged M/N/K edges are masked. Float32 operands multiply with
  ``input_precision="ieee"`` (no TF32), so results match torch's default
  float32 matmul. Operands are passed as ``[batch, rows, cols]`` views with
  runtime strides (a broadcast batch dim has stride 0, a transposed weight is
  read in place).
* **Epilogue**: when the matmul's result is used only by one ``irc.kernel``
  call whose outputs all have the matmul's element count and whose body reads
  the result only at the element being stored (bias broadcast, activations,
  residual adds, casts; a store through a reshape or a permutation of the
  matmul's index is allowed), that kernel's body is evaluated on the
  accumulator by the ordinary elementwise code generator
  (:class:`EpilogueWriter` is a :class:`KernelWriter` whose coordinates are the
  tile's ``(batch, rm, rn)`` and whose read of the matmul result *is* the
  accumulator) and the separate kernel launch disappears. Anything else
  (a reduction, a read of a neighbouring element) keeps the kernel separate
  and the template stores the plain product.
* **Choice**: ``"triton"`` emits the template straight-line; ``"auto"`` emits
  both schedules as two closures and ``_matmul(name, cublas, triton)``, which
  the runtime answers per site (timed once per shape on the GPU, cached).

Results agree with ``torch.matmul`` followed by the consumer kernel within the
dtype's tolerance (the half-precision product is rounded to the result dtype
before the epilogue, as the unfused schedule does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from xdsl.dialects import func
from xdsl.dialects.builtin import SymbolRefAttr
from xdsl.ir import Operation, SSAValue

from irc.backends.triton.autotune import Tiling, next_pow2
from irc.backends.triton.codegen_index import AXES_NONE, Coords
from irc.backends.triton.codegen_kernel import KernelSpec, KernelWriter, live_ops
from irc.backends.triton.codegen_ops import (
    HALF_DTYPES,
    KernelUnsupported,
    Val,
    round_half,
    tl_type,
)
from irc.errors import BackendError
from irc.ir import graph as g
from irc.ir import index as ix
from irc.ir.types import dtype_of, numel, shape_of

MATMUL_MODES = ("auto", "cublas", "triton")
TEMPLATE_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
TEMPLATE = "irc.template"
"""Unit attribute of a ``graph.matmul`` the template can run (``matmul-epilogues``)."""
EPILOGUE = "irc.epilogue"
"""Symbol of the kernel whose call the template runs as ``graph.matmul``'s epilogue."""
MAX_BATCH = 65535  # grid axis 1
AXES_TILE = frozenset({0, 1})


@dataclass(frozen=True)
class MatmulTiling:
    """How one template kernel is launched: ``grid = (tiles_m * tiles_n, batch)``."""

    m: int
    n: int
    k: int
    batch: int
    block_m: int
    block_n: int
    block_k: int
    group_m: int = 8
    num_warps: int = 4
    num_stages: int = 3

    @property
    def grid(self) -> tuple[int, int]:
        return (-(-self.m // self.block_m)) * (-(-self.n // self.block_n)), self.batch

    def meta(self) -> dict[str, int]:
        """Launch keywords: the constexpr block sizes, warps and pipeline stages."""
        return {"BLOCK_M": self.block_m, "BLOCK_N": self.block_n, "BLOCK_K": self.block_k,
                "GROUP_M": self.group_m, "num_warps": self.num_warps,
                "num_stages": self.num_stages}


def _block(extent: int, cap: int) -> int:
    return max(16, min(next_pow2(extent), cap))  # tl.dot needs >= 16 per dim


def choose_matmul_tiling(m: int, n: int, k: int, batch: int, dtype: torch.dtype,
                         interpret: bool) -> MatmulTiling:
    """Block sizes from the static shape. The interpreter gets large blocks
    (fewer programs is what makes it fast); a GPU gets 128x128 tiles for large
    outputs, K steps of 32 (f32) or 64 (f16/bf16) elements, 3 pipeline stages."""
    if interpret:
        return MatmulTiling(m, n, k, batch, _block(m, 64), _block(n, 64), _block(k, 64))
    bm, bn = _block(m, 128), _block(n, 128)
    bk = _block(k, 32 if dtype == torch.float32 else 64)
    warps = 8 if bm * bn >= 128 * 128 else 4
    return MatmulTiling(m, n, k, batch, bm, bn, bk, num_warps=warps)


def matmul_candidates(t: MatmulTiling) -> list[MatmulTiling]:
    """A few neighbouring tilings worth timing on a GPU."""
    out = [t]
    for bm, bn, warps in ((64, 128, 4), (128, 64, 4), (64, 64, 4), (128, 128, 8)):
        bm, bn = _block(t.m, bm), _block(t.n, bn)
        out.append(replace(t, block_m=bm, block_n=bn, num_warps=warps))
    out.append(replace(t, num_stages=4))
    return list(dict.fromkeys(out))


@dataclass
class MatmulSite:
    """One ``graph.matmul`` run by the template (maybe with a fused epilogue)."""

    name: str
    op: g.MatmulOp
    source: str
    tiling: MatmulTiling
    hidden: list[torch.Tensor]
    call: func.CallOp | None = None  # the fused consumer's call site
    consumer: str | None = None  # the consumer's kernel plan name
    mode: str = "triton"  # "triton" (always the template) or "auto" (runtime choice)
    params: list[int] = field(default_factory=list)  # consumer operand positions passed on

    @property
    def has_epilogue(self) -> bool:
        return self.call is not None

    def describe(self) -> str:
        a, b = shape_of(self.op.lhs.type), shape_of(self.op.rhs.type)
        text = f"matmul {list(a)} @ {list(b)} ({dtype_of(self.op.result.type)})"
        return text + (f", epilogue {self.consumer}" if self.consumer else "")


# ----------------------------------------------------------------------------
# the epilogue: the consumer kernel's body, evaluated on the accumulator


class EpilogueWriter(KernelWriter):
    """A :class:`KernelWriter` over one output tile of the matmul.

    Block axis 0 is the tile's rows (``rm``, ``[BLOCK_M, 1]``), axis 1 its
    columns (``rn``, ``[1, BLOCK_N]``); batch dims come from ``pid_b``. The
    matmul result (kernel inputs at ``positions``) is bound at the tile's
    coordinates to the accumulator. Coordinates are then pushed *forward*
    through the ops that consume it (elementwise ops keep them, permutes
    reorder the dims, reshapes keep the flat index), and each such value is
    evaluated there by the ordinary pull-based code generator, whose
    coordinate rules invert exactly these steps: every read of the product
    hits the accumulator. A read anywhere else (a neighbour, a broadcast of
    the product, a reduction over it) raises :class:`KernelUnsupported` and
    the kernel is not fused.
    """

    def __init__(self, spec: KernelSpec, positions: set[int], mm_shape: tuple[int, ...],
                 mm_dtype: torch.dtype, helpers: set[str]) -> None:
        super().__init__(spec, Tiling("pointwise", numel(mm_shape), 0, 1, 0, 1), None, helpers)
        self.mm_shape = mm_shape
        self.mm_dtype = mm_dtype
        self.mm_values = {spec.inputs[p] for p in positions}

    def mask_for(self, axes: frozenset[int]) -> str | None:
        parts = [m for axis, m in ((0, "mask_m"), (1, "mask_n")) if axis in axes]
        return " & ".join(parts) or None

    def _eval(self, value: SSAValue, c: Coords) -> Val:
        if value in self.mm_values:
            raise KernelUnsupported("the kernel reads the matmul result at another element "
                                    "than the one it stores")
        return super()._eval(value, c)

    def tile_coords(self) -> Coords:
        """The matmul result's coordinates of the tile: ``(*batch, rm, rn)``."""
        batch_shape = self.mm_shape[:-2]
        m, n = self.mm_shape[-2:]
        rm = self.index.var("rm", m, frozenset({0}))
        rn = self.index.var("rn", n, frozenset({1}))
        pid_b = self.index.var("pid_b", numel(batch_shape), AXES_NONE)
        batch = ix.unravel(pid_b, batch_shape) if batch_shape else ()
        return Coords(self.mm_shape, [*batch, rm, rn])

    def _remember(self, value: SSAValue, c: Coords) -> None:
        """Memoise ``value``'s evaluation under every form ``c`` now has."""
        found = next(v for k in c.keys() if (v := self.lookup((id(value), k))) is not None)
        for k in c.keys():
            self.memo[-1][(id(value), k)] = found

    def forward(self, op: Operation, operand: SSAValue, c: Coords) -> Coords:
        """Coordinates in ``op``'s result of the element ``c`` of ``operand``
        (one element of the product must give exactly one result element)."""
        out_shape = tuple(shape_of(op.results[0].type))
        if len(op.results) != 1:
            raise KernelUnsupported(f"{op.name} of the matmul result has several results")
        if isinstance(op, (g.ElementwiseUnaryOp, g.ElementwiseBinaryOp, g.WhereOp, g.CastOp)):
            if tuple(shape_of(operand.type)) != out_shape:
                raise KernelUnsupported(f"{op.name} broadcasts the matmul result")
            return c
        if isinstance(op, (g.ReshapeOp, g.SqueezeOp, g.UnsqueezeOp)):
            return Coords(out_shape, flat=c.flat())
        if isinstance(op, g.PermuteOp):
            return Coords(out_shape, ix.permute_forward(c.dims(), g.ints(op.dims)))
        raise KernelUnsupported(f"{op.name} of the matmul result is not elementwise")

    def write_epilogue(self) -> list[str]:
        """Epilogue lines (one indent level): every output, stored at the
        element the tile's product element moves to."""
        tile = self.tile_coords()
        acc = "acc"
        if self.mm_dtype in HALF_DTYPES:  # the unfused schedule rounds the product too
            self.emit(f"mm = {round_half('acc', self.mm_dtype)}")
            acc = "mm"
        seeded = Val(acc, self.mm_dtype, AXES_TILE)
        coords: dict[SSAValue, Coords] = {}
        for value in self.mm_values:
            coords[value] = tile
            for key in tile.keys():
                self.memo[-1][(id(value), key)] = seeded
        for op in live_ops(self.spec.ops, self.spec.outputs):
            moved = [v for v in op.operands if v in coords]
            if not moved:
                continue
            here = self.forward(op, moved[0], coords[moved[0]])
            self._remember(moved[0], coords[moved[0]])  # the forward step may add a form
            coords[op.results[0]] = here
            self.eval(op.results[0], here)
        for j, out in enumerate(self.spec.outputs):
            if out not in coords:
                raise KernelUnsupported("an output does not depend on the matmul result")
            self.store_tile(j, out, coords[out])
        if any("_round_bf16(" in line for line in self.lines):  # from round_half
            self.helpers.add("_round_bf16")
        return self.lines

    def store_tile(self, j: int, out: SSAValue, coords: Coords) -> None:
        val = self.eval(out, coords)
        dtype = dtype_of(out.type)
        flat = self.index.print(coords.flat())
        ptr = f"out{j}" if flat.const == 0 else f"out{j} + {flat.paren()}"
        if flat.axes != AXES_TILE:
            ptr += " + tl.zeros([BLOCK_M, BLOCK_N], tl.int32)"
        text = val.text if dtype not in HALF_DTYPES else f"{val.text}.to({tl_type(dtype)})"
        self.emit(f"tl.store({ptr}, {text}, mask=mask_m & mask_n)")


def write_epilogue(spec: KernelSpec, positions: set[int], mm_shape: tuple[int, ...],
                   mm_dtype: torch.dtype, helpers: set[str]) -> tuple[list[str], EpilogueWriter]:
    """The epilogue of ``spec`` on the tile (KernelUnsupported: not fusible)."""
    local: set[str] = set()
    writer = EpilogueWriter(spec, positions, mm_shape, mm_dtype, local)
    lines = writer.write_epilogue()
    helpers |= local
    return lines, writer


# ----------------------------------------------------------------------------
# the template kernel


def template_source(name: str, op: g.MatmulOp, epilogue: list[str], params: list[str],
                    describe: str, interpret: bool = False) -> str:
    """The ``@triton.jit`` template: tiles, K loop, then ``epilogue``.

    Triton's interpreter multiplies bfloat16 blocks wrongly (it reads their
    bits as another type; 3.6 and 3.9 alike), so under the interpreter
    bfloat16 blocks are widened to float32 first: the same products, as
    bfloat16 x bfloat16 is exact in float32, accumulated in float32 as the
    GPU's MMA does."""
    a_shape, out_shape = shape_of(op.lhs.type), shape_of(op.result.type)
    m, k, n = a_shape[-2], a_shape[-1], out_shape[-1]
    dtype = dtype_of(op.lhs.type)
    wide = any(numel(shape_of(v.type)) >= 2**31 for v in (op.lhs, op.rhs, op.result))
    idx = ".to(tl.int64)" if wide else ""
    precision = ', input_precision="ieee"' if dtype == torch.float32 else ""
    widen = ""
    if interpret and dtype == torch.bfloat16:
        widen, precision = ".to(tl.float32)", ', input_precision="ieee"'
    header = ["a", "b", "stride_ab", "stride_am", "stride_ak", "stride_bb", "stride_bk",
              "stride_bn", *params, "BLOCK_M: tl.constexpr", "BLOCK_N: tl.constexpr",
              "BLOCK_K: tl.constexpr", "GROUP_M: tl.constexpr"]
    body = [
        "pid = tl.program_id(0)",
        f"pid_b = tl.program_id(1){idx}",
        f"tiles_m = tl.cdiv({m}, BLOCK_M)",
        f"tiles_n = tl.cdiv({n}, BLOCK_N)",
        "group = GROUP_M * tiles_n",
        "first_m = (pid // group) * GROUP_M",
        "size_m = tl.minimum(tiles_m - first_m, GROUP_M)",
        "pid_m = first_m + (pid % group) % size_m",
        "pid_n = (pid % group) // size_m",
        f"rm = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)[:, None]){idx}",
        f"rn = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)[None, :]){idx}",
        f"mask_m = rm < {m}",
        f"mask_n = rn < {n}",
        "rk = tl.arange(0, BLOCK_K)",
        "a_ptrs = a + pid_b * stride_ab + rm * stride_am + rk[None, :] * stride_ak",
        "b_ptrs = b + pid_b * stride_bb + rk[:, None] * stride_bk + rn * stride_bn",
        "acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)",
        f"for k0 in range(0, {k}, BLOCK_K):",
        f"    a_blk = tl.load(a_ptrs, mask=mask_m & (rk[None, :] < {k} - k0), other=0.0)",
        f"    b_blk = tl.load(b_ptrs, mask=(rk[:, None] < {k} - k0) & mask_n, other=0.0)",
        f"    acc = tl.dot(a_blk{widen}, b_blk{widen}, acc{precision})",
        "    a_ptrs += BLOCK_K * stride_ak",
        "    b_ptrs += BLOCK_K * stride_bk",
    ]
    return "\n".join(["@triton.jit", f"def {name}({', '.join(header)}):",
                      f'    """{describe}"""', *("    " + line for line in body),
                      *epilogue]) + "\n"


# ----------------------------------------------------------------------------
# planning


def template_legal(op: g.MatmulOp) -> bool:
    """Whether the template can run ``op`` (else it stays ``torch.matmul``)."""
    shape = shape_of(op.result.type)
    k = shape_of(op.lhs.type)[-1]
    return (dtype_of(op.result.type) in TEMPLATE_DTYPES and numel(shape) > 0 and k > 0
            and numel(shape[:-2]) <= MAX_BATCH)


def only_use(value: SSAValue) -> Operation | None:
    """The one op using ``value`` (None: no use, or several ops)."""
    uses = list(value.uses)
    owners = {id(u.operation) for u in uses}
    return uses[0].operation if len(owners) == 1 else None


def epilogue_fits(op: g.MatmulOp, call: func.CallOp, spec: KernelSpec) -> bool:
    """Whether the template can run the kernel ``spec`` called by ``call`` as
    ``op``'s epilogue: it reads the product only at the element it stores."""
    positions = {i for i, v in enumerate(call.operands) if v is op.result}
    try:
        write_epilogue(spec, positions, tuple(shape_of(op.result.type)),
                       dtype_of(op.result.type), set())
    except KernelUnsupported:
        return False
    return True


def plan_site(name: str, op: g.MatmulOp, consumer: tuple[str, KernelSpec, func.CallOp] | None,
              mode: str, interpret: bool, helpers: set[str]) -> MatmulSite:
    """The template for ``op``, fusing ``consumer`` (kernel name, spec, call)
    when its body is an elementwise epilogue of the product."""
    mm_shape = tuple(shape_of(op.result.type))
    mm_dtype = dtype_of(op.result.type)
    batch, m, n = numel(mm_shape[:-2]), mm_shape[-2], mm_shape[-1]
    tiling = choose_matmul_tiling(m, n, shape_of(op.lhs.type)[-1], batch, mm_dtype, interpret)
    if consumer is not None:
        kname, spec, call = consumer
        positions = {i for i, v in enumerate(call.operands) if v is op.result}
        try:
            lines, writer = write_epilogue(spec, positions, mm_shape, mm_dtype, helpers)
        except KernelUnsupported as err:
            raise BackendError(f"{op.name}'s {EPILOGUE} = @{kname} cannot be emitted: {err}; "
                               f"run matmul-epilogues after the last pass that changes the "
                               f"kernels") from err
        else:
            passed = [i for i in range(len(spec.inputs)) if i not in positions]
            params = ([f"in{i}" for i in passed] + [f"h{i}" for i in range(len(writer.hidden))]
                      + [f"out{j}" for j in range(len(spec.outputs))])
            site = MatmulSite(name, op, "", tiling, writer.hidden, call, kname, mode, passed)
            site.source = template_source(name, op, lines, params, site.describe(), interpret)
            return site
    spec = KernelSpec(name, [op.result], [], [op.result])
    lines, writer = write_epilogue(spec, {0}, mm_shape, mm_dtype, helpers)
    site = MatmulSite(name, op, "", tiling, [], None, None, mode, [])
    site.source = template_source(name, op, lines, ["out0"], site.describe(), interpret)
    return site


def plan_matmul_sites(main: func.FuncOp, consumers: Callable[[func.CallOp],
                                                             tuple[str, KernelSpec]],
                      mode: str, interpret: bool, helpers: set[str]) -> list[MatmulSite]:
    """A :class:`MatmulSite` per ``graph.matmul`` of ``@main`` that the
    ``matmul-epilogues`` pass marked :data:`TEMPLATE` (none for ``"cublas"``),
    fusing the consumer call its :data:`EPILOGUE` names. ``consumers(call)``
    gives the kernel plan name and spec of that call."""
    if mode == "cublas":
        return []
    sites: list[MatmulSite] = []
    for op in main.body.block.ops:
        if not isinstance(op, g.MatmulOp) or TEMPLATE not in op.attributes:
            continue
        consumer = None
        call = epilogue_call(op)
        if call is not None:
            consumer = (*consumers(call), call)
        sites.append(plan_site(f"matmul_{len(sites)}", op, consumer, mode, interpret, helpers))
    return sites


def epilogue_call(op: g.MatmulOp) -> func.CallOp | None:
    """The call :data:`EPILOGUE` names as ``op``'s fused consumer (None: none)."""
    target = op.attributes.get(EPILOGUE)
    if target is None:
        return None
    user = only_use(op.result)
    if not isinstance(target, SymbolRefAttr) or not isinstance(user, func.CallOp) \
            or user.callee != target:
        raise BackendError(f"{op.name}'s {EPILOGUE} = {target} is not the call of its "
                           f"product's only user; run matmul-epilogues after the last pass "
                           f"that changes the kernels")
    return user


# ----------------------------------------------------------------------------
# host text


def batched_text(arg: str, shape: tuple[int, ...], batch: tuple[int, ...]) -> str:
    """``arg`` as a ``[batch, rows, cols]`` view (stride 0 over broadcast batch dims)."""
    rows, cols = shape[-2:]
    return f"_batched({arg}, {tuple(batch)!r}, {rows}, {cols})"


def launch_lines(site: MatmulSite, args: list[str], outs: list[str], indent: str) -> list[str]:
    """Allocate the outputs and launch the template. ``args`` are the matmul's
    operands then the consumer call's operands (all of them; fused positions
    are skipped); ``outs`` the names of the results."""
    op = site.op
    batch = tuple(shape_of(op.result.type)[:-2])
    results = list(site.call.results) if site.call is not None else [op.result]
    lines = []
    for r, name in zip(results, outs):
        lines.append(f"{indent}{name} = torch.empty({tuple(shape_of(r.type))!r}, "
                     f"dtype={dtype_of(r.type)}, device=_device)")
    a = batched_text(args[0], shape_of(op.lhs.type), batch)
    b = batched_text(args[1], shape_of(op.rhs.type), batch)
    rest = [args[2 + i] for i in site.params]
    hidden = [f"HIDDEN[{site.name!r}][{i}]" for i in range(len(site.hidden))]
    call_args = ", ".join([a, b, *rest, *hidden, *outs])
    grid = site.tiling.grid
    lines.append(f"{indent}_launch_matmul({site.name}, {site.name!r}, {call_args})  "
                 f"# template, grid {grid[0]}x{grid[1]}")
    return lines


def tilings_text(sites: list[MatmulSite]) -> str:
    lines = ["# Launch configuration per matmul template (the runtime may autotune these).",
             "MATMUL_TILINGS = {"]
    for s in sites:
        lines.append(f"    {s.name!r}: {s.tiling.meta()!r},")
    lines.append("}")
    return "\n".join(lines)


LAUNCH_MATMUL = '''

def _batched(t, batch, rows, cols):
    """``t`` as [prod(batch), rows, cols]; a view when torch can make one."""
    return t.expand(*batch, rows, cols).reshape(-1, rows, cols)


def _launch_matmul(kernel, name, a, b, *args):
    """Launch a matmul template over (tiles, batch) with MATMUL_TILINGS[name]."""
    meta = MATMUL_TILINGS[name]
    tiles = triton.cdiv(a.shape[1], meta["BLOCK_M"]) * triton.cdiv(b.shape[2], meta["BLOCK_N"])
    kernel[(tiles, a.shape[0])](a, b, *a.stride(), *b.stride(), *args, **meta)


def _matmul(name, cublas, template):
    """Run the schedule chosen for a matmul site (the runtime decides "auto")."""
    return template() if MATMUL_CHOICE.get(name) == "triton" else cublas()


MATMUL_CHOICE = {}  # site -> "cublas" | "triton" (filled by the runtime)
'''
