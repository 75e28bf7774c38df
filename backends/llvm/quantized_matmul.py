"""Fused dequantize-matmul kernels for ``graph.quantized_matmul`` on the CPU.

One LLVM function is generated per shape (M rows of input, K, N, bits, group
size; all constants, so LLVM unrolls and vectorises with exact trip counts):

    @qmm(float* x [M, K], float* xv [M, K], i8* q, float* scales [N, G], float* y [M, N],
         i64 lo, i64 hi)

It computes output channels ``n`` in ``[lo, hi)``, ``ROW_BLOCK`` input rows at a
time, and with fewer input rows (a decode step's GEMV) several channels at a
time, each with an accumulator chain of its own (:func:`channel_block`); the
runtime splits that range over threads, through the OpenMP entry
``@qmm.omp`` like a parallel loop kernel. Per channel and input row it walks the groups of K. The inner
loop is explicit vector code: each step loads 16 bytes of integers once for
all rows (16 int8 values, or 32 int4 ones), widens, unpacks (``& 15``,
``>> 4``) and converts them in registers and multiplies them with 16-float
slices of the input, into one vector of partial sums per row, scaled once
per group and summed across lanes once per output. At 4 bits the low nibbles
meet the even elements of K and the high ones the odd: the host hands the
kernel a copy of ``x`` whose 32-element chunks are reordered to even, then
odd (``xv``, :func:`permute_for_int4`; M x K floats, tiny next to the
weight), so no shuffle runs per weight byte. What is left of a group (a
ragged K, a group size that is not a multiple of 32) runs as scalar code
on ``x``. Accumulation is ``reassoc``, as in a reduction kernel. No
dequantized weight is ever written to memory: the bytes read per output are
the quantized row, which is what makes decode faster than f32 (measured on
the dev machine, one thread, K=768 N=8192: int4 156 us, 40 G multiply-adds/s,
where the scalar-unpacking loop took 254 us).

A hand-written generator rather than the loops-level lowering: the int4
nibble unpacking and the per-group scale are not graph ops, and a dedicated
kernel keeps the quantized op out of the kernel helper's lowering.
"""


from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch
from llvmlite import ir
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import SSAValue

from irc.backends.llvm.int4_layout import LANES, permute_for_int4
from irc.backends.llvm.jit import JitModule, compile_llvm_ir
from irc.backends.llvm.llvm_types import Builder, Value, builder
from irc.backends.llvm.threads import LaunchStats
from irc.backends.llvm.translate import F32, I8, I32, I64, PTR, ModuleTranslator
from irc.ir import graph as g
from irc.ir.types import dtype_of, numel, shape_of

REDUCTION = ("reassoc", "nsz", "contract")
KERNEL = "irc_quantized_matmul"


