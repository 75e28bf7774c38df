"""The CPU host runtime: runs a loops-level ``@main`` schedule.

:class:`HostProgram` walks ``@main`` once, at compile time, and turns it into a
flat list of Python closures over a value table (no IR is looked at per call).
What it allocates is what :func:`irc.passes.memory_plan.plan_memory` says:

* planned intermediates (kernel outputs, matmul ``out=``) are fixed views into
  one arena allocated once (large buffers get transparent huge pages, see
  :func:`empty`); a kernel's ctypes argument list is built once, with the
  pointers of fixed tensors filled in, so a call only fills in the pointers
  of inputs, weights and fresh outputs;
* ``graph.weight``: read from the weights mapping on every call; its identity,
  ``_version`` and data pointer form a key. *Weight-derived* ops (kernels and
  externs computing from weights and constants only, see
  :func:`~irc.passes.memory_plan.weight_derived_values`) run once per key and
  their results are kept, so in-place weight updates are seen and unchanged
  weights cost nothing;
* ``graph.constant``: a tensor made once at compile time;
* a movement-only kernel (:func:`~irc.passes.memory_plan.view_only_kernel`):
  a torch view of its input (made once when the input is a fixed tensor);
* other ``host.launch``: the native kernel on the data pointers; a kernel
  whose outer loop is marked ``irc.parallel`` is split over torch's OpenMP
  team (or irc's pool: ``parallel_runtime="pool"``) by
  :func:`irc.backends.llvm.threads.parallel_launcher`, counted in ``stats``;
* extern ops: torch's own kernels (``torch.matmul`` with ``out=`` into the
  arena; others, ``graph.aten_call`` included, return fresh tensors, made
  contiguous, dropped after their last use); ``graph.cache_update`` writes
  the new positions into the input tensor itself (``index_copy_``: no copy
  of the cache); ``@main``'s results are fresh tensors on every call.

Safety: before anything native runs, every input's dtype, shape, strides
(contiguity) and device are checked against what was compiled, and every
weight whenever its key changes; a mismatch raises
:class:`irc.InputMismatchError` saying what was expected and what came.
Buffers handed to one kernel call are distinct: outputs are fresh or planned
ranges that never overlap the call's inputs (the memory plan's guarantee).

Calls of one executable are serialised with a lock, because the arena and
the cached weight-derived values are shared across calls.
"""

from __future__ import annotations

import ctypes
import json
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue

from irc.backends.llvm.jit import JitModule
from irc.backends.llvm.threads import LaunchStats, detect_openmp, parallel_launcher
from irc.library_calls import apply_view, planned_view
from irc.openmp import OPENMP_MIN_WORK, min_iterations
from irc.backends.llvm.translate import KernelSignature
from irc.cache import CacheConfig
from irc.errors import BackendError, InputMismatchError
from irc.ir import graph as g
from irc.ir.host import LaunchOp
from irc.ir.kernel import find_main
from irc.ir.interpreter import HANDLERS, dense_to_tensor, run_aten_call
from irc.ir.types import dtype_of, numel, shape_of
from irc.backends.llvm.lowering.lower_to_loops import VIEW_ATTR
from irc.passes.memory_plan import (MemoryPlan, functions_of, view_ops, weight_derived_values,
                                    writes_into_buffer)

POOL_MIN_WORK = 1 << 20
"""Elements per chunk worth a thread of irc's fallback pool."""

Env = list
Step = Callable[[Env], object]  # a step's result, if any, is not used

HUGE_PAGE = 2 << 20
_MADV_HUGEPAGE = 14


