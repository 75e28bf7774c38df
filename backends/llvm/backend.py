"""The ``cpu`` backend (alias ``llvm``): loops-level modules -> native code + host runtime.

``LLVMBackend.compile`` takes a module after ``lower-to-loops``: each kernel
func (``irc.kernel``, over memrefs) is translated alone, in place, under one
canonical name (:func:`irc.backends.llvm.translate.translate_function`), so
identical kernels have identical LLVM IR; each distinct kernel is optimised
for the host CPU and compiled once, in worker processes when there are many
(:func:`irc.backends.llvm.jit.compile_kernels`); ``@main`` becomes a
:class:`~irc.backends.llvm.runtime.HostProgram`. With the compile cache
enabled, each kernel's object code is stored under a key made of its LLVM IR
text, the host CPU fingerprint, the irc version and the JIT's source, and
reused next time (by any model with that kernel).

The executable checks every input and weight before native code runs (see
:mod:`irc.backends.llvm.runtime`) and reports ``memory_plan`` (what the runtime
allocates: the arena of planned intermediates, ``peak_bytes`` per call, and
``weights_derived_bytes`` held once per weight version) and ``kernel_count``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from types import MappingProxyType

import torch
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp

from irc.backends.base import Backend, BackendOptions, Level
from irc.passes.pipeline import DEFAULT_STAGES
from irc.backends.llvm.jit import JitModule, compile_llvm_ir, host_cpu_fingerprint
from irc.backends.llvm.kernel_texts import (
    jit_source_digest,
    kernel_texts,
    lowered_kernels,
)
from irc.backends.llvm.runtime import HostProgram
from irc.backends.llvm.symbolic import SymbolicCPUExecutable
from irc.backends.llvm.threads import LaunchStats
from irc.backends.llvm.translate import kernel_signatures
from irc.cache import CacheConfig
from irc.errors import IrcError
from irc.ir.symbols import SymbolicShapeError, module_is_symbolic
from irc.passes.memory_plan import MemoryPlan, plan_memory

log = logging.getLogger("irc.backends.cpu")


@dataclass(frozen=True)
class LLVMOptions(BackendOptions):
    """Options of the ``cpu`` backend."""

    threads: int = 0
    """Most threads a parallel kernel uses: 0 = torch.get_num_threads(), 1 = serial
    (the shared pool never runs more than torch.get_num_threads() at once)."""
    min_parallel_work: int = 0
    """Smallest number of elements a thread's chunk of a parallel kernel gets;
    0 picks by how chunks are handed out: 16K on torch's OpenMP team (its
    workers are still spinning from torch's last region, the hand-off costs
    microseconds), 1M on irc's fallback pool (a wake-up costs tens of
    microseconds). Measured on the GPT and BERT blocks, 2 cores: BERT 7.9 ->
    7.1 ms with OpenMP at 16K; the pool at 16K is slower than at 1M."""
    parallel_runtime: Literal["openmp", "pool"] = "openmp"
    """Who runs the chunks of a parallel kernel: ``"openmp"``, torch's own OpenMP
    team where torch runs on one (irc's pool otherwise); ``"pool"``, irc's
    thread pool always."""
    cache: CacheConfig | bool = field(default_factory=CacheConfig)
    """Compile cache of object code (a CacheConfig, or True/False)."""
    compile_workers: int = 0
    """Processes compiling LLVM code at once (this one included): 0 = one per
    CPU core, 1 = only this process. Used when at least 8 kernels miss the cache."""
    host_schedule: Literal["python", "native"] = "python"
    """Who runs ``@main``: ``"python"``, closures calling kernels and torch's library
    calls; ``"native"``, the generated C schedule of exported packages, one call per
    invocation, irc's own C library calls (needs ``cc``; see ``native_jit.py``)."""

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0, got {self.threads}")
        if self.compile_workers < 0:
            raise ValueError(f"compile_workers must be >= 0, got {self.compile_workers}")
        if self.min_parallel_work < 0:
            raise ValueError(f"min_parallel_work must be >= 0, got {self.min_parallel_work}")
        if self.host_schedule not in ("python", "native"):
            raise ValueError(f"host_schedule must be 'python' or 'native', "
                             f"got {self.host_schedule!r}")
        if self.parallel_runtime not in ("openmp", "pool"):
            raise ValueError(f"parallel_runtime must be 'openmp' or 'pool', "
                             f"got {self.parallel_runtime!r}")
        if isinstance(self.cache, bool):
            object.__setattr__(self, "cache", CacheConfig(enabled=self.cache))


class CPUExecutable:
    """A compiled program: call with @main's inputs, get its outputs."""

    def __init__(self, program: HostProgram, llvm_ir: str, loops_ir: str | Callable[[], str],
                 memory_plan: MemoryPlan | None, kernel_count: int) -> None:
        self.program = program
        self.llvm_ir = llvm_ir
        self._loops_ir = loops_ir
        self.memory_plan = memory_plan
        self.kernel_count = kernel_count

    @property
    def loops_ir(self) -> str:
        """The kernels at the loops level, as MLIR text (printed when first asked for)."""
        if callable(self._loops_ir):
            self._loops_ir = self._loops_ir()
        return self._loops_ir

    @property
    def stats(self) -> LaunchStats:
        """How its parallel kernels ran (``stats.launches["openmp"]``, ...)."""
        return self.program.stats

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        return self.program(*inputs)


def jit_kernels(llvm_ir: str, cache: CacheConfig) -> JitModule:
    """Native code for ``llvm_ir``, through the compile cache when enabled."""
    try:
        from irc import __version__
        from irc.cache import make_key, open_cache
        from irc.backends.llvm.jit import emit_object, load_object
        store = open_cache(cache)
    except (ImportError, IrcError) as err:  # the cache is an optimisation only
        log.warning("compile cache unavailable: %s", err)
        store = None
    if store is None:
        return compile_llvm_ir(llvm_ir)
    # Keyed on the LLVM IR itself (not the loops IR), so a change to the
    # translator can never reuse stale object code; jit.py's source stands
    # for the optimisation pipeline applied to it.
    key = make_key(llvm_ir, "cpu", host_cpu_fingerprint(), __version__, jit_source_digest())
    blob = store.get(key)
    if blob is not None:
        try:
            return load_object(blob)
        except Exception as err:  # a bad entry is rebuilt, never trusted
            log.warning("compile cache entry unusable (%s); recompiling", err)
    blob = emit_object(llvm_ir)
    store.put(key, blob)
    return load_object(blob)


def readable_llvm_ir(texts: dict[str, str]) -> str:
    """The kernels' LLVM IR under their own names, one module per kernel (what
    ``executable.llvm_ir`` and ``irc translate --to llvm`` show)."""
    from irc.backends.llvm.jit import CANONICAL_NAME
    return "\n".join(text.replace(CANONICAL_NAME, name) for name, text in texts.items())


def jit_kernel_texts(texts: dict[str, str], cache: CacheConfig, workers: int) -> JitModule:
    """Native code for the kernels, one cache entry per distinct kernel."""
    import os

    from irc import __version__
    from irc.backends.llvm.jit import compile_kernels
    try:
        from irc.cache import open_cache
        store = open_cache(cache)
    except IrcError as err:  # the cache is an optimisation only
        log.warning("compile cache unavailable: %s", err)
        store = None
    key_parts = ("cpu", host_cpu_fingerprint(), __version__, jit_source_digest())
    return compile_kernels(texts, store, key_parts, workers or os.cpu_count() or 1)


class LLVMBackend(Backend):
    """Native CPU code through LLVM (llvmlite), host schedule in Python."""

    name = "cpu"
    level = Level.LOOPS
    Options = LLVMOptions
    description = "LLVM JIT for the host CPU (scf loops -> LLVM IR -> native), torch for externs"
    # swap-skinny-matmul: small-batch linear layers as (W @ x^T)^T, measured
    # faster on MKL's AVX2 sgemm; patch-matmul: patch-tiling convolutions as a
    # matmul (cheaper than a oneDNN call on small images); CPU library
    # heuristics, so only here.
    pipeline = MappingProxyType({**DEFAULT_STAGES,
                                 "kernel": "patch-matmul,channels-last,conv-epilogue,"
                                           "swap-skinny-matmul,fuse,memory-plan"})
    versions_weights = True  # HostProgram keys weight-derived values on each weight's version
    compiles_symbolic = True
    """The kernel and loops stages and :meth:`compile` take symbolic sizes
    (one native compile for every binding: :mod:`irc.backends.llvm.symbolic`);
    what they cannot handle raises SymbolicShapeError and the driver compiles
    per binding instead."""

    def compile(self, module: ModuleOp, weights: Mapping[str, torch.Tensor],
                options: BackendOptions) -> CPUExecutable | SymbolicCPUExecutable:
        if not isinstance(options, LLVMOptions):
            options = LLVMOptions()
        symbolic = module_is_symbolic(module)
        if symbolic and options.host_schedule == "native":
            raise SymbolicShapeError("cpu backend: host_schedule='native' needs static sizes")
        kernels = lowered_kernels(module)  # translated in place: no copy of the IR
        texts = kernel_texts(kernels)
        llvm_ir = readable_llvm_ir(texts)
        signatures = kernel_signatures(kernels)
        jit = jit_kernel_texts(texts, options.cache, options.compile_workers)  # type: ignore[arg-type]
        if symbolic:
            def make_program(static: ModuleOp, jit: JitModule, signatures: Mapping[str, Any],
                             weights: Mapping[str, torch.Tensor], plan: MemoryPlan | None,
                             binding: Mapping[str, int]) -> HostProgram:
                return HostProgram(static, jit, signatures, weights, plan, options.threads,
                                   options.min_parallel_work, options.parallel_runtime, binding,
                                   cache=options.cache)  # type: ignore[arg-type]
            return SymbolicCPUExecutable(module, jit, signatures, weights, make_program, llvm_ir,
                                         functools.partial(_print_funcs, kernels), len(signatures))
        try:
            plan: MemoryPlan | None = plan_memory(module)
        except IrcError:
            plan = None
        program: HostProgram
        if options.host_schedule == "native":
            from irc.backends.llvm.native_jit import NativeProgram
            program = NativeProgram(module, weights, options.cache, options.threads)  # type: ignore[assignment]
        else:
            program = HostProgram(module, jit, signatures, weights, plan, options.threads,
                                  options.min_parallel_work, options.parallel_runtime,
                                  cache=options.cache)  # type: ignore[arg-type]
        return CPUExecutable(program, llvm_ir, functools.partial(_print_funcs, kernels), plan,
                             len(signatures))


def _print_funcs(funcs: list[func.FuncOp]) -> str:
    from irc.ir.text import print_module
    return print_module(ModuleOp([fn.clone() for fn in funcs]), locations=False)
