"""Loops-level IR (xDSL standard dialects) -> LLVM IR text, built with llvmlite.

Input contract (what the kernel->loops lowering must produce)
-------------------------------------------------------------
A ``builtin.module`` holding one or more ``func.func @name(%a: memref<..>, ...,
%out: memref<..>)``.  Entry points have **no results**: inputs first, outputs as
trailing memref arguments written in place.  (Helper funcs reached through
``func.call`` may also take/return scalars.)

* Memrefs have static shapes and the default (row-major, contiguous) layout,
  except a flat ``memref<?xT>`` (a buffer of a symbolic size: its element
  count never enters the address arithmetic). A kernel compiled for every
  binding of symbolic sizes takes them as trailing ``index`` arguments
  (``irc.sizes``, after the memrefs) and computes loop bounds from them.
  Element types: f32, f64, f16, bf16, i1 (stored as one byte, like torch.bool),
  i8, i32, i64, index (i64).  Loop variables are ``index``.
* Body ops: ``scf.for`` (optionally with ``iter_args``/``scf.yield``),
  ``scf.if`` (with or without results), ``arith.*`` (constant, float/int
  arithmetic, all cmpf/cmpi predicates, select, casts), ``math.*``,
  ``memref.load``/``memref.store``, ``memref.alloca`` (small scratch, placed on
  the stack of the calling thread), ``memref.alloc``/``memref.dealloc`` (heap
  scratch via malloc/free; ``memref<?xT>`` with its element count as operand), ``func.call`` to a func of the same module,
  ``func.return``.
* f16/bf16 arithmetic is expected to be wrapped in ``arith.extf``/``truncf`` by
  the lowering; math ops on f16/bf16 are nevertheless computed in f32.
  bf16 is carried in registers as its raw ``i16`` bits; f32->bf16 rounds to
  nearest-even (NaN stays NaN), exactly like torch.
* Parallelism: one top-level ``scf.for`` of a func (no iter_args) may carry the
  unit attribute ``irc.parallel``.  That func then takes two extra trailing
  ``i64`` arguments ``(lo, hi)`` and runs only iterations ``k`` in
  ``[lo, hi)`` of that loop (iteration k has ``iv = lb + k*step``).  Everything
  else at the top level of that func runs in every chunk, so it must be free of
  side effects (constants, index math).  :func:`kernel_signatures` reports the
  loop's static trip count.  Such a func also gets an OpenMP entry
  ``void @<name>.omp(ptr.., i64 %lo, i64 %hi, i32 %nthreads)`` that runs
  ``[lo, hi)`` in one ``GOMP_parallel`` region, one contiguous chunk per
  thread; it calls ``__irc_GOMP_parallel``, ``__irc_omp_get_thread_num`` and
  ``__irc_omp_get_num_threads``, which ``threads.link_openmp`` binds to the
  OpenMP runtime torch uses.

ABI of the generated functions
------------------------------
``void @name(ptr noalias %arg0, ..., [i64 %lo, i64 %hi])``: every memref is one
pointer to its first element; element offsets are computed from the static
row-major strides.  ``noalias`` is placed on every pointer: **the runtime
guarantees that the buffers passed to one call are distinct and do not
overlap** (an output never aliases an input).

Floating point
--------------
Results follow IEEE semantics: NaN and +-Inf propagate as in eager PyTorch (no
``nnan``/``ninf``/``afn``).  Float arithmetic carries ``contract`` (FMA
formation).  The accumulating ``fadd``/``fmul`` of an ``scf.for`` iter_args
reduction additionally carries ``reassoc nsz`` so that LLVM can vectorise the
reduction (summation order then differs from a sequential sum, within torch's
tolerance).  f32 ``exp``, ``exp2``, ``log``, ``log2``, ``tanh``, ``erf`` are
inline, branch-free, vectorisable polynomial approximations (a few ulp, exact
special values; see ``translate_math``); other math ops use LLVM intrinsics or
libm.
"""


from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Iterable, Mapping
from typing import Callable

from llvmlite import ir
from xdsl.dialects import builtin, func, scf
from xdsl.dialects.builtin import DYNAMIC_INDEX, MemRefType, ModuleOp
from xdsl.ir import Operation, SSAValue

from irc.errors import BackendError

from . import translate_arith, translate_math
from .llvm_types import (  # noqa: F401  (the type helpers, used here and re-exported)
    F16,
    F32,
    F64,
    I1,
    I8,
    I16,
    I32,
    I64,
    PTR,
    Builder,
    Value,
    builder,
    mem_type,
    reg_type,
    unsupported,
    where,
)