@lru_cache(maxsize=1)
def _madvise() -> Callable[[int, int, int], int] | None:
    """libc ``madvise`` (Linux), or None where it is not available."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.madvise
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def empty(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """``torch.empty``; buffers of several MiB are backed by transparent huge pages.

    Why: a fresh large output is first touched by the kernel, and with 4 KiB
    pages the page faults cost several times the kernel itself (measured 150 ms
    vs 40 ms for a 64 MiB output on the 2-core dev machine). ``MADV_HUGEPAGE``
    is advisory: it changes no contents and is ignored where unsupported.
    """
    t = torch.empty(shape, dtype=dtype)
    nbytes = t.numel() * t.element_size()
    madvise = _madvise() if nbytes >= 2 * HUGE_PAGE else None
    if madvise is not None:
        ptr = t.data_ptr()
        start = -(-ptr // HUGE_PAGE) * HUGE_PAGE
        end = (ptr + nbytes) // HUGE_PAGE * HUGE_PAGE
        if end > start:
            madvise(start, end - start, _MADV_HUGEPAGE)
    return t


@dataclass(frozen=True)
class TensorSpec:
    """What a tensor handed to native code must look like."""

    dtype: torch.dtype
    shape: tuple[int, ...]

    @classmethod
    def of(cls, value: SSAValue) -> "TensorSpec":
        return cls(dtype_of(value.type), shape_of(value.type))

    def describe(self) -> str:
        return f"a contiguous {self.dtype} tensor of shape {list(self.shape)} on cpu"

    def fits(self, t: object) -> bool:
        """Fast check (the per-call path): contiguous, right dtype/shape, on the CPU."""
        return (isinstance(t, torch.Tensor) and t.dtype == self.dtype and t.shape == self.shape
                and t.device.type == "cpu" and t.is_contiguous())

    def problem(self, t: object) -> str | None:
        """None if ``t`` fits, else what is wrong with it."""
        if self.fits(t):
            return None
        if not isinstance(t, torch.Tensor):
            return f"got {type(t).__name__}"
        wrong = []
        if t.device.type != "cpu":
            wrong.append(f"device {t.device}")
        if t.dtype != self.dtype:
            wrong.append(f"dtype {t.dtype}")
        if tuple(t.shape) != self.shape:
            wrong.append(f"shape {list(t.shape)}")
        if not wrong and not t.is_contiguous():
            wrong.append(f"non-contiguous strides {list(t.stride())}")
        if not wrong:
            return None
        return "got " + ", ".join(wrong)


def _check(spec: TensorSpec, t: object, what: str) -> None:
    if spec.fits(t):
        return
    problem = spec.problem(t)
    if problem is not None:
        raise InputMismatchError(f"{what}: expected {spec.describe()}; {problem}")


class HostProgram:
    """``@main`` of a loops-level module as a list of closures (see module docstring)."""

    def __init__(self, module: ModuleOp, jit: JitModule, signatures: Mapping[str, KernelSignature],
                 weights: Mapping[str, torch.Tensor], plan: MemoryPlan | None,
                 threads: int, min_parallel_work: int, parallel_runtime: str = "openmp",
                 binding: Mapping[str, int] | None = None,
                 functions: Mapping[str, func.FuncOp] | None = None,
                 cache: CacheConfig | None = None) -> None:
        main = find_main(module, "cpu backend", BackendError)
        if not main.body.blocks:
            raise BackendError("cpu backend: the module has no func.func @main")
        self.jit = jit
        self.signatures = signatures
        self.weights = weights
        self.plan = plan
        self.threads = threads
        self.min_parallel_work = min_parallel_work
        self.parallel_runtime = parallel_runtime
        self.binding = dict(binding or {})
        """Values of the size symbols (kernels compiled for every binding take them)."""
        self.cache = cache  # where per-shape measurements are kept (attention.py)
        self.stats = LaunchStats()
        self.lock = threading.Lock()
        self.index: dict[SSAValue, int] = {}
        block = main.body.block
        ops = list(block.ops)
        functions = self.functions = dict(functions) if functions is not None \
            else functions_of(module)
        self.view_ops = view_ops(ops, functions)
        self.derived = plan.derived if plan is not None else weight_derived_values(ops)
        self.input_specs = [TensorSpec.of(a) for a in block.args]
        self.input_names = [a.name_hint or f"#{i}" for i, a in enumerate(block.args)]
        for a in block.args:
            self._slot(a)
        # the arena: allocated once (torch.empty commits no pages until
        # touched); each planned value is a fixed view at its offset
        self.arena = empty((max(plan.arena_bytes if plan else 0, 1),), torch.uint8)
        self.fixed: dict[int, torch.Tensor] = {}  # env index -> tensor the same every call
        for value, offset in (plan.assignment.items() if plan else ()):
            spec = TensorSpec.of(value)
            nbytes = numel(spec.shape) * spec.dtype.itemsize
            self.fixed[self._slot(value)] = \
                self.arena[offset:offset + nbytes].view(spec.dtype).view(spec.shape)
        self.weight_reads: list[tuple[str, TensorSpec, int]] = []
        self.derived_steps: list[Step] = []  # weight-derived: run once per weight version
        self.steps: list[Step] = []
        self.step_ops: list[Operation] = []  # the op of each step
        self.outputs: list[int] = []
        for op in ops:
            self._compile_op(op)
        self._add_releases()
        self.template: list | None = None  # env with weights, constants, derived, fixed
        self.weights_key: tuple | None = None
        self.derived_runs = 0  # how many times the weight-derived values were computed

    # -- value table --------------------------------------------------------------
    def _slot(self, value: SSAValue) -> int:
        if value not in self.index:
            self.index[value] = len(self.index)
        return self.index[value]

    def _alloc(self, value: SSAValue) -> Callable[[], torch.Tensor] | None:
        """None where the result is a planned buffer (already in the env), else
        how to allocate it (fresh per call, or once for weight-derived values)."""
        if self._slot(value) in self.fixed:
            return None
        spec = TensorSpec.of(value)
        return lambda: empty(spec.shape, spec.dtype)

    def _add_releases(self) -> None:
        """Drop per-call tensors the runtime allocated fresh (library results,
        views) after their last use, as the memory plan assumes."""
        if self.plan is None:
            return
        position = {op: i for i, op in enumerate(self.step_ops)}
        release: dict[int, list[int]] = {}
        for value in list(self.plan.library) + list(self.plan.views):
            if value in self.derived or value not in self.index:
                continue
            uses = [position[u.operation] for u in value.uses if u.operation in position]
            if uses:
                release.setdefault(max(uses), []).append(self.index[value])
        for i, indices in release.items():
            step = self.steps[i]

            def with_release(env: Env, step: Step = step, indices: list[int] = indices) -> None:
                step(env)
                for j in indices:
                    env[j] = None
            self.steps[i] = with_release

    # -- ops ----------------------------------------------------------------------
    def _compile_op(self, op: Operation) -> None:
        if isinstance(op, func.ReturnOp):
            self.outputs = [self.index[v] for v in op.operands]
            return
        if isinstance(op, g.WeightOp):
            self.weight_reads.append((op.sym_name.data, TensorSpec.of(op.result),
                                      self._slot(op.result)))
            return
        if isinstance(op, g.ConstantOp):
            self.fixed[self._slot(op.result)] = dense_to_tensor(op.value).contiguous()
            return
        if isinstance(op, LaunchOp):
            step = self._launch(op)
        elif isinstance(op, g.MatmulOp):
            step = self._matmul(op)
        elif isinstance(op, (g.ConvOp, g.ConvEpilogueOp)) and (step := self._conv(op)) is not None:
            pass
        elif isinstance(op, g.AttentionOp) and (step := self._attention(op)) is not None:
            pass
        elif isinstance(op, g.QuantizedMatmulOp):  # fused dequantize-matmul kernel
            from irc.backends.llvm.quantized_matmul import host_step
            step = host_step(op, self.index.__getitem__, self._slot(op.result), self.threads,
                             self.parallel_runtime == "openmp", self.stats)
        elif isinstance(op, g.AtenCallOp):
            step = self._aten_call(op)
        elif isinstance(op, g.CacheUpdateOp):
            step = self._cache_update(op)
        elif type(op) in HANDLERS:
            step = self._extern(op)
        else:
            raise BackendError(f"cpu backend: cannot run {op.name} in the host schedule "
                               f"(at {getattr(op, 'location', '?')})")
        if step is None:  # a view of a planned buffer: fixed, nothing to run
            return
        derived = any(r in self.derived for r in op.results)
        if derived:
            self.derived_steps.append(step)
        else:
            self.steps.append(step)
            self.step_ops.append(op)

    def _launch(self, op: LaunchOp) -> Step | None:
        name = op.callee.string_value()
        if op in self.view_ops:
            return self._view(op, self._resolve_sizes(json.loads(self.jit_view_steps(op))))
        sig = self.signatures.get(name)
        if sig is None:
            raise BackendError(f"cpu backend: host.launch of unknown kernel @{name}")
        if sig.n_memrefs != len(op.args) + len(op.res):
            raise BackendError(f"cpu backend: @{name} takes {sig.n_memrefs} buffers, "
                               f"launch passes {len(op.args) + len(op.res)}")
        fn = self.jit.function(name, sig.n_memrefs, sig.parallel, len(sig.sizes))
        trip = self._trip_count(sig)
        launch: Callable[[list[int]], None] | None = None
        if sig.parallel and self.threads != 1:
            launch = self._parallel_launcher(op, sig, fn, trip)
        parallel = launch is not None
        args, dynamic, fresh = self._launch_args(op)
        args += self._size_args(sig)
        tail = (0, trip) if sig.parallel and not parallel else ()
        args_tail = args + list(tail)

        if launch is not None:
            run = launch

            def step(env: Env) -> None:
                for pos, i in dynamic:
                    args[pos] = env[i].data_ptr()
                for pos, i, alloc in fresh:
                    t = env[i] = alloc()
                    args[pos] = t.data_ptr()
                run(args)
            return step
        if not dynamic and not fresh:
            fixed_args = tuple(args_tail)
            return lambda env: fn(*fixed_args)

        def call(env: Env) -> None:
            for pos, i in dynamic:
                args_tail[pos] = env[i].data_ptr()
            for pos, i, alloc in fresh:
                t = env[i] = alloc()
                args_tail[pos] = t.data_ptr()
            fn(*args_tail)
        return call

    def _launch_args(self, op: LaunchOp) -> tuple[
            list[int], list[tuple[int, int]], list[tuple[int, int, Callable[[], torch.Tensor]]]]:
        """A launch's argument list, built once: pointers of fixed tensors (planned
        buffers, constants) are filled in now; ``dynamic`` (argument position,
        env index) and ``fresh`` (position, env index, alloc) are filled per call."""
        values = list(op.args) + list(op.res)
        args: list[int] = [0] * len(values)
        dynamic: list[tuple[int, int]] = []
        fresh: list[tuple[int, int, Callable[[], torch.Tensor]]] = []
        for pos, v in enumerate(values):
            i = self._slot(v) if pos >= len(op.args) else self.index[v]
            if i in self.fixed:
                args[pos] = self.fixed[i].data_ptr()
            elif pos >= len(op.args):
                alloc = self._alloc(v)
                assert alloc is not None
                fresh.append((pos, i, alloc))
            else:
                dynamic.append((pos, i))
        return args, dynamic, fresh

    def _resolve_sizes(self, steps: list) -> list:
        """View steps with each symbolic size (a string) evaluated under the binding."""
        from irc.ir.symbols import evaluate, parse_dim

        def resolve(x: object) -> object:
            if isinstance(x, str) and x not in ("permute", "reshape", "expand", "slice"):
                return evaluate(parse_dim(x), self.binding)
            if isinstance(x, list):
                return [resolve(y) for y in x]
            return x
        return [resolve(step) for step in steps]

    def _size_args(self, sig: KernelSignature) -> list[int]:
        """The values of the kernel's size arguments under this program's binding."""
        try:
            return [self.binding[name] for name in sig.sizes]
        except KeyError as err:
            raise BackendError(f"cpu backend: @{sig.name} takes size {err}, which the call's "
                               "binding does not give") from None

    def _trip_count(self, sig: KernelSignature) -> int:
        if sig.trip_expr is None:
            return sig.trip_count or 0
        from irc.ir.symbols import evaluate, parse_dim
        return evaluate(parse_dim(sig.trip_expr), self.binding)

    def _parallel_launcher(self, op: LaunchOp, sig: KernelSignature, fn: Callable[..., None],
                           trip: int) -> Callable[[list[int]], None] | None:
        """How to split a parallel kernel over threads (None: it is too small to).

        A chunk must hold at least ``min_parallel_work`` elements of the
        largest output; the launch runs on torch's OpenMP team through the
        kernel's ``.omp`` entry, or on irc's pool where there is none or
        ``parallel_runtime`` is ``"pool"`` (see :mod:`irc.backends.llvm.threads`).
        """
        openmp = self.parallel_runtime == "openmp" and detect_openmp() is not None
        min_work = self.min_parallel_work or (OPENMP_MIN_WORK if openmp else POOL_MIN_WORK)
        least = min_iterations(trip, max((numel(shape_of(r.type)) for r in op.res), default=1),
                               min_work)
        if trip // least < 2:
            return None
        omp_fn = self.jit.omp_function(sig.name, sig.n_memrefs, len(sig.sizes)) if openmp else None
        return parallel_launcher(fn, omp_fn, trip, least, self.threads, self.stats)

    def jit_view_steps(self, op: LaunchOp) -> str:
        fn = self.functions[op.callee.string_value()]
        return fn.attributes[VIEW_ATTR].data  # type: ignore[attr-defined]

    def _view(self, op: LaunchOp, steps: list[list]) -> Step | None:
        """A movement-only kernel whose result only feeds library calls: a torch view."""
        src, out = self.index[op.args[0]], self._slot(op.res[0])
        if src in self.fixed:  # a view of a planned buffer or constant: made once
            view = planned_view(self.fixed[src], steps)
            if view is not None:
                self.fixed[out] = view
                return None

        def step(env: Env) -> None:
            env[out] = apply_view(env[src], steps)
        return step

    def _matmul(self, op: g.MatmulOp) -> Step:
        a, b, out = self.index[op.lhs], self.index[op.rhs], self._slot(op.result)
        alloc = self._alloc(op.result)
        if alloc is None:
            result = self.fixed[out]
            matmul = torch.matmul
            return lambda env: matmul(env[a], env[b], out=result)

        def step(env: Env) -> None:
            result = env[out] = alloc()
            torch.matmul(env[a], env[b], out=result)
        return step

    def _conv(self, op: g.ConvOp | g.ConvEpilogueOp) -> Step | None:
        """oneDNN with the weight packed once per version (None: the generic extern)."""
        from irc.backends.llvm.conv import conv_step
        bias = self.index[op.bias] if op.bias is not None else None
        other = getattr(op, "other", None)
        return conv_step(op, self.index[op.input], self.index[op.weight], bias,
                         self._slot(op.result), self.index[other] if other is not None else None)

    def _attention(self, op: g.AttentionOp) -> Step | None:
        """The matmul form where measured faster (None: torch's fused kernel)."""
        from irc.backends.llvm.attention import attention_step
        return attention_step(op, self.index[op.query], self.index[op.key],
                              self.index[op.value], self._slot(op.result), self.cache)

    def _aten_call(self, op: g.AtenCallOp) -> Step:
        """torch's op on the operands; its (fresh, contiguous) results."""
        ins = [self.index[v] for v in op.operands]
        outs = [self._slot(r) for r in op.results]
        callee, args = op.callee.data, op.args.data
        dtypes = [dtype_of(r.type) for r in op.results]

        def step(env: Env) -> None:
            results = run_aten_call(callee, args, dtypes, [env[i] for i in ins])
            for i, t in zip(outs, results):
                env[i] = t
        return step

    def _cache_update(self, op: g.CacheUpdateOp) -> Step:
        """Write the new positions into the caller's cache tensor (an input of
        the call, checked contiguous); the result is that tensor."""
        cache, index, values = (self.index[v] for v in op.operands)
        out, dim, long = self._slot(op.result), op.dim.value.data, torch.int64

        def step(env: Env) -> None:
            env[out] = env[cache].index_copy_(dim, env[index].to(long), env[values])
        return step

    def _extern(self, op: Operation) -> Step:
        ins = [self.index[v] for v in op.operands]
        out = self._slot(op.results[0])
        if out in self.fixed and writes_into_buffer(op):
            return self._extern_out(op, ins, self.fixed[out])
        handler = HANDLERS[type(op)]
        spec = TensorSpec.of(op.results[0])

        def step(env: Env) -> None:
            result = handler(op, [env[i] for i in ins])
            if result.dtype != spec.dtype:
                result = result.to(spec.dtype)
            env[out] = result.contiguous()
        return step

    def _extern_out(self, op: Operation, ins: list[int], result: torch.Tensor) -> Step:
        """A library call writing into its planned buffer (``out=``)."""
        long = torch.int64
        if isinstance(op, g.ConcatOp):
            dim, cat = op.dim.value.data, torch.cat
            return lambda env: cat([env[i] for i in ins], dim=dim, out=result)
        if isinstance(op, g.GatherOp):
            dim, a, b = op.dim.value.data, ins[0], ins[1]
            return lambda env: torch.gather(env[a], dim, env[b].to(long), out=result)
        if isinstance(op, g.IndexSelectOp):
            dim, a, b = op.dim.value.data, ins[0], ins[1]
            return lambda env: torch.index_select(env[a], dim, env[b].to(long), out=result)
        if isinstance(op, g.EmbeddingOp):  # rows of the table: index_select over flat indices
            table, idx = ins
            rows = result.view(-1, result.shape[-1])
            return lambda env: torch.index_select(env[table], 0, env[idx].reshape(-1).to(long),
                                                  out=rows)
        raise BackendError(f"cpu backend: no out= call for {op.name}")

    # -- weights ------------------------------------------------------------------
    def _weights_key(self) -> tuple | None:
        """Identity, version and storage of every weight read (None: cannot tell,
        e.g. a missing weight or an inference-mode tensor without a version)."""
        weights = self.weights
        try:
            return tuple((id(t), t._version, t.data_ptr())
                         for t in [weights[name] for name, _, _ in self.weight_reads])
        except (KeyError, AttributeError, RuntimeError, TypeError):
            return None

    def _refresh(self, key: tuple | None) -> list:
        """Check the weights, recompute the weight-derived values, rebuild the template."""
        weights = self.weights
        env: Env = [None] * len(self.index)
        for i, t in self.fixed.items():
            env[i] = t
        for name, spec, i in self.weight_reads:
            if name not in weights:
                raise InputMismatchError(f"weight \"{name}\" is missing (have: {sorted(weights)})")
            t = weights[name]
            _check(spec, t, f"weight \"{name}\"")
            env[i] = t
        for step in self.derived_steps:
            step(env)
        self.derived_runs += 1 if self.derived_steps else 0
        self.template, self.weights_key = env, key
        if key is None:  # not cacheable: recompute next call
            self.template, self.weights_key = None, None
        return env

    # -- call -----------------------------------------------------------------------
    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        return self.run(inputs, self.steps)

    def run(self, inputs: Sequence[torch.Tensor], steps: Sequence[Step]) -> list[torch.Tensor]:
        """One call, stepping through ``steps``: :attr:`steps` itself, or a copy
        whose entries wrap them one to one (the profiler's timed steps, see
        :mod:`irc.profile`); ``step_ops[i]`` is the op of ``steps[i]``."""
        specs = self.input_specs
        if len(inputs) != len(specs):
            raise InputMismatchError(f"expected {len(specs)} inputs, got {len(inputs)}")
        for i, spec in enumerate(specs):
            t = inputs[i]
            if not spec.fits(t):
                _check(spec, t, f"input {i} ({self.input_names[i]})")
        with self.lock:
            key = self._weights_key()
            template = self.template
            if template is None or key is None or key != self.weights_key:
                template = self._refresh(key)
            env = template.copy()
            env[:len(inputs)] = inputs
            for step in steps:
                step(env)
            return [env[i] for i in self.outputs]
