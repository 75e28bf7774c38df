"""The ``cuda`` backend (alias ``triton``): kernel-level IR -> Triton kernels.

Guarantees: every ``irc.kernel`` becomes one ``@triton.jit`` kernel (pointwise,
or a block reduction over rows: softmax and layer norm are one kernel each);
extern ops run as torch library calls (cuBLAS/cuDNN on CUDA tensors), except
matmuls the ``matmul`` option gives to the Triton template, which then also
runs the consumer kernel as its fused epilogue (:mod:`codegen_matmul`); results
agree with the reference interpreter within the dtype's tolerance. A kernel the
code generator cannot express runs in eager torch instead, is logged, and is
marked in the generated source. Runs on a CUDA GPU, or on the CPU under the
Triton interpreter: the option ``interpret``, or triton's own setting
(``triton.knobs.runtime.interpret``, which triton reads from
``TRITON_INTERPRET``); :meth:`TritonBackend.available` reports which.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import torch
from xdsl.dialects.builtin import ModuleOp

from irc.backends.base import Backend, BackendOptions, Executable, Level
from irc.passes.pipeline import DEFAULT_STAGES

NO_DEVICE = ("no CUDA device; use target=\"cpu\", or options={\"interpret\": True} "
             "(or TRITON_INTERPRET=1) to run the Triton kernels on the CPU")


@dataclass(frozen=True)
class TritonOptions(BackendOptions):
    """Options of the ``cuda`` backend."""

    cuda_graphs: bool = False
    """Capture the host schedule into a CUDA graph after a warm-up call (real CUDA only)."""
    autotune: bool = True
    """Time a few tilings of large kernels on their first launch (real CUDA only)."""
    interpret: bool = False
    """Run kernels with Triton's CPU interpreter on CPU tensors."""
    matmul: Literal["auto", "cublas", "triton"] = "auto"
    """How ``graph.matmul`` runs: ``"cublas"`` (``torch.matmul``, then the consumer
    kernel), ``"triton"`` (the Triton matmul template with the consumer's
    elementwise body fused as its epilogue, where legal), ``"auto"`` (per shape:
    both timed on first call on a GPU, the decision cached; under the
    interpreter, ``"cublas"``)."""


class TritonBackend(Backend):
    name = "cuda"
    level = Level.KERNEL
    Options = TritonOptions
    description = "Triton kernels on a CUDA GPU (or Triton's CPU interpreter)"
    # matmul-epilogues: which matmuls the Triton template may run and which
    # consumer kernel becomes each one's epilogue (a decision, as an attribute).
    pipeline = MappingProxyType({**DEFAULT_STAGES,
                                 "kernel": f"{DEFAULT_STAGES['kernel']},matmul-epilogues"})

    def compile(self, module: ModuleOp, weights: Mapping[str, torch.Tensor],
                options: BackendOptions) -> Executable:
        from irc.backends.triton.runtime import TritonExecutable
        opts = options if isinstance(options, TritonOptions) else TritonOptions()
        return TritonExecutable(module, weights, autotune=opts.autotune,
                                cuda_graphs=opts.cuda_graphs, interpret=opts.interpret,
                                matmul=opts.matmul)

    def available(self, options: BackendOptions | None = None) -> str | None:
        """None where the kernels will run: on a CUDA device, or under Triton's
        interpreter when ``options.interpret`` or triton's own setting asks for it
        (as :class:`~irc.backends.triton.runtime.TritonExecutable` decides)."""
        try:
            import triton.knobs  # the submodule: triton does not import it by name
        except ImportError:
            return "triton is not installed; use target=\"cpu\""
        if torch.cuda.is_available() or getattr(options, "interpret", False):
            return None
        if triton.knobs.runtime.interpret:
            return None
        return NO_DEVICE


def generate_source(module: ModuleOp, interpret: bool = False, matmul: str = "cublas") -> str:
    """The Triton source of a kernel-level module (``irc translate --to triton``)."""
    from irc.backends.triton.codegen import generate_source as generate
    return generate(module, interpret, matmul)
