"""A :class:`~irc.optim.rules.Rule` as one Triton multi-tensor kernel.

One launch updates every parameter of a step: program ``pid`` handles block
``blk_off[pid]`` of tensor ``blk_tensor[pid]`` (a block table built once per
parameter set), finds that tensor's buffers through tables of device
addresses (``int64`` -> pointer), loads each buffer's block once, evaluates
the rule and stores the written buffers in place (apex's multi-tensor apply).
Runs on CUDA tensors, or on CPU tensors under Triton's interpreter.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from irc.optim.rules import Rule

BLOCK = 1024
INTERPRETER_BLOCK = 8192  # the interpreter's cost is per program, not per element


class _SourceOps:
    """The rule algebra as Triton expressions (source text)."""

    def add(self, a: str, b: str) -> str:
        return f"({a} + {b})"

    def sub(self, a: str, b: str) -> str:
        return f"({a} - {b})"

    def mul(self, a: str, b: str) -> str:
        return f"({a} * {b})"

    def div(self, a: str, b: str) -> str:
        return f"({a} / {b})"

    def neg(self, a: str) -> str:
        return f"(-{a})"

    def sqrt(self, a: str) -> str:
        return f"tl.sqrt_rn({a})"  # IEEE round-to-nearest, as torch's sqrt

    def select(self, flag: str, a: str, b: str) -> str:
        return f"tl.where({flag} != 0.0, {a}, {b})"


def triton_source(rule: Rule) -> str:
    """The Python module text defining ``@triton.jit def kernel(...)`` for ``rule``."""
    tables = [f"t_{name}" for name in rule.reads] + (["t_step"] if rule.counts_steps else [])
    lines = ["import triton", "import triton.language as tl", "", "", "@triton.jit",
             f"def kernel(sizes, blk_tensor, blk_off, {', '.join(tables)}, scalars, BLOCK: tl.constexpr):",
             "    pid = tl.program_id(0)",
             "    t = tl.load(blk_tensor + pid)",
             "    blk = tl.load(blk_off + pid)",
             "    offs = blk.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)",
             "    mask = offs < tl.load(sizes + t)"]
    for k, name in enumerate(rule.scalars):
        lines.append(f"    s_{name} = tl.load(scalars + {k})")
    for name in rule.reads:
        lines.append(f"    ptr_{name} = tl.load(t_{name} + t).to(tl.pointer_type(tl.float32)) + offs")
        lines.append(f"    x_{name} = tl.load(ptr_{name}, mask=mask)")
    # name every intermediate once (the rule's expressions are trees of shared values)
    new = rule.body(_SourceOps(), {n: f"x_{n}" for n in rule.reads}, {n: f"s_{n}" for n in rule.scalars})
    for name in rule.writes:
        lines.append(f"    n_{name} = {new[name]}")
    for name in rule.writes:
        lines.append(f"    tl.store(ptr_{name}, n_{name}, mask=mask)")
    if rule.counts_steps:  # state["step"] += 1, by each tensor's first block (every tensor has one)
        lines += ["    if blk == 0:",
                  "        step_ptr = tl.load(t_step + t).to(tl.pointer_type(tl.float32))",
                  "        tl.store(step_ptr, tl.load(step_ptr) + 1.0)"]
    return "\n".join(lines) + "\n"


@lru_cache(maxsize=None)
def triton_kernel(rule: Rule, interpret: bool) -> Any:
    """``rule``'s compiled (or interpreted) Triton kernel."""
    from irc.backends.triton.runtime import load_source
    return load_source(triton_source(rule), interpret).kernel
