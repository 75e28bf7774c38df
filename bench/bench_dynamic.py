"""Dynamic shapes (issue #13): a Llama-style decoder block at many batch sizes
and sequence lengths, compiled once with symbolic sizes.

The block: RMSNorm, grouped-query causal attention with rotary embeddings
(cos/sin tables sliced to the sequence length), a SiLU-gated MLP, residuals,
on hidden states ``[batch, seq, hidden]``. For every shape (default: 12, batch
1-8 x sequence 1-2048) it reports, round-robin, the median seconds per call of

* ``eager``: the module itself;
* ``irc_dynamic``: ONE ``irc.compile(block, dynamic=True)`` serving every shape
  (its first call at a shape is timed separately as ``irc_dynamic_first_s``:
  the cpu backend compiles the symbolic module's kernels once, and per new
  binding of the sizes only makes the host schedule, ``backends/llvm/symbolic.py``);
* ``irc_static``: a fresh ``irc.compile(block, dynamic=False)`` per shape;
* ``inductor_dynamic``: ONE ``torch.compile(block, dynamic=True)``.

and the compile counts: graphs dynamo handed to irc (dynamo specialises sizes 0
and 1, so batch 1 and sequence 1 add graphs of their own), irc's backend
compiles (native code generation: one per graph when it compiles symbolically,
else one per binding) and per-binding specialisations (programs that fell back
to compiling per binding), and the graphs inductor compiled. One JSON line per shape,
then a markdown table. Numbers on a loaded machine are noisy.

    python -m bench.bench_dynamic                   # 12 shapes, hidden 256
    python -m bench.bench_dynamic --quick           # 4 small shapes, to check it runs
    python -m bench.bench_dynamic --no-inductor --repeats 3
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.harness import interleaved_medians
from irc.stats import stats_of

SHAPES = [(1, 1), (1, 17), (1, 128), (1, 1024), (1, 2048), (2, 64), (2, 128), (2, 1024),
          (4, 31), (4, 256), (8, 128), (8, 512)]
QUICK_SHAPES = [(1, 7), (2, 16), (2, 33), (3, 128)]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def _rotate_half(x: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class LlamaBlock(nn.Module):
    """One Llama decoder layer (pre-norm, GQA, RoPE, SwiGLU) on hidden states."""

    cos: Tensor  # buffers (register_buffer below)
    sin: Tensor

    def __init__(self, dim: int = 256, heads: int = 8, kv_heads: int = 4, ffn: int = 688,
                 max_seq: int = 2048) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, dim // heads
        self.norm1, self.norm2 = RMSNorm(dim), RMSNorm(dim)
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(dim, 2 * kv_heads * self.head_dim, bias=False)
        self.o = nn.Linear(dim, dim, bias=False)
        self.gate = nn.Linear(dim, ffn, bias=False)
        self.up = nn.Linear(dim, ffn, bias=False)
        self.down = nn.Linear(ffn, dim, bias=False)
        inv = 1.0 / (10000 ** (torch.arange(0, self.head_dim, 2).float() / self.head_dim))
        angles = torch.outer(torch.arange(max_seq).float(), inv)
        angles = torch.cat((angles, angles), dim=-1)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        batch, seq, dim = x.shape
        h = self.norm1(x)
        q = self.q(h).view(batch, seq, self.heads, self.head_dim).transpose(1, 2)
        k, v = self.kv(h).view(batch, seq, 2 * self.kv_heads, self.head_dim).transpose(1, 2).chunk(2, 1)
        cos, sin = self.cos[:seq], self.sin[:seq]
        q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        x = x + self.o(att.transpose(1, 2).reshape(batch, seq, dim))
        h = self.norm2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


def _counting_inductor() -> tuple[Callable[..., Any], list[int]]:
    from torch._inductor.compile_fx import compile_fx
    count = [0]

    def backend(gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
        count[0] += 1
        return compile_fx(gm, example_inputs)
    return backend, count


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def run(shapes: list[tuple[int, int]], dim: int, repeats: int, inductor: bool,
        static: bool) -> list[dict[str, Any]]:
    import irc
    torch.manual_seed(0)
    block = LlamaBlock(dim=dim, max_seq=max(s for _, s in shapes)).eval()
    dynamic = irc.compile(block, target="cpu", strict=True, dynamic=True)
    backend, inductor_graphs = _counting_inductor()
    ind = torch.compile(block, backend=backend, dynamic=True) if inductor else None
    rows = []
    with torch.no_grad():
        for batch, seq in shapes:
            x = torch.randn(batch, seq, dim)
            want = block(x)
            got, first = _timed(lambda: dynamic(x))
            row: dict[str, Any] = {"batch": batch, "seq": seq, "irc_dynamic_first_s": round(first, 3),
                                   "correct": bool(torch.allclose(got, want, rtol=1e-3, atol=1e-3))}
            fns: dict[str, Callable[[], object]] = {"eager": lambda: block(x),
                                                    "irc_dynamic": lambda: dynamic(x)}
            if static:
                compiled_static = irc.compile(block, target="cpu", strict=True, dynamic=False)
                _, seconds = _timed(lambda: compiled_static(x))
                row["irc_static_compile_s"] = round(seconds, 3)
                fns["irc_static"] = lambda: compiled_static(x)
            if ind is not None:
                _, seconds = _timed(lambda: ind(x))
                row["inductor_first_s"] = round(seconds, 3)
                fns["inductor_dynamic"] = lambda: ind(x)
            for name, seconds in interleaved_medians(fns, repeats=repeats).items():
                row[f"{name}_ms"] = round(seconds * 1e3, 3)
            stats = stats_of(dynamic)
            row.update(irc_graphs=stats.graphs, irc_backend_compiles=stats.backend_compiles,
                       irc_specializations=stats.specializations,
                       inductor_graphs=inductor_graphs[0] if inductor else None)
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    cols = ["batch", "seq", "correct", "eager_ms", "irc_dynamic_ms", "irc_static_ms",
            "inductor_dynamic_ms", "irc_dynamic_first_s", "irc_static_compile_s",
            "inductor_first_s", "irc_graphs", "irc_backend_compiles", "irc_specializations",
            "inductor_graphs"]
    cols = [c for c in cols if any(c in r for r in rows)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 small shapes, hidden 64")
    parser.add_argument("--dim", type=int, default=None, help="hidden size (default 256)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-inductor", action="store_true")
    parser.add_argument("--no-static", action="store_true")
    args = parser.parse_args(argv)
    shapes = QUICK_SHAPES if args.quick else SHAPES
    dim = args.dim or (64 if args.quick else 256)
    rows = run(shapes, dim, args.repeats, not args.no_inductor, not args.no_static)
    print(table(rows))


if __name__ == "__main__":
    main()
