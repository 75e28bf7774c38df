"""The CPU host runtime: runs a loops-level ``@main`` schedule.

:class:`HostProgram` walks ``@main`` once, at compile time, and turns it into a
flat list of Python closures over a value table (no IR is looked at per call):

* ``graph.weight``: read the live tensor from the weights mapping at call time
  (in-place updates are seen) and check it against its declared type;
* ``graph.constant``: a tensor made once at compile time;
* ``host.launch`` of a movement-only kernel (``irc.view``) whose result only
  feeds library calls: a torch view of the input (no copy, e.g. a weight
  transpose before a matmul);
* other ``host.launch``: allocate the outputs (``torch.empty``, or a view of a
  buffer slot from :func:`irc.passes.memory_plan.plan_memory` for
  intermediates; large buffers get transparent huge pages, see :func:`empty`), then call the native kernel with the data pointers; a
  kernel whose outer loop is marked ``irc.parallel`` is split over threads
  with :func:`irc.backends.llvm.threads.run_parallel`;
* extern ops (matmul, conv, pooling, gather, index_select, embedding, concat,
  anything else left on the host): torch's own kernels (``torch.matmul`` with
  ``out=`` into the planned buffer), made contiguous for the kernels after.

Safety: before anything native runs, every input's dtype, shape, strides
(contiguity) and device are checked against what was compiled, and every
weight when it is read; a mismatch raises :class:`irc.InputMismatchError`
saying what was expected and what came. Buffers handed to one kernel call are
distinct: outputs are fresh or planned slots that never alias the call's
inputs (the memory plan's guarantee).

Calls of one executable are serialised with a lock, because the planned
intermediate buffers are allocated once and reused across calls.
"""

from __future__ import annotations

import ctypes
import json
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache

import torch
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue

from irc.backends.llvm.jit import JitModule
from irc.backends.llvm.threads import run_parallel
from irc.backends.llvm.translate import KernelSignature
from irc.errors import BackendError, InputMismatchError
from irc.ir import graph as g
from irc.ir.host import LaunchOp
from irc.ir.interpreter import HANDLERS, dense_to_tensor
from irc.ir.types import dtype_of, numel, shape_of
from irc.passes.lower_to_loops import VIEW_ATTR
from irc.passes.memory_plan import MemoryPlan

# ops that accept any strides (torch library calls): a movement-only kernel
# feeding only these runs as a torch view instead of a copy
EXTERN_USERS = (g.MatmulOp, g.ConvOp, g.MaxPoolOp, g.AvgPoolOp, g.AdaptiveAvgPoolOp, g.GatherOp,
                g.IndexSelectOp, g.EmbeddingOp, g.ConcatOp)

