"""The fused dequantize-matmul Triton kernel for ``graph.quantized_matmul``.

``SOURCE`` is pasted once into a generated module that has a quantized
matmul; the host schedule calls ``_quantized_matmul(x, q, scales, bits,
group_size)``. Per ``[BLOCK_M, BLOCK_N]`` output tile the kernel walks K in
``BLOCK_K`` steps: it loads the int8 values (or the bytes holding two int4
nibbles, picking the low or high one per row of K), converts them and
multiplies by each element's group scale in registers, and accumulates
``tl.dot(x, w)`` in float32 (``ieee`` precision, as the float matmul
template). The dequantized weight exists only as one tile in registers.
The kernel works for any group size (each K index reads its own scale), so
ragged K and a ragged last group are plain masks.
"""

from __future__ import annotations

from collections.abc import Sequence

from irc.ir import graph as g

BLOCK_M, BLOCK_N, BLOCK_K = 16, 64, 64

SOURCE = f'''
@triton.jit
def _qmm_kernel(x_ptr, q_ptr, s_ptr, y_ptr, M, N, K, ROW_BYTES, GROUPS,
                BITS: tl.constexpr, GROUP: tl.constexpr, BLOCK_M: tl.constexpr,
                BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """y[M, N] = x[M, K] @ dequantize(q, s)^T, dequantized per tile in registers."""
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_m = rm[:, None] < M
    mask_n = rn[None, :] < N
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        rk = k0 + tl.arange(0, BLOCK_K)
        mask_k = rk < K
        x = tl.load(x_ptr + rm[:, None] * K + rk[None, :], mask=mask_m & mask_k[None, :], other=0.0)
        w_mask = mask_k[:, None] & mask_n
        if BITS == 8:
            q = tl.load(q_ptr + rn[None, :] * ROW_BYTES + rk[:, None], mask=w_mask, other=0)
            q = q.to(tl.float32)
        else:
            byte = tl.load(q_ptr + rn[None, :] * ROW_BYTES + rk[:, None] // 2, mask=w_mask, other=8)
            byte = byte.to(tl.int32) & 255
            nibble = tl.where(rk[:, None] % 2 == 0, byte & 15, byte >> 4)
            q = (nibble - 8).to(tl.float32)
        s = tl.load(s_ptr + rn[None, :] * GROUPS + rk[:, None] // GROUP, mask=w_mask, other=0.0)
        acc = tl.dot(x, q * s, acc, input_precision="ieee")
    tl.store(y_ptr + rm[:, None] * N + rn[None, :], acc, mask=mask_m & mask_n)


def _quantized_matmul(x, q, s, bits, group_size):
    """graph.quantized_matmul on device tensors (see irc.ir.graph.QuantizedMatmulOp)."""
    k, n = x.shape[-1], q.shape[0]
    x2 = x.reshape(-1, k).to(torch.float32).contiguous()
    m = x2.shape[0]
    y = torch.empty((m, n), device=x.device, dtype=torch.float32)
    if m and n:
        grid = (triton.cdiv(m, {BLOCK_M}), triton.cdiv(n, {BLOCK_N}))
        _qmm_kernel[grid](x2, q.contiguous(), s.contiguous(), y, m, n, k, q.shape[1], s.shape[1],
                          BITS=bits, GROUP=group_size, BLOCK_M={BLOCK_M}, BLOCK_N={BLOCK_N},
                          BLOCK_K={BLOCK_K})
    return y.reshape(*x.shape[:-1], n).to(x.dtype)
'''


def call_text(op: g.QuantizedMatmulOp, args: Sequence[str]) -> str:
    """The host expression running ``op`` on the named tensors."""
    return (f"_quantized_matmul({args[0]}, {args[1]}, {args[2]}, {op.bits.value.data}, "
            f"{op.group_size.value.data})")