PARALLEL_ATTR = "irc.parallel"
SIZES_ATTR = "irc.sizes"  # lower_to_loops.SIZES_ATTR
TRIP_ATTR = "irc.trip"  # lower_to_loops.TRIP_ATTR
OMP_SUFFIX = ".omp"  # @<kernel>.omp: the kernel's OpenMP entry (see ModuleTranslator)
OMP_BODY_SUFFIX = ".omp.body"
# the OpenMP runtime entry points, bound for the JIT by threads.link_openmp
OMP_PARALLEL = "__irc_GOMP_parallel"
OMP_THREAD_NUM = "__irc_omp_get_thread_num"
OMP_NUM_THREADS = "__irc_omp_get_num_threads"


@dataclass(frozen=True)
class KernelSignature:
    """What a caller needs to know to invoke one generated function."""

    name: str
    n_memrefs: int
    parallel: bool
    trip_count: int | None  # static trip count of the parallel loop, if any
    sizes: tuple[str, ...] = ()
    """The size symbols of the trailing ``index`` arguments (after the memrefs)."""
    trip_expr: str | None = None
    """The parallel loop's trip count as a size expression, when it is symbolic."""


def find_parallel_loop(fn: func.FuncOp) -> scf.ForOp | None:
    """The top-level ``scf.for`` of ``fn`` marked ``irc.parallel``, if any."""
    loops = [op for op in fn.body.block.ops
             if isinstance(op, scf.ForOp) and PARALLEL_ATTR in op.attributes]
    if len(loops) > 1:
        raise BackendError(f"llvm backend: func @{fn.sym_name.data} has "
                           f"{len(loops)} loops marked {PARALLEL_ATTR}; at most one")
    if loops and loops[0].iter_args:
        raise unsupported(loops[0], f"a loop marked {PARALLEL_ATTR} cannot have iter_args")
    return loops[0] if loops else None


def _const_int(value: SSAValue) -> int | None:
    owner = value.owner
    if isinstance(owner, Operation) and owner.name == "arith.constant":
        attr = owner.properties.get("value")
        if isinstance(attr, builtin.IntegerAttr):
            return attr.value.data
    return None


