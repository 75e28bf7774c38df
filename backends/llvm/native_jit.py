"""The native host schedule for the JIT: one call from Python per model invocation.

With the cpu backend's option ``host_schedule="native"``, ``LLVMBackend.compile``
runs ``@main`` through :class:`NativeProgram` instead of the Python closures of
:class:`irc.backends.llvm.runtime.HostProgram`: the same generated C an exported
package ships (:mod:`irc.backends.llvm.native`, weights by pointer instead of
from a mapped file), compiled with ``cc`` and linked with the kernels' objects
into one library. A call checks the inputs (as the Python runtime does),
allocates the outputs and makes one ctypes call (GIL released).

The library is an artefact of the compile cache: ``<cache dir>/native/<sha256>.so``,
keyed on the C source and every object linked in, so a package and a cache
entry are the same file format and are built by the same code. Weights are
handed over as pointers and re-bound (weight-derived values recomputed) when a
weight's identity, version or storage changes. Library calls are irc's own C
(see :mod:`irc.backends.llvm.native`): slower than MKL/oneDNN for large
matmuls and convolutions, faster on small models where the Python host
schedule's per-step overhead dominates. A schedule with a step that has no
native version (``graph.aten_call``) is a :class:`BackendError` naming it.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch
from xdsl.dialects.builtin import ModuleOp

from irc.backends.llvm.threads import LaunchStats
from irc.errors import BackendError, InputMismatchError, IrcError
from irc.loader_runtime import Spec, dtype_named, link_openmp


def _library(objects: Mapping[str, bytes], sources: Mapping[str, str], cache: object) -> str:
    """Path of the linked library (from the compile cache when it has it)."""
    from irc.backends.llvm.package import link_shared_library
    from irc.cache import CacheConfig, open_cache
    h = hashlib.sha256()
    for name in sorted(sources):
        h.update(name.encode() + b"\0" + sources[name].encode() + b"\0")
    for symbol in sorted(objects):
        h.update(symbol.encode() + b"\0" + objects[symbol])
    key = h.hexdigest()
    try:
        store = open_cache(cache if isinstance(cache, CacheConfig) else CacheConfig())
    except IrcError:
        store = None
    if store is not None:
        folder = store.dir / "native"
        folder.mkdir(mode=0o700, exist_ok=True)
        path = folder / f"{key}.so"
        if path.is_file():
            return str(path)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".so")
        os.close(fd)
        try:
            link_shared_library(objects, Path(tmp), sources)
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return str(path)
    folder = tempfile.mkdtemp(prefix="irc-native-")
    path = Path(folder) / f"{key}.so"
    link_shared_library(objects, path, sources)
    return str(path)


class NativeProgram:
    """``@main`` as one native call (see the module docstring)."""

    def __init__(self, module: ModuleOp, weights: Mapping[str, torch.Tensor], cache: object,
                 threads: int = 0) -> None:
        from irc.backends.llvm.native import native_sources
        from irc.backends.llvm.package import package_parts
        parts = package_parts(module, weights, cache)
        schedule = parts.schedule
        values = schedule["values"]
        self.specs = [Spec(dtype_named(values[s]["dtype"]), values[s]["shape"])
                      for s in schedule["inputs"]]
        self.input_names = list(schedule["input_names"])
        self.out_specs = [Spec(dtype_named(values[s]["dtype"]), values[s]["shape"])
                          for s in schedule["outputs"]]
        ins = [{"name": n, **values[s]} for n, s in zip(self.input_names, schedule["inputs"])]
        outs = [{"name": f"output_{i}", **values[s]} for i, s in enumerate(schedule["outputs"])]
        sources, info = native_sources(schedule, None, 0, "", ins, outs)
        if not info["available"]:
            raise BackendError(f"cpu backend: host_schedule='native': {info['reason']}; use "
                               "host_schedule='python'")
        self.lib = ctypes.CDLL(_library(parts.objects, sources, cache))
        link_openmp(self.lib)
        self.stats = LaunchStats()
        self.weights = weights
        self.weight_reads = [(name, Spec(dtype_named(values[s]["dtype"]), values[s]["shape"]))
                             for name, s in schedule["weights"]]
        self.constants = [parts.tensors[name] for name, _ in schedule["constants"]]
        self.max_threads = threads
        lib = self.lib
        lib.irc_jit_new.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p)]
        lib.irc_jit_bind.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
        lib.irc_jit_threads.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.irc_model_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        lib.irc_model_close.argtypes = [ctypes.c_void_p]
        lib.irc_last_error.restype = ctypes.c_char_p
        self._run = lib.irc_model_run
        self.threads = self._threads()
        self.model = ctypes.c_void_p()
        self.key: tuple | None = None
        table = self._table()
        if lib.irc_jit_new(table, self.threads, ctypes.byref(self.model)) != 0:
            raise BackendError(f"cpu backend: {lib.irc_last_error().decode()}")
        self._bound = table  # the pointers stay valid while the tensors live
        self.in_array = (ctypes.c_void_p * max(len(self.specs), 1))()
        self.out_array = (ctypes.c_void_p * max(len(self.out_specs), 1))()
        import threading
        self.lock = threading.Lock()

    def _threads(self) -> int:
        n = torch.get_num_threads()
        try:
            n = min(n, len(os.sched_getaffinity(0)))
        except (AttributeError, OSError):
            pass
        return min(n, self.max_threads) if self.max_threads > 0 else max(n, 1)

    def _key(self) -> tuple:
        try:
            return tuple((id(t), t._version, t.data_ptr())
                         for t in [self.weights[name] for name, _ in self.weight_reads])
        except (KeyError, AttributeError, RuntimeError):
            return ()

    def _table(self) -> ctypes.Array:
        tensors = []
        for name, spec in self.weight_reads:
            if name not in self.weights:
                raise InputMismatchError(f"weight \"{name}\" is missing (have: {sorted(self.weights)})")
            t = self.weights[name]
            spec.check(t, f"weight \"{name}\"")
            tensors.append(t)
        tensors += self.constants
        self._alive = tensors
        self.key = self._key()
        return (ctypes.c_void_p * max(len(tensors), 1))(*[t.data_ptr() for t in tensors])

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        specs = self.specs
        if len(inputs) != len(specs):
            raise InputMismatchError(f"expected {len(specs)} inputs, got {len(inputs)}")
        for i, spec in enumerate(specs):
            if not spec.fits(inputs[i]):
                spec.check(inputs[i], f"input {i} ({self.input_names[i]})")
        outs = [s.empty() for s in self.out_specs]
        with self.lock:
            threads = self._threads()
            if self.weight_reads and self._key() != self.key:
                self._bound = self._table()
                self.lib.irc_jit_bind(self.model, self._bound, threads)
            elif threads != self.threads:
                self.lib.irc_jit_threads(self.model, threads)
            self.threads = threads
            for i, t in enumerate(inputs):
                self.in_array[i] = t.data_ptr()
            for i, t in enumerate(outs):
                self.out_array[i] = t.data_ptr()
            if self._run(self.model, self.in_array, self.out_array) != 0:
                raise BackendError(f"cpu backend: {self.lib.irc_last_error().decode()}")
        return outs

    def __del__(self) -> None:
        model = getattr(self, "model", None)
        if model is not None and model.value:
            self.lib.irc_model_close(model)