Env = list
Step = Callable[[Env], None]

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
                 threads: int, min_parallel_work: int) -> None:
        main = next((op for op in module.ops if isinstance(op, func.FuncOp)
                     and op.sym_name.data == "main"), None)
        if main is None or not main.body.blocks:
            raise BackendError("cpu backend: the module has no func.func @main")
        self.jit = jit
        self.signatures = signatures
        self.weights = weights
        self.plan = plan
        self.threads = threads
        self.min_parallel_work = min_parallel_work
        self.slot_buffers: list[torch.Tensor | None] = [None] * (len(plan.slots) if plan else 0)
        self.lock = threading.Lock()
        self.index: dict[SSAValue, int] = {}
        self.views = {f.sym_name.data: json.loads(f.attributes[VIEW_ATTR].data)
                      for f in module.ops if isinstance(f, func.FuncOp) and VIEW_ATTR in f.attributes}
        block = main.body.block
        self.input_specs = [TensorSpec.of(a) for a in block.args]
        self.input_names = [a.name_hint or f"#{i}" for i, a in enumerate(block.args)]
        for a in block.args:
            self._slot(a)
        self.steps: list[Step] = []
        self.outputs: list[int] = []
        for op in block.ops:
            self._compile_op(op)

    # -- value table --------------------------------------------------------------
    def _slot(self, value: SSAValue) -> int:
        if value not in self.index:
            self.index[value] = len(self.index)
        return self.index[value]

    def _alloc(self, value: SSAValue) -> Callable[[], torch.Tensor]:
        """How to get the buffer of a result: a planned slot's view, or torch.empty."""
        spec = TensorSpec.of(value)
        slot = self.plan.assignment.get(value) if self.plan is not None else None
        if slot is None:
            return lambda: empty(spec.shape, spec.dtype)
        nbytes = numel(spec.shape) * spec.dtype.itemsize
        slot_bytes = self.plan.slots[slot]  # type: ignore[union-attr]
        buffers = self.slot_buffers

        def from_slot() -> torch.Tensor:
            buf = buffers[slot]
            if buf is None:
                buf = empty((max(slot_bytes, 1),), torch.uint8)
                buffers[slot] = buf
            return buf[:nbytes].view(spec.dtype).view(spec.shape)
        return from_slot

    # -- ops ----------------------------------------------------------------------
    def _compile_op(self, op: Operation) -> None:
        if isinstance(op, func.ReturnOp):
            self.outputs = [self.index[v] for v in op.operands]
        elif isinstance(op, g.WeightOp):
            self.steps.append(self._weight(op))
        elif isinstance(op, g.ConstantOp):
            tensor, out = dense_to_tensor(op.value).contiguous(), self._slot(op.result)
            self.steps.append(lambda env: env.__setitem__(out, tensor))
        elif isinstance(op, LaunchOp):
            self.steps.append(self._launch(op))
        elif isinstance(op, g.MatmulOp):
            self.steps.append(self._matmul(op))
        elif type(op) in HANDLERS:
            self.steps.append(self._extern(op))
        else:
            raise BackendError(f"cpu backend: cannot run {op.name} in the host schedule "
                               f"(at {getattr(op, 'location', '?')})")

    def _weight(self, op: g.WeightOp) -> Step:
        name, spec, out = op.sym_name.data, TensorSpec.of(op.result), self._slot(op.result)
        weights = self.weights

        def step(env: Env) -> None:
            if name not in weights:
                raise InputMismatchError(f"weight \"{name}\" is missing (have: {sorted(weights)})")
            t = weights[name]
            _check(spec, t, f"weight \"{name}\"")
            env[out] = t
        return step

    def _launch(self, op: LaunchOp) -> Step:
        name = op.callee.string_value()
        view = self.views.get(name)
        # the source must not live in a planned slot: the plan does not know the
        # view aliases it and could hand that slot to the library call's result
        in_slot = bool(op.args) and self.plan is not None and op.args[0] in self.plan.assignment
        if view is not None and not in_slot and all(isinstance(u.operation, EXTERN_USERS)
                                                    for r in op.res for u in r.uses):
            return self._view(op, view)
        sig = self.signatures.get(name)
        if sig is None:
            raise BackendError(f"cpu backend: host.launch of unknown kernel @{name}")
        if sig.n_memrefs != len(op.args) + len(op.res):
            raise BackendError(f"cpu backend: @{name} takes {sig.n_memrefs} buffers, "
                               f"launch passes {len(op.args) + len(op.res)}")
        fn = self.jit.function(name, sig.n_memrefs, sig.parallel)
        ins = [self.index[v] for v in op.args]
        outs = [self._slot(r) for r in op.res]
        allocs = [self._alloc(r) for r in op.res]
        trip = sig.trip_count or 0
        parallel = sig.parallel and self.threads != 1
        if sig.parallel:
            per_iteration = max(max((numel(shape_of(r.type)) for r in op.res), default=1)
                                // max(trip, 1), 1)
            min_iterations = max(-(-self.min_parallel_work // per_iteration), 1)
            # at most `threads` chunks (run_parallel never uses more than torch's thread count)
            min_iterations = max(min_iterations, -(-trip // max(self.threads, 1)))

        def step(env: Env) -> None:
            results = [a() for a in allocs]
            ptrs = [env[i].data_ptr() for i in ins] + [r.data_ptr() for r in results]
            if parallel:
                run_parallel(fn, ptrs, trip, min_iterations)
            elif sig.parallel:
                fn(*ptrs, 0, trip)
            else:
                fn(*ptrs)
            for i, r in zip(outs, results):
                env[i] = r
        return step

    def _view(self, op: LaunchOp, steps: list[list]) -> Step:
        """A movement-only kernel whose result only feeds library calls: a torch view."""
        src, out = self.index[op.args[0]], self._slot(op.res[0])

        def apply(t: torch.Tensor) -> torch.Tensor:
            for kind, *args in steps:
                if kind == "permute":
                    t = t.permute(args[0])
                elif kind == "reshape":
                    t = t.reshape(args[0])
                elif kind == "expand":
                    t = t.expand(args[0])
                else:
                    dim, start, end, step = args
                    t = t[(slice(None),) * dim + (slice(start, end, step),)]
            return t

        def step(env: Env) -> None:
            env[out] = apply(env[src])
        return step

    def _matmul(self, op: g.MatmulOp) -> Step:
        a, b, out = self.index[op.lhs], self.index[op.rhs], self._slot(op.result)
        alloc = self._alloc(op.result)

        def step(env: Env) -> None:
            result = alloc()
            torch.matmul(env[a], env[b], out=result)
            env[out] = result
        return step

    def _extern(self, op: Operation) -> Step:
        handler = HANDLERS[type(op)]
        ins = [self.index[v] for v in op.operands]
        out = self._slot(op.results[0])
        spec = TensorSpec.of(op.results[0])

        def step(env: Env) -> None:
            result = handler(op, [env[i] for i in ins])
            if result.dtype != spec.dtype:
                result = result.to(spec.dtype)
            env[out] = result.contiguous()
        return step

    # -- call -----------------------------------------------------------------------
    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        if len(inputs) != len(self.input_specs):
            raise InputMismatchError(f"expected {len(self.input_specs)} inputs, got {len(inputs)}")
        for i, (spec, t) in enumerate(zip(self.input_specs, inputs)):
            _check(spec, t, f"input {i} ({self.input_names[i]})")
        with self.lock:
            env: Env = [None] * len(self.index)
            env[:len(inputs)] = inputs
            for step in self.steps:
                step(env)
            return [env[i] for i in self.outputs]