def static_trip_count(loop: scf.ForOp) -> int | None:
    lb, ub, step = (_const_int(v) for v in (loop.lb, loop.ub, loop.step))
    if lb is None or ub is None or step is None or step <= 0:
        return None
    return max(0, -(-(ub - lb) // step))


def kernel_signatures(module: ModuleOp | Iterable[Operation]) -> dict[str, KernelSignature]:
    """Per func (of a module, or of a list of funcs): argument count, whether
    it is parallel and its trip count."""
    sigs: dict[str, KernelSignature] = {}
    for fn in (module.ops if isinstance(module, ModuleOp) else module):
        if not isinstance(fn, func.FuncOp):
            continue
        loop = find_parallel_loop(fn)
        n = sum(isinstance(t, MemRefType) for t in fn.function_type.inputs.data)
        trip = static_trip_count(loop) if loop is not None else None
        sizes_attr = fn.attributes.get(SIZES_ATTR)
        sizes = tuple(a.data for a in sizes_attr.data) if isinstance(sizes_attr, builtin.ArrayAttr) \
            else ()  # type: ignore[union-attr]
        expr = loop.attributes.get(TRIP_ATTR) if loop is not None else None
        trip_expr = expr.data if isinstance(expr, builtin.StringAttr) and trip is None else None
        if loop is not None and trip is None and trip_expr is None:
            raise BackendError(f"llvm backend: parallel loop of @{fn.sym_name.data} has neither a "
                               f"static trip count nor {TRIP_ATTR}")
        sigs[fn.sym_name.data] = KernelSignature(fn.sym_name.data, n, loop is not None, trip,
                                                 sizes, trip_expr)
    return sigs


def reduction_ops(loop: scf.ForOp) -> set[int]:
    """ids of the ops that accumulate into an iter_arg (get ``reassoc``)."""
    block = loop.body.block
    yield_op = block.last_op
    marked: set[int] = set()
    if not isinstance(yield_op, scf.YieldOp):
        return marked
    for acc, val in zip(block.args[1:], yield_op.operands):
        owner = val.owner
        if (isinstance(owner, Operation) and owner.name in ("arith.addf", "arith.mulf")
                and owner.parent_block() is block and acc in owner.operands):
            marked.add(id(owner))
    return marked


class FuncEmitter:
    """Emits the body of one ``func.func`` into an ``ir.Function``."""

    def __init__(self, mt: "ModuleTranslator", fn: func.FuncOp, llfn: ir.Function) -> None:
        self.mt = mt
        self.fn = fn
        self.llfn = llfn
        self.values: dict[SSAValue, Value] = {}
        self.reductions: set[int] = set()
        entry = llfn.append_basic_block("entry")
        self.alloca_builder = builder(entry)
        body = llfn.append_basic_block("body")
        self.b = builder(body)
        self.parallel_loop = find_parallel_loop(fn)
        self.math = translate_math.MathEmitter(self)
        self.handlers: dict[str, Callable[..., None]] = {  # each takes its op class
            "scf.for": self.emit_for,
            "scf.if": self.emit_if,
            "memref.load": self.emit_load,
            "memref.store": self.emit_store,
            "memref.alloca": self.emit_alloca,
            "memref.alloc": self.emit_alloc,
            "memref.dealloc": self.emit_dealloc,
            "func.call": self.emit_call,
            "func.return": self.emit_return,
        }
        self.handlers.update(translate_arith.handlers(self))
        self.handlers.update(self.math.handlers())

    # -- helpers -------------------------------------------------------
    def get(self, value: SSAValue) -> Value:
        return self.values[value]

    def intrinsic(self, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
        return self.mt.declare(name, ret, args)

    # -- driver --------------------------------------------------------
    def emit(self) -> None:
        block = self.fn.body.block
        for arg, llarg in zip(block.args, self.llfn.args):
            if arg.name_hint:
                llarg.name = arg.name_hint
            self.values[arg] = llarg
        self.emit_block_ops(block)
        self.alloca_builder.branch(self.llfn.basic_blocks[1])

    def emit_block_ops(self, block) -> None:
        for op in block.ops:
            if isinstance(op, scf.YieldOp):
                continue
            handler = self.handlers.get(op.name)
            if handler is None:
                raise unsupported(op)
            handler(op)
            self.name_results(op)

    def name_results(self, op: Operation) -> None:
        """Give LLVM values the MLIR name hints (readable `irc translate` output)."""
        for res in op.results:
            val = self.values.get(res)
            if res.name_hint and isinstance(val, ir.Instruction) and (not val.name
                                                                       or val.name[0] == "."):
                val.name = res.name_hint

    # -- control flow --------------------------------------------------
    def loop_bounds(self, op: scf.ForOp) -> tuple[Value, Value, Value]:
        """Bounds of ``op``; for the parallel loop, those of chunk [lo, hi)."""
        lb, ub, step = self.get(op.lb), self.get(op.ub), self.get(op.step)
        if op is not self.parallel_loop:
            return lb, ub, step
        lo, hi = self.llfn.args[-2], self.llfn.args[-1]
        b = self.b
        smax = self.intrinsic("llvm.smax.i64", I64, [I64, I64])
        smin = self.intrinsic("llvm.smin.i64", I64, [I64, I64])
        one = ir.Constant(lb.type, 1)
        trips = b.sdiv(b.add(b.sub(ub, lb), b.sub(step, one)), step)
        trips = b.call(smax, [trips, ir.Constant(I64, 0)], name="trip_count")
        lo = b.call(smin, [b.call(smax, [lo, ir.Constant(I64, 0)]), trips])
        hi = b.call(smin, [b.call(smax, [hi, lo]), trips])
        new_lb = b.add(lb, b.mul(lo, step), name="chunk_lb")
        new_ub = b.add(lb, b.mul(hi, step), name="chunk_ub")
        return new_lb, new_ub, step

    def emit_for(self, op: scf.ForOp) -> None:
        b = self.b
        lb, ub, step = self.loop_bounds(op)
        pre = b.block
        header = self.llfn.append_basic_block("for.header")
        body = self.llfn.append_basic_block("for.body")
        exit_ = self.llfn.append_basic_block("for.exit")
        b.branch(header)
        b.position_at_end(header)
        block = op.body.block
        iv = b.phi(lb.type, name=block.args[0].name_hint or "iv")
        iv.add_incoming(lb, pre)
        phis = []
        for arg, init in zip(block.args[1:], op.iter_args):
            phi = b.phi(reg_type(arg.type), name=arg.name_hint or "acc")
            phi.add_incoming(self.get(init), pre)
            phis.append(phi)
        b.cbranch(b.icmp_signed("<", iv, ub), body, exit_)
        b.position_at_end(body)
        self.values[block.args[0]] = iv
        for arg, phi in zip(block.args[1:], phis):
            self.values[arg] = phi
        saved = self.reductions
        self.reductions = reduction_ops(op)
        self.emit_block_ops(block)
        self.reductions = saved
        yielded = [self.get(v) for v in block.last_op.operands] if isinstance(
            block.last_op, scf.YieldOp) else []
        nxt = b.add(iv, step, name="iv.next", flags=("nsw",))
        latch = b.block
        b.branch(header)
        iv.add_incoming(nxt, latch)
        for phi, val in zip(phis, yielded):
            phi.add_incoming(val, latch)
        b.position_at_end(exit_)
        for res, phi in zip(op.results, phis):
            self.values[res] = phi

    def emit_if(self, op: scf.IfOp) -> None:
        b = self.b
        cond = self.get(op.cond)
        then_bb = self.llfn.append_basic_block("if.then")
        has_else = bool(op.false_region.blocks)
        else_bb = self.llfn.append_basic_block("if.else") if has_else else None
        merge = self.llfn.append_basic_block("if.end")
        b.cbranch(cond, then_bb, else_bb or merge)
        incoming = []
        for region, bb in ((op.true_region, then_bb), (op.false_region, else_bb)):
            if bb is None:
                continue
            b.position_at_end(bb)
            block = region.block
            self.emit_block_ops(block)
            vals = [self.get(v) for v in block.last_op.operands] if isinstance(
                block.last_op, scf.YieldOp) else []
            incoming.append((vals, b.block))
            b.branch(merge)
        b.position_at_end(merge)
        for i, res in enumerate(op.results):
            phi = b.phi(reg_type(res.type), name=res.name_hint or "")
            for vals, bb in incoming:
                phi.add_incoming(vals[i], bb)
            self.values[res] = phi

    # -- memory --------------------------------------------------------
    def element_ptr(self, memref: SSAValue, indices: list[SSAValue]) -> Value:
        mtype = memref.type
        assert isinstance(mtype, MemRefType)
        shape = mtype.get_shape()
        if any(d < 0 for d in shape) and len(shape) != 1:
            raise BackendError(f"llvm backend: dynamic memref shape {mtype} is unsupported "
                               "(only a flat memref<?xT>)")
        b = self.b
        offset: Value = ir.Constant(I64, 0)
        stride = 1
        for dim, idx in reversed(list(zip(shape, indices))):
            term = self.get(idx)
            if stride != 1:
                term = b.mul(term, ir.Constant(I64, stride), flags=("nsw",))
            offset = term if stride == 1 else b.add(offset, term, flags=("nsw",))
            stride *= dim
        return b.gep(self.get(memref), [offset], inbounds=True,
                     source_etype=mem_type(mtype.element_type))

    def emit_load(self, op: Operation) -> None:
        memref, *indices = op.operands
        assert isinstance(memref.type, MemRefType)
        etype = memref.type.element_type
        ptr = self.element_ptr(memref, indices)
        mty = mem_type(etype)
        val = self.b.load(ptr, typ=mty)
        if reg_type(etype) == I1:
            val = self.b.icmp_unsigned("!=", val, ir.Constant(I8, 0))
        self.values[op.results[0]] = val

    def emit_store(self, op: Operation) -> None:
        value, memref, *indices = op.operands
        ptr = self.element_ptr(memref, indices)
        val = self.get(value)
        if val.type == I1:
            val = self.b.zext(val, I8)
        self.b.store(val, ptr)

    def _num_elements(self, op: Operation) -> tuple[MemRefType, int]:
        mtype = op.results[0].type
        assert isinstance(mtype, MemRefType)
        if op.operands:
            raise unsupported(op, "dynamic sizes")
        n = 1
        for d in mtype.get_shape():
            n *= d
        return mtype, n

    def emit_alloca(self, op: Operation) -> None:
        mtype, n = self._num_elements(op)
        ty = mem_type(mtype.element_type)
        ptr = self.alloca_builder.alloca(ty, size=ir.Constant(I64, n),
                                         name=op.results[0].name_hint or "scratch")
        ptr.align = 32  # pyright: ignore[reportAttributeAccessIssue]  # llvmlite declares AllocaInstr.align as None
        self.values[op.results[0]] = ptr

    def emit_alloc(self, op: Operation) -> None:
        malloc = self.mt.declare("malloc", PTR, [I64])
        mtype = op.results[0].type
        assert isinstance(mtype, MemRefType)
        if len(op.operands) == 1 and list(mtype.get_shape()) == [DYNAMIC_INDEX]:
            # memref<?xT> of a runtime element count (a scratch buffer of symbolic size)
            width = translate_arith.byte_size(mem_type(mtype.element_type))
            smax = self.intrinsic("llvm.smax.i64", I64, [I64, I64])
            nbytes = self.b.call(smax, [self.b.mul(self.get(op.operands[0]), ir.Constant(I64, width)),
                                        ir.Constant(I64, 1)])
            self.values[op.results[0]] = self.b.call(malloc, [nbytes],
                                                     name=op.results[0].name_hint or "heap")
            return
        mtype, n = self._num_elements(op)
        nbytes = n * translate_arith.byte_size(mem_type(mtype.element_type))
        self.values[op.results[0]] = self.b.call(
            malloc, [ir.Constant(I64, max(nbytes, 1))], name=op.results[0].name_hint or "heap")

    def emit_dealloc(self, op: Operation) -> None:
        free = self.mt.declare("free", ir.VoidType(), [PTR])
        self.b.call(free, [self.get(op.operands[0])])

    # -- calls ---------------------------------------------------------
    def emit_call(self, op: Operation) -> None:
        ref = op.properties["callee"]
        assert isinstance(ref, builtin.SymbolRefAttr)
        callee = ref.string_value()
        target = self.mt.functions.get(callee)
        if target is None:
            raise unsupported(op, f"callee @{callee} is not a func of this module")
        if self.mt.parallel.get(callee):
            raise unsupported(op, f"callee @{callee} has a parallel loop")
        call = self.b.call(target, [self.get(v) for v in op.operands])
        if len(op.results) == 1:
            self.values[op.results[0]] = call
        elif op.results:
            for i, res in enumerate(op.results):
                self.values[res] = self.b.extract_value(call, i)

    def emit_return(self, op: Operation) -> None:
        vals = [self.get(v) for v in op.operands]
        if not vals:
            self.b.ret_void()
        elif len(vals) == 1:
            self.b.ret(vals[0])
        else:
            agg = ir.Constant(self.llfn.function_type.return_type, ir.Undefined)
            for i, v in enumerate(vals):
                agg = self.b.insert_value(agg, v, i)
            self.b.ret(agg)


class ModuleTranslator:
    """Declares every func, then emits their bodies."""

    def __init__(self, module: ModuleOp | Iterable[Operation],
                 names: Mapping[str, str] | None = None) -> None:
        self.ops = list(module.ops if isinstance(module, ModuleOp) else module)
        self.names = dict(names or {})  # func name -> the name its LLVM function gets
        self.llmod = ir.Module(name="irc_kernels")
        self.functions: dict[str, ir.Function] = {}
        self.parallel: dict[str, bool] = {}

    def declare(self, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
        existing = self.llmod.globals.get(name)
        if existing is not None:
            return existing
        return ir.Function(self.llmod, ir.FunctionType(ret, args), name=name)

    def function_type(self, fn: func.FuncOp, parallel: bool) -> ir.FunctionType:
        args = [reg_type(t) for t in fn.function_type.inputs.data]
        if parallel:
            args += [I64, I64]
        outs = [reg_type(t) for t in fn.function_type.outputs.data]
        ret: ir.Type = ir.VoidType() if not outs else (
            outs[0] if len(outs) == 1 else ir.LiteralStructType(outs))
        return ir.FunctionType(ret, args)

    def translate(self) -> str:
        funcs = []
        for op in self.ops:
            if not isinstance(op, func.FuncOp):
                raise unsupported(op, "only func.func may appear at module level")
            if op.body.blocks and len(op.body.blocks) != 1:
                raise unsupported(op, "funcs must have a single block")
            name = self.names.get(op.sym_name.data, op.sym_name.data)
            parallel = bool(op.body.blocks) and find_parallel_loop(op) is not None
            llfn = ir.Function(self.llmod, self.function_type(op, parallel), name=name)
            llfn.attributes.add("nounwind")
            for arg, t in zip(llfn.args, op.function_type.inputs.data):
                if isinstance(t, MemRefType):
                    arg.add_attribute("noalias")
            if parallel:
                llfn.args[-2].name, llfn.args[-1].name = "lo", "hi"
            self.functions[name] = llfn
            self.parallel[name] = parallel
            funcs.append((op, llfn))
        for op, llfn in funcs:
            if op.body.blocks:
                FuncEmitter(self, op, llfn).emit()
        for op, llfn in funcs:
            if op.body.blocks and self.parallel[llfn.name]:
                self.emit_omp_entry(llfn)
        return str(self.llmod)

    def emit_omp_entry(self, kernel: ir.Function) -> None:
        """``@<kernel>.omp(ptrs.., i64 lo, i64 hi, i32 nthreads)``: one OpenMP region.

        The arguments are packed into a stack struct handed to
        ``GOMP_parallel(@<kernel>.omp.body, ctx, nthreads, 0)``; the body gives
        thread ``t`` of a team of ``n`` the ``t``-th of ``n`` contiguous,
        near-equal chunks of ``[lo, hi)`` (the first ``len % n`` chunks one
        iteration longer, like ``threads.split``) and calls the kernel on it.
        """
        name = kernel.name
        for suffix in (".omp", ".omp.body"):
            if name + suffix in self.functions:
                raise BackendError(f"llvm backend: func @{name + suffix} clashes with the "
                                   f"OpenMP entry of parallel func @{name}")
        ctx_type = ir.LiteralStructType([a.type for a in kernel.args])
        body_fn = ir.Function(self.llmod, ir.FunctionType(ir.VoidType(), [PTR]),
                              name=name + OMP_BODY_SUFFIX)
        body_fn.linkage = "internal"
        body_fn.attributes.add("nounwind")
        b = builder(body_fn.append_basic_block("entry"))
        ctx = body_fn.args[0]
        fields = [b.load(b.gep(ctx, [ir.Constant(I32, 0), ir.Constant(I32, i)],
                               source_etype=ctx_type), typ=t)
                  for i, t in enumerate(ctx_type.elements)]
        *ptrs, lo, hi = fields
        tid = b.sext(b.call(self.declare(OMP_THREAD_NUM, I32, []), []), I64, name="tid")
        team = b.sext(b.call(self.declare(OMP_NUM_THREADS, I32, []), []), I64, name="team")
        smax = self.declare("llvm.smax.i64", I64, [I64, I64])
        smin = self.declare("llvm.smin.i64", I64, [I64, I64])
        team = b.call(smax, [team, ir.Constant(I64, 1)])
        length = b.call(smax, [b.sub(hi, lo), ir.Constant(I64, 0)], name="length")
        base, extra = b.sdiv(length, team), b.srem(length, team)
        start = b.add(lo, b.add(b.mul(tid, base), b.call(smin, [tid, extra])), name="start")
        longer = b.zext(b.icmp_signed("<", tid, extra), I64)
        end = b.add(start, b.add(base, longer), name="end")
        # not inlined: the kernel is already an exported function of its own
        b.call(kernel, [*ptrs, start, end], attrs=("noinline",))
        b.ret_void()

        entry_fn = ir.Function(self.llmod, ir.FunctionType(
            ir.VoidType(), [a.type for a in kernel.args] + [I32]), name=name + OMP_SUFFIX)
        entry_fn.attributes.add("nounwind")
        for arg, kernel_arg in zip(entry_fn.args, kernel.args):
            arg.name = kernel_arg.name
        entry_fn.args[-1].name = "nthreads"
        b = builder(entry_fn.append_basic_block("entry"))
        ctx = b.alloca(ctx_type, name="ctx")
        for i, arg in enumerate(entry_fn.args[:-1]):
            b.store(arg, b.gep(ctx, [ir.Constant(I32, 0), ir.Constant(I32, i)]))
        parallel = self.declare(OMP_PARALLEL, ir.VoidType(), [PTR, PTR, I32, I32])
        b.call(parallel, [body_fn, ctx, entry_fn.args[-1], ir.Constant(I32, 0)])
        b.ret_void()


def translate_module(module: ModuleOp) -> str:
    """LLVM IR text for a loops-level module (see the module docstring)."""
    return ModuleTranslator(module).translate()


def translate_function(fn: func.FuncOp, name: str) -> str:
    """LLVM IR text of the module :func:`translate_module` makes of ``fn``
    alone, renamed ``name`` (``fn`` stays where it is, unchanged)."""
    return ModuleTranslator([fn], {fn.sym_name.data: name}).translate()
