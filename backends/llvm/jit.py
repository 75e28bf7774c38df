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
  valid only on an identical CPU/LLVM. Objects are position-independent
  (small code model), so the one artefact format serves the JIT, the compile
  cache and an exported package's shared library (``cc -shared`` links the
  very objects the cache holds, see :func:`kernel_objects`).

The target machine used for optimisation and object emission is the only
module-level state (created on first use).
"""

from __future__ import annotations

import ctypes
import json
import threading
from collections.abc import Callable
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
        opt=3, reloc="pic", codemodel="default", jit=True)


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
    """Native code living in an MCJIT engine; hands out ctypes callables.

    ``aliases`` maps a kernel's name to the symbol its code has in the engine
    (kernels compiled one by one under a content-derived name, see
    :func:`compile_kernels`); other names are looked up as they are."""

    def __init__(self, engine: llvm.ExecutionEngine, keep: list[object],
                 aliases: dict[str, str] | None = None) -> None:
        self._engine = engine
        self._keep = keep  # module/object refs that must outlive the engine
        self._cache: dict[tuple[str, int, tuple], Callable[..., None]] = {}
        self.aliases = dict(aliases or {})

    def address(self, name: str) -> int:
        base, dot, rest = name.partition(".")
        name = self.aliases.get(base, base) + dot + rest
        addr = self._engine.get_function_address(name)
        if not addr:
            raise BackendError(f"llvm backend: no function @{name} in JIT module")
        return addr

    def function(self, name: str, n_memrefs: int, parallel: bool = False, n_sizes: int = 0):
        """ctypes callable ``f(ptr0, ..., ptrN-1, [size0, ...,] [lo, hi]) -> None``."""
        return self._function(name, n_memrefs,
                              (ctypes.c_int64,) * (n_sizes + (2 if parallel else 0)))

    def omp_function(self, name: str, n_memrefs: int, n_sizes: int = 0):
        """ctypes callable ``f(ptr0, ..., ptrN-1, [sizes...,] lo, hi, nthreads) -> None``:
        the OpenMP entry ``@<name>.omp`` of a parallel kernel (see ``translate``)."""
        from irc.backends.llvm.translate import OMP_SUFFIX
        return self._function(name + OMP_SUFFIX, n_memrefs,
                              (ctypes.c_int64,) * (n_sizes + 2) + (ctypes.c_int32,))

    def _function(self, name: str, n_memrefs: int, tail: tuple):
        key = (name, n_memrefs, tail)
        fn = self._cache.get(key)
        if fn is None:
            proto = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * n_memrefs), *tail)
            fn = proto(self.address(name))
            setattr(fn, "_irc_jit_module", self)  # keep the code alive with the callable
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
    return load_objects([data], {})


# -- kernel by kernel: deduplicated, cached, compiled in parallel processes -------

CANONICAL_NAME = "__irc_kernel__"
"""The name a kernel is translated under for :func:`compile_kernels`: its LLVM
IR text then depends on its body only, so identical kernels (layers of one
model, or of different models) have identical text."""


def kernel_symbol(text: str) -> tuple[str, str]:
    """(symbol, text with ``CANONICAL_NAME`` renamed to it): the symbol is a
    digest of the text, so equal kernels share one symbol and one object."""
    import hashlib
    symbol = "irc_k_" + hashlib.sha256(text.encode()).hexdigest()[:20]
    return symbol, text.replace(CANONICAL_NAME, symbol)


def _emit_objects_in_workers(texts: list[str], workers: int) -> list[bytes]:
    """Object code of each text; ``workers - 1`` child processes take a share
    each while this process compiles its own (llvmlite serialises LLVM work
    within one process, so threads would not help)."""
    import subprocess
    import sys
    shares = [texts[i::workers] for i in range(workers)]
    procs = []
    for share in shares[1:]:
        proc = subprocess.Popen([sys.executable, "-m", "irc.backends.llvm.jit_worker"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(share).encode())
        proc.stdin.close()
        procs.append(proc)
    results: list[list[bytes] | None] = [[emit_object(t) for t in shares[0]]]
    for proc, share in zip(procs, shares[1:]):
        assert proc.stdout is not None
        out = proc.stdout.read()
        proc.wait()
        results.append(_read_frames(out, len(share)) if proc.returncode == 0 else None)
    objects: list[bytes] = [b""] * len(texts)
    for i, (share, result) in enumerate(zip(shares, results)):
        if result is None:  # a worker failed: compile here (its error, if any, is ours)
            result = [emit_object(t) for t in share]
        for j, blob in enumerate(result):
            objects[i + j * workers] = blob
    return objects


def _read_frames(data: bytes, count: int) -> list[bytes] | None:
    """``count`` length-prefixed frames (8-byte little-endian lengths), or None."""
    frames, pos = [], 0
    for _ in range(count):
        if pos + 8 > len(data):
            return None
        n = int.from_bytes(data[pos:pos + 8], "little")
        pos += 8
        frames.append(data[pos:pos + n])
        pos += n
    return frames if pos == len(data) else None


def compile_kernels(texts: dict[str, str], store: object | None = None,
                    key_parts: tuple[str, ...] = (), workers: int = 1,
                    min_parallel: int = 8) -> JitModule:
    """Native code for kernels translated one by one under ``CANONICAL_NAME``.

    ``texts`` maps each kernel's name to its LLVM IR text. Identical texts are
    compiled once; each distinct kernel's object code is looked up in
    ``store`` (an :class:`irc.cache.CompileCache`, keyed on its text and
    ``key_parts``) and stored there when compiled; misses are compiled in
    ``workers`` processes when there are at least ``min_parallel`` of them.
    All objects are loaded into one engine.
    """
    symbols, objects = kernel_objects(texts, store, key_parts, workers, min_parallel)
    return load_objects(list(objects.values()), symbols)


def kernel_objects(texts: dict[str, str], store: object | None = None,
                   key_parts: tuple[str, ...] = (), workers: int = 1,
                   min_parallel: int = 8) -> tuple[dict[str, str], dict[str, bytes]]:
    """(kernel name -> symbol, symbol -> object code) for :func:`compile_kernels`'
    ``texts``, through ``store``: what the JIT loads and a package links."""
    from irc.cache import make_key
    symbols: dict[str, str] = {}
    unique: dict[str, str] = {}  # symbol -> renamed text
    for name, text in texts.items():
        symbol, renamed = kernel_symbol(text)
        symbols[name] = symbol
        unique.setdefault(symbol, renamed)
    objects: dict[str, bytes] = {}
    keys = {s: make_key(t, *key_parts) for s, t in unique.items()}
    for symbol in unique:
        blob = store.get(keys[symbol]) if store is not None else None  # type: ignore[attr-defined]
        if blob is not None:
            objects[symbol] = blob
    missing = [s for s in unique if s not in objects]
    # a worker starts in about 0.1 s: worth it for a few kernels each at least
    n = min(workers, len(missing) // 4) if len(missing) >= min_parallel else 1
    blobs = (_emit_objects_in_workers([unique[s] for s in missing], n) if n > 1
             else [emit_object(unique[s]) for s in missing])
    for symbol, blob in zip(missing, blobs):
        objects[symbol] = blob
        if store is not None:
            store.put(keys[symbol], blob)  # type: ignore[attr-defined]
    return symbols, objects


def load_objects(blobs: list[bytes], aliases: dict[str, str]) -> JitModule:
    """One engine holding every object of ``blobs`` (see :func:`load_object`)."""
    _init()
    _link_runtime()
    with _lock:
        empty = llvm.parse_assembly("")
        empty.triple = llvm.get_process_triple()
        engine = _engine_with(empty)
        objs = [llvm.ObjectFileRef.from_data(b) for b in blobs]
        for obj in objs:
            engine.add_object_file(obj)
        engine.finalize_object()
    return JitModule(engine, [empty, *objs], aliases)
