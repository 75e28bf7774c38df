"""The input layout of the int4 vector path of the fused dequant-matmul kernel.

Kept apart from :mod:`irc.backends.llvm.quantized_matmul` (which builds the
kernel with llvmlite) so that the package loader, which must not import the
compiler, prepares the kernel's input the same way the JIT step does.
"""

from __future__ import annotations

import torch

LANES = 16
"""Floats per vector of the explicit vector path (one AVX-512 register; LLVM
splits it in two on AVX2)."""

INT4_CHUNK = 2 * LANES
"""Elements of K one int4 vector step covers (16 bytes of packed nibbles)."""


def permute_for_int4(x: torch.Tensor) -> torch.Tensor:
    """``x`` ``[M, K]`` with each whole 32-element chunk of a row reordered to
    its 16 even elements, then its 16 odd ones (the rest of a row stays
    put): the layout the int4 vector path reads, matching the two nibbles of
    16 bytes of packed weights."""
    m, k = x.shape
    whole = k // INT4_CHUNK * INT4_CHUNK
    out = x.clone()
    out[:, :whole] = x[:, :whole].reshape(m, -1, LANES, 2).transpose(2, 3).reshape(m, whole)
    return out
