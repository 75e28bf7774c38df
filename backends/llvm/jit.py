"""LLVM IR text -> optimised native code in this process (llvmlite MCJIT).

* Code is optimised for the host CPU (``get_host_cpu_name()`` and its
  features) at ``-O3`` with the loop and SLP vectorisers on (new pass manager).
* :func:`compile_llvm_ir` returns a :class:`JitModule`; its
  :meth:`JitModule.function` gives a ctypes ``CFUNCTYPE`` callable taking one
  integer address per memref (``tensor.data_ptr()``) plus ``(lo, hi)`` for
  parallel kernels; :meth:`JitModule.omp_function` gives a parallel kernel's
  OpenMP entry.  ctypes releases the GIL for the duration of the call.
* The OpenMP symbols generated code calls are bound (``threads.link_openmp``)
  before any code is finalised, freshly compiled or loaded from object code.
* :func:`emit_object` / :func:`load_object` let a compile cache store object
  code; :func:`host_cpu_fingerprint` is the key part that makes a cached object
  valid only on an identical CPU/LLVM.

The target machine used for optimisation and object emission is the only
module-level state (created on first use).
"""

from __future__ import annotations

import ctypes
import threading
from functools import lru_cache

import llvmlite.binding as llvm

from irc.errors import BackendError

_lock = threading.Lock()


@lru_cache(maxsize=1)
def _init() -> None:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    llvm.initialize_native_asmparser()


def _link_runtime() -> None:
    """Bind the OpenMP symbols parallel kernels call (before finalising any code)."""
    from irc.backends.llvm.threads import link_openmp
    link_openmp()


def _new_target_machine() -> llvm.TargetMachine:
    _init()
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(
        cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(),
        opt=3, reloc="default", codemodel="jitdefault", jit=True)


@lru_cache(maxsize=1)
def target_machine() -> llvm.TargetMachine:
    """The host target machine (singleton) used to optimise and emit code."""
    return _new_target_machine()


def host_cpu_fingerprint() -> str:
    """CPU name + features + LLVM version + triple: part of a cache key."""
    _init()
    version = ".".join(map(str, llvm.llvm_version_info))
    return (f"{llvm.get_process_triple()}|{llvm.get_host_cpu_name()}|"
            f"{llvm.get_host_cpu_features().flatten()}|llvm{version}")


def _parse(text: str) -> llvm.ModuleRef:
    _init()
    try:
        mod = llvm.parse_assembly(text)
        mod.verify()
    except RuntimeError as exc:
        raise BackendError(f"llvm backend: invalid LLVM IR: {exc}") from exc
    tm = target_machine()
    mod.triple = llvm.get_process_triple()
    mod.data_layout = str(tm.target_data)
    return mod


def _optimize(mod: llvm.ModuleRef) -> llvm.ModuleRef:
    tm = target_machine()
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pto.loop_unrolling = True
    pb = llvm.create_pass_builder(tm, pto)
    pm = pb.getModulePassManager()
    with _lock:
        pm.run(mod, pb)
    return mod


def optimized_ir(text: str) -> str:
    """The LLVM IR text after the -O3 pipeline (to inspect vectorisation)."""
    return str(_optimize(_parse(text)))


def assembly(text: str) -> str:
    """Host assembly for ``text`` after optimisation."""
    mod = _optimize(_parse(text))
    with _lock:
        return target_machine().emit_assembly(mod)


class JitModule:
    """Native code living in an MCJIT engine; hands out ctypes callables."""

    def __init__(self, engine: llvm.ExecutionEngine, keep: list[object]) -> None:
        self._engine = engine
        self._keep = keep  # module/object refs that must outlive the engine
        self._cache: dict[tuple[str, int, tuple], ctypes._CFuncPtr] = {}

    def address(self, name: str) -> int:
        addr = self._engine.get_function_address(name)
        if not addr:
            raise BackendError(f"llvm backend: no function @{name} in JIT module")
        return addr

    def function(self, name: str, n_memrefs: int, parallel: bool = False):
        """ctypes callable ``f(ptr0, ..., ptrN-1[, lo, hi]) -> None``."""
        return self._function(name, n_memrefs, (ctypes.c_int64,) * 2 if parallel else ())

    def omp_function(self, name: str, n_memrefs: int):
        """ctypes callable ``f(ptr0, ..., ptrN-1, lo, hi, nthreads) -> None``: the
        OpenMP entry ``@<name>.omp`` of a parallel kernel (see ``translate``)."""
        from irc.backends.llvm.translate import OMP_SUFFIX
        return self._function(name + OMP_SUFFIX, n_memrefs,
                              (ctypes.c_int64, ctypes.c_int64, ctypes.c_int32))

    def _function(self, name: str, n_memrefs: int, tail: tuple):
        key = (name, n_memrefs, tail)
        fn = self._cache.get(key)
        if fn is None:
            proto = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * n_memrefs), *tail)
            fn = proto(self.address(name))
            fn._irc_jit_module = self  # keep the code alive with the callable
            self._cache[key] = fn
        return fn


def _engine_with(mod: llvm.ModuleRef) -> llvm.ExecutionEngine:
    return llvm.create_mcjit_compiler(mod, _new_target_machine())


def compile_llvm_ir(text: str, optimize: bool = True) -> JitModule:
    """Parse, optimise (-O3, host CPU) and JIT-compile LLVM IR text."""
    mod = _parse(text)
    if optimize:
        _optimize(mod)
    _link_runtime()
    with _lock:
        engine = _engine_with(mod)
        engine.finalize_object()
    return JitModule(engine, [mod])


def emit_object(text: str) -> bytes:
    """Optimised host object code for ``text`` (for a compile cache)."""
    mod = _optimize(_parse(text))
    with _lock:
        return target_machine().emit_object(mod)


def load_object(data: bytes) -> JitModule:
    """A :class:`JitModule` from object code made by :func:`emit_object`."""
    _init()
    _link_runtime()
    with _lock:
        empty = llvm.parse_assembly("")
        empty.triple = llvm.get_process_triple()
        engine = _engine_with(empty)
        obj = llvm.ObjectFileRef.from_data(data)
        engine.add_object_file(obj)
        engine.finalize_object()
    return JitModule(engine, [empty, obj])
