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
from irc.backends.llvm.translate import translate_module
from irc.errors import BackendError
from irc.ir.kernel import is_kernel


def kernel_module(module: ModuleOp) -> ModuleOp:
    """A module holding clones of the lowered kernel funcs only (what LLVM gets)."""
    kernels = []
    for op in module.ops:
        if is_kernel(op):
            if not is_lowered(op):
                raise BackendError(f"cpu backend: kernel @{op.sym_name.data} is not lowered to "
                                   "loops (run the lower-to-loops pass first)")
            kernels.append(op.clone())
    return ModuleOp(kernels)


@functools.lru_cache(maxsize=1)
def jit_source_digest() -> str:
    import hashlib

    from irc.backends.llvm import jit
    return hashlib.sha256(Path(jit.__file__).read_bytes()).hexdigest()


def kernel_texts(kernels: ModuleOp) -> dict[str, str]:
    """LLVM IR of each kernel alone, translated under the canonical name (so
    identical kernels have identical text; see :func:`jit.compile_kernels`)."""
    from xdsl.dialects.builtin import StringAttr

    from irc.backends.llvm.jit import CANONICAL_NAME
    texts = {}
    for fn in kernels.ops:
        assert isinstance(fn, func.FuncOp)
        alone = fn.clone()
        alone.sym_name = StringAttr(CANONICAL_NAME)
        texts[fn.sym_name.data] = translate_module(ModuleOp([alone]))
    return texts