@dataclass(frozen=True)
class QuantizedShape:
    """What one generated kernel is specialised for."""

    m: int
    k: int
    n: int
    bits: int
    group_size: int

    @property
    def groups(self) -> int:
        return -(-self.k // self.group_size)

    @property
    def row_bytes(self) -> int:
        return self.k if self.bits == 8 else (self.k + 1) // 2


def _i64(v: int) -> ir.Constant:
    return ir.Constant(I64, v)


def _loop(b: Builder, start: Value, end: Value, init: Sequence[Value],
          body: Callable[[Builder, Value, list[Value]], Sequence[Value]],
          name: str) -> list[Value]:
    """``for i in [start, end)`` carrying ``init``; returns the final carried values."""
    pre = b.block
    head = b.append_basic_block(f"{name}.head")
    loop = b.append_basic_block(f"{name}.body")
    done = b.append_basic_block(f"{name}.done")
    b.branch(head)
    b.position_at_end(head)
    iv = b.phi(I64, name=name)
    iv.add_incoming(start, pre)
    carried: list[ir.PhiInstr] = []
    for j, v in enumerate(init):
        phi = b.phi(v.type, name=f"{name}.c{j}")
        phi.add_incoming(v, pre)
        carried.append(phi)
    b.cbranch(b.icmp_signed("<", iv, end), loop, done)
    b.position_at_end(loop)
    out = body(b, iv, list(carried))
    nxt = b.add(iv, _i64(1), flags=("nsw",))
    latch = b.block
    iv.add_incoming(nxt, latch)
    for phi, v in zip(carried, out):
        phi.add_incoming(v, latch)
    b.branch(head)
    b.position_at_end(done)
    return list(carried)


def _group_dot(b: Builder, shape: QuantizedShape, x_rows: Sequence[Value],
               q_rows: Sequence[Value], k0: Value, length: int) -> list[list[Value]]:
    """Per weight row c and input row r: sum over k in [k0, k0 + length) of
    x_r[k] * q_c[k], each q converted in registers once for all rows (``k0``
    is a multiple of the group size, so even at 4 bits). Indexed [c][r]."""
    nr = len(x_rows)
    zeros = [ir.Constant(F32, 0.0)] * (nr * len(q_rows))

    def load_x(row: Value, k: Value) -> Value:
        return b.load(b.gep(row, [k], source_etype=F32, inbounds=True), typ=F32)

    def load_q(q_row: Value, i: Value) -> Value:
        return b.load(b.gep(q_row, [i], source_etype=I8, inbounds=True), typ=I8)

    def fma(acc: Value, x: Value, w: Value) -> Value:
        return b.fadd(acc, b.fmul(x, w, flags=REDUCTION), flags=REDUCTION)

    def split(flat: list[Value]) -> list[list[Value]]:
        return [flat[c * nr:(c + 1) * nr] for c in range(len(q_rows))]

    if shape.bits == 8:
        def body8(b: Builder, k: Value, acc: list[Value]) -> list[Value]:
            xs = [load_x(row, k) for row in x_rows]
            out: list[Value] = []
            for c, q_row in enumerate(q_rows):
                w = b.sitofp(load_q(q_row, k), F32)
                out += [fma(a, x, w) for a, x in zip(acc[c * nr:(c + 1) * nr], xs)]
            return out
        return split(_loop(b, k0, b.add(k0, _i64(length)), zeros, body8, "k"))

    def nibbles(byte: Value) -> tuple[Value, Value]:
        wide = b.zext(byte, I32)
        lo = b.sub(b.and_(wide, ir.Constant(I32, 15)), ir.Constant(I32, 8))
        hi = b.sub(b.lshr(wide, ir.Constant(I32, 4)), ir.Constant(I32, 8))
        return b.sitofp(lo, F32), b.sitofp(hi, F32)

    def body4(b: Builder, j: Value, acc: list[Value]) -> list[Value]:
        k = b.shl(j, _i64(1))
        k1 = b.add(k, _i64(1))
        xs = [(load_x(row, k), load_x(row, k1)) for row in x_rows]
        out: list[Value] = []
        for c, q_row in enumerate(q_rows):
            lo, hi = nibbles(load_q(q_row, j))
            out += [fma(fma(a, x0, lo), x1, hi)
                    for a, (x0, x1) in zip(acc[c * nr:(c + 1) * nr], xs)]
        return out

    j0 = b.lshr(k0, _i64(1))
    totals = split(_loop(b, j0, b.add(j0, _i64(length // 2)), zeros, body4, "j"))
    if length % 2:  # odd K: the last byte holds one value (its high nibble is padding)
        last = b.add(k0, _i64(length - 1))
        xs = [load_x(row, last) for row in x_rows]
        for c, q_row in enumerate(q_rows):
            lo, _ = nibbles(load_q(q_row, b.add(j0, _i64(length // 2))))
            totals[c] = [fma(t, x, lo) for t, x in zip(totals[c], xs)]
    return totals


VEC = ir.VectorType(F32, LANES)
BYTES = ir.VectorType(I8, LANES)
WORDS = ir.VectorType(I32, LANES)


def chunk_elements(bits: int) -> int:
    """Elements of K one vector step covers: 16 bytes of integers (16 int8
    values, or 32 int4 ones)."""
    return LANES if bits == 8 else 2 * LANES


def vector_chunks(shape: QuantizedShape, length: int) -> int:
    """Whole vector steps in a group of ``length`` (int4: only where every
    group starts on a 32-element boundary, the layout of the permuted input)."""
    if shape.bits == 4 and shape.group_size % chunk_elements(4):
        return 0
    return length // chunk_elements(shape.bits)


def _splat(b: Builder, value: Value, typ: ir.VectorType) -> Value:
    vec = b.insert_element(ir.Constant(typ, ir.Undefined), value, ir.Constant(I32, 0))
    return b.shuffle_vector(vec, ir.Constant(typ, ir.Undefined),
                            ir.Constant(ir.VectorType(I32, typ.count), [0] * typ.count))


def _vector_group_dot(b: Builder, shape: QuantizedShape, xv_rows: Sequence[Value],
                      q_rows: Sequence[Value], k0: Value, chunks: int) -> list[list[Value]]:
    """Per weight row c and input row r ([c][r]), a vector of partial sums over
    the first ``chunks`` whole vector steps of the group at ``k0``. Each step
    loads the rows' 16-float slices once for all weight rows and each weight
    row's 16 bytes of integers once for all input rows, widens and converts
    them in registers: every (c, r) pair is an accumulator chain of its own,
    so a GEMV (one input row) over several weight rows keeps several
    independent FMA chains in flight. At 4 bits the low nibbles multiply the
    row's even elements and the high ones its odd elements: ``xv_rows`` are
    the rows permuted so that each 32-element chunk holds its 16 even
    elements, then its 16 odd ones (``permute_for_int4``), so no shuffle is
    needed."""
    nr = len(xv_rows)
    zeros = [ir.Constant(VEC, [0.0] * LANES)] * (nr * len(q_rows))
    step = chunk_elements(shape.bits)

    def load_x(row: Value, k: Value) -> Value:
        return b.load(b.gep(row, [k], source_etype=F32, inbounds=True), typ=VEC, align=4)

    def fma(acc: Value, x: Value, w: Value) -> Value:
        return b.fadd(acc, b.fmul(x, w, flags=REDUCTION), flags=REDUCTION)

    def body(b: Builder, c: Value, acc: list[Value]) -> list[Value]:
        k = b.add(k0, b.mul(c, _i64(step)))
        byte = k if shape.bits == 8 else b.lshr(k, _i64(1))
        k_odd = b.add(k, _i64(LANES))
        xs = [load_x(row, k) for row in xv_rows]
        xs_odd = [load_x(row, k_odd) for row in xv_rows] if shape.bits == 4 else []
        ahead = _i64(PREFETCH_AHEAD * shape.row_bytes)
        for q_row in q_rows:  # the same bytes of a row further on (16 B a step)
            _prefetch(b, b.gep(q_row, [b.add(byte, ahead)], source_etype=I8, inbounds=False))
        out: list[Value] = []
        for ci, q_row in enumerate(q_rows):
            mine = acc[ci * nr:(ci + 1) * nr]
            raw = b.load(b.gep(q_row, [byte], source_etype=I8, inbounds=True), typ=BYTES,
                         align=1)
            if shape.bits == 8:
                w = b.sitofp(b.sext(raw, WORDS), VEC)
                out += [fma(a, x, w) for a, x in zip(mine, xs)]
                continue
            wide = b.zext(raw, WORDS)
            eight = ir.Constant(WORDS, [8] * LANES)
            lo = b.sitofp(b.sub(b.and_(wide, ir.Constant(WORDS, [15] * LANES)), eight), VEC)
            hi = b.sitofp(b.sub(b.lshr(wide, ir.Constant(WORDS, [4] * LANES)), eight), VEC)
            out += [fma(fma(a, x0, lo), x1, hi) for a, x0, x1 in zip(mine, xs, xs_odd)]
        return out

    flat = _loop(b, _i64(0), _i64(chunks), zeros, body, "c")
    return [flat[ci * nr:(ci + 1) * nr] for ci in range(len(q_rows))]


PREFETCH_AHEAD = 4
"""Weight rows ahead of the current ones that a kernel prefetches (software
prefetch: a GEMV reads each weight byte once, from DRAM, and the hardware
prefetcher alone left one thread at about half of torch's f32 GEMV
bandwidth)."""


def _prefetch(b: Builder, address: Value) -> None:
    """``llvm.prefetch`` of ``address`` for reading into all cache levels."""
    module = b.block.module
    name = "llvm.prefetch.p0"
    fn = module.globals.get(name)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR, I32, I32, I32]), name=name)
    b.call(fn, [address, ir.Constant(I32, 0), ir.Constant(I32, 3), ir.Constant(I32, 1)])


def _reduce(b: Builder, vec: Value) -> Value:
    """Sum of a vector's lanes (a halving tree)."""
    width = LANES
    while width > 1:
        width //= 2
        typ = ir.VectorType(I32, width)
        low = b.shuffle_vector(vec, vec, ir.Constant(typ, list(range(width))))
        high = b.shuffle_vector(vec, vec, ir.Constant(typ, list(range(width, 2 * width))))
        vec = b.fadd(low, high, flags=REDUCTION)
    return b.extract_element(vec, ir.Constant(I32, 0))


ROW_BLOCK = 4
"""Input rows computed together per weight row (its integers converted once for all)."""

CHANNEL_ACCUMULATORS = 4
"""Independent (weight row, input row) accumulator chains a kernel keeps in
flight: with fewer than :data:`ROW_BLOCK` input rows (a decode step's GEMV
has one) it computes this many output channels together, each with its own
chain, so the FMA latency of one chain does not bound the loop (one chain
per channel ran a 768 x 768 int8 GEMV at about 5 G multiply-adds/s)."""


def channel_block(m: int) -> int:
    """Output channels computed together for ``m`` input rows."""
    return max(1, CHANNEL_ACCUMULATORS // max(1, min(m, ROW_BLOCK)))


@dataclass(frozen=True)
class _Channels:
    """The output channels one piece of the kernel computes, and its pointers."""

    shape: QuantizedShape
    x: Value
    xv: Value
    y: Value
    ns: Sequence[Value]
    q_rows: Sequence[Value]
    s_rows: Sequence[Value]


def _scaled(b: Builder, acc: list[Value], parts: list[list[Value]],
            scales: Sequence[Value], count: int, vector: bool) -> list[Value]:
    """acc[c * count + r] + parts[c][r] * scales[c], for every channel c and row r."""
    out: list[Value] = []
    for c, scale in enumerate(scales):
        factor = _splat(b, scale, VEC) if vector else scale
        out += [b.fadd(a, b.fmul(p, factor, flags=REDUCTION), flags=REDUCTION)
                for a, p in zip(acc[c * count:(c + 1) * count], parts[c])]
    return out


def _group(b: Builder, ch: _Channels, x_rows: Sequence[Value], xv_rows: Sequence[Value],
           gi: Value, acc: list[Value], length: int) -> list[Value]:
    """One group of K: acc holds per (channel, row) a vector and a scalar
    accumulator; each gets its partial sums over the group times the group's
    scale of its channel."""
    shape, count = ch.shape, len(x_rows)
    pairs = len(ch.ns) * count
    k0 = b.mul(gi, _i64(shape.group_size))
    scales = [b.load(b.gep(s_row, [gi], source_etype=F32, inbounds=True), typ=F32)
              for s_row in ch.s_rows]
    chunks = vector_chunks(shape, length)
    done = chunks * chunk_elements(shape.bits)
    vecs, scalars = acc[:pairs], acc[pairs:]
    if chunks:
        parts = _vector_group_dot(b, shape, xv_rows, ch.q_rows, k0, chunks)
        vecs = _scaled(b, vecs, parts, scales, count, vector=True)
    if length > done:  # the scalar rest of the group
        parts = _group_dot(b, shape, x_rows, ch.q_rows, b.add(k0, _i64(done)), length - done)
        scalars = _scaled(b, scalars, parts, scales, count, vector=False)
    return vecs + scalars


def _rows(b: Builder, ch: _Channels, m0: Value, count: int) -> None:
    """Output rows m0 .. m0 + count - 1 of the channels ``ch``."""
    shape = ch.shape
    ms = [b.add(m0, _i64(r)) for r in range(count)]
    x_rows = [b.gep(ch.x, [b.mul(m, _i64(shape.k))], source_etype=F32, inbounds=True)
              for m in ms]
    xv_rows = [b.gep(ch.xv, [b.mul(m, _i64(shape.k))], source_etype=F32, inbounds=True)
               for m in ms]
    pairs = len(ch.ns) * count  # accumulators, channel-major: [c * count + r]
    full, tail = divmod(shape.k, shape.group_size)
    init = [ir.Constant(VEC, [0.0] * LANES)] * pairs + [ir.Constant(F32, 0.0)] * pairs
    acc = _loop(b, _i64(0), _i64(full), init,
                lambda b, gi, acc: _group(b, ch, x_rows, xv_rows, gi, acc, shape.group_size), "g")
    if tail:  # the shorter last group of a ragged K
        acc = _group(b, ch, x_rows, xv_rows, _i64(full), acc, tail)
    totals = [b.fadd(_reduce(b, v), t, flags=REDUCTION) for v, t in zip(acc[:pairs], acc[pairs:])]
    for c, n in enumerate(ch.ns):
        for m, value in zip(ms, totals[c * count:(c + 1) * count]):
            out = b.gep(ch.y, [b.add(b.mul(m, _i64(shape.n)), n)], source_etype=F32,
                        inbounds=True)
            b.store(value, out)


def _channels(b: Builder, shape: QuantizedShape, args: Sequence[Value], n0: Value,
              width: int) -> None:
    """Output channels n0 .. n0 + width - 1, all input rows."""
    x, xv, q, scales, y = args
    ns = [b.add(n0, _i64(c)) for c in range(width)]
    ch = _Channels(shape, x, xv, y, ns,
                   [b.gep(q, [b.mul(n, _i64(shape.row_bytes))], source_etype=I8, inbounds=True)
                    for n in ns],
                   [b.gep(scales, [b.mul(n, _i64(shape.groups))], source_etype=F32,
                          inbounds=True) for n in ns])
    blocks, rest = divmod(shape.m, ROW_BLOCK)

    def block(b: Builder, i: Value, _: list[Value]) -> list[Value]:
        _rows(b, ch, b.mul(i, _i64(ROW_BLOCK)), ROW_BLOCK)
        return []

    if blocks:
        _loop(b, _i64(0), _i64(blocks), [], block, "mb")
    if rest:
        _rows(b, ch, _i64(blocks * ROW_BLOCK), rest)


def kernel_ir(shape: QuantizedShape) -> str:
    """LLVM IR text of the kernel for ``shape`` and its OpenMP entry."""
    translator = ModuleTranslator(ModuleOp([]))
    fn = ir.Function(translator.llmod, ir.FunctionType(ir.VoidType(), [PTR] * 5 + [I64, I64]),
                     name=KERNEL)
    for arg, name in zip(fn.args, ("x", "xv", "q", "scales", "y", "lo", "hi")):
        arg.name = name
        if name in ("x", "xv", "q", "scales", "y"):
            arg.add_attribute("noalias")  # x and xv may be one buffer: both only read
    fn.attributes.add("nounwind")
    translator.functions[KERNEL] = fn
    b = builder(fn.append_basic_block("entry"))
    *pointers, lo, hi = fn.args
    width = channel_block(shape.m)
    start = lo
    if width > 1:  # [lo, hi) in blocks of `width` channels, then one at a time
        nblocks = b.sdiv(b.sub(hi, lo), _i64(width))

        def channel_block_body(b: Builder, i: Value, _: list[Value]
                               ) -> list[Value]:
            _channels(b, shape, pointers, b.add(lo, b.mul(i, _i64(width))), width)
            return []
        _loop(b, _i64(0), nblocks, [], channel_block_body, "nb")
        start = b.add(lo, b.mul(nblocks, _i64(width)))

    def one_channel(b: Builder, n: Value, _: list[Value]) -> list[Value]:
        _channels(b, shape, pointers, n, 1)
        return []
    _loop(b, start, hi, [], one_channel, "n")
    b.ret_void()
    translator.emit_omp_entry(fn)
    return str(translator.llmod)


_compile_lock = threading.Lock()


@lru_cache(maxsize=256)
def compiled_kernel(shape: QuantizedShape) -> JitModule:
    """The JIT-compiled kernel for ``shape`` (one per distinct shape per process)."""
    with _compile_lock:
        return compile_llvm_ir(kernel_ir(shape))


def shape_of_op(op: g.QuantizedMatmulOp) -> QuantizedShape:
    x = shape_of(op.input.type)
    return QuantizedShape(m=numel(x[:-1]), k=x[-1], n=shape_of(op.qweight.type)[0],
                          bits=op.bits.value.data, group_size=op.group_size.value.data)


MIN_CHUNK_MACS = 1 << 15
"""Multiply-adds per thread chunk below which splitting over threads does not pay."""


def host_step(op: g.QuantizedMatmulOp, index: Callable[[SSAValue], int],
              result_slot: int, threads: int, openmp: bool = True,
              stats: LaunchStats | None = None) -> Callable[[list], None]:
    """The runtime step for ``op``: env slots of x, q, scales in, a fresh
    result tensor out (float32 input; other float dtypes go through f32).
    ``openmp``: run on torch's OpenMP team where there is one (else irc's
    pool); ``stats`` counts the launches."""
    from irc.backends.llvm.threads import detect_openmp, parallel_launcher
    shape = shape_of_op(op)
    jit = compiled_kernel(shape)
    fn = jit.function(KERNEL, 5, True)
    omp_fn = jit.omp_function(KERNEL, 5) if openmp and detect_openmp() is not None else None
    min_channels = max(-(-MIN_CHUNK_MACS // max(shape.m * shape.k, 1)), 1)
    launch = parallel_launcher(fn, omp_fn, shape.n, min_channels, threads, stats)
    xi, qi, si = index(op.input), index(op.qweight), index(op.scales)
    out_shape = shape_of(op.result.type)
    dtype = dtype_of(op.result.type)
    f32 = torch.float32
    permute = shape.bits == 4 and vector_chunks(shape, shape.group_size) > 0

    def step(env: list) -> None:
        x = env[xi].to(f32).contiguous()
        xv = permute_for_int4(x.view(shape.m, shape.k)) if permute else x
        q, scales = env[qi].contiguous(), env[si].contiguous()
        y = torch.empty(out_shape, dtype=f32)
        if shape.n and shape.m:
            launch([x.data_ptr(), xv.data_ptr(), q.data_ptr(), scales.data_ptr(), y.data_ptr()])
        env[result_slot] = y if dtype == f32 else y.to(dtype)
    return step
