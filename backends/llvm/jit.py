"""LLVM IR text -> optimised native code in this process (llvmlite MCJIT).

* Code is optimised for the host CPU (``get_host_cpu_name()`` and its
  features) at ``-O3`` with the loop and SLP vectorisers on (new pass manager).
* :func:`compile_llvm_ir` returns a :class:`JitModule`; its
  :meth:`JitModule.function` gives a ctypes ``CFUNCTYPE`` callable taking one
  integer address per memref (``tensor.data_ptr()``) plus ``(lo, hi)`` for
  parallel kernels.  ctypes releases the GIL for the duration of the call.
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
        self._cache: dict[tuple[str, int, bool], ctypes._CFuncPtr] = {}

    def address(self, name: str) -> int:
        addr = self._engine.get_function_address(name)
        if not addr:
            raise BackendError(f"llvm backend: no function @{name} in JIT module")
        return addr

    def function(self, name: str, n_memrefs: int, parallel: bool = False):
        """ctypes callable ``f(ptr0, ..., ptrN-1[, lo, hi]) -> None``."""
        key = (name, n_memrefs, parallel)
        fn = self._cache.get(key)
        if fn is None:
            args = [ctypes.c_void_p] * n_memrefs
            if parallel:
                args += [ctypes.c_int64, ctypes.c_int64]
            proto = ctypes.CFUNCTYPE(None, *args)
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
    with _lock:
        empty = llvm.parse_assembly("")
        empty.triple = llvm.get_process_triple()
        engine = _engine_with(empty)
        obj = llvm.ObjectFileRef.from_data(data)
        engine.add_object_file(obj)
        engine.finalize_object()
    return JitModule(engine, [empty, obj])
