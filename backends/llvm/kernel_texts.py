"""The kernels of a lowered module as LLVM IR texts, and what keys their objects.

Shared by the JIT (:mod:`irc.backends.llvm.backend`), exported packages
(:mod:`irc.backends.llvm.package`) and ``scripts/replay.py``: one kernel, one
canonical LLVM IR text, one compile-cache entry, one object in a package.
"""

from __future__ import annotations

import functools
from pathlib import Path

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp

from irc.backends.llvm.lowering.lower_to_loops import is_lowered
from irc.backends.llvm.translate import translate_function
from irc.errors import BackendError
from irc.ir.kernel import is_kernel


def lowered_kernels(module: ModuleOp) -> list[func.FuncOp]:
    """The module's kernel funcs (what LLVM gets), each checked to be lowered to loops."""
    kernels = []
    for op in module.ops:
        if is_kernel(op) and isinstance(op, func.FuncOp):
            if not is_lowered(op):
                raise BackendError(f"cpu backend: kernel @{op.sym_name.data} is not lowered to "
                                   "loops (run the lower-to-loops pass first)")
            kernels.append(op)
    return kernels


def kernel_module(module: ModuleOp) -> ModuleOp:
    """A module holding clones of the lowered kernel funcs only."""
    return ModuleOp([fn.clone() for fn in lowered_kernels(module)])


@functools.lru_cache(maxsize=1)
def jit_source_digest() -> str:
    import hashlib

    from irc.backends.llvm import jit
    return hashlib.sha256(Path(jit.__file__).read_bytes()).hexdigest()


def kernel_texts(kernels: ModuleOp | list[func.FuncOp]) -> dict[str, str]:
    """LLVM IR of each kernel alone, translated under the canonical name (so
    identical kernels have identical text; see :func:`jit.compile_kernels`).
    The funcs are translated in place: no copy of the IR."""
    from irc.backends.llvm.jit import CANONICAL_NAME
    texts = {}
    for fn in (kernels.ops if isinstance(kernels, ModuleOp) else kernels):
        assert isinstance(fn, func.FuncOp)
        texts[fn.sym_name.data] = translate_function(fn, CANONICAL_NAME)
    return texts
