"""A :class:`~irc.optim.rules.Rule` as one native multi-tensor kernel (LLVM IR
built with llvmlite's IR builder, JIT-compiled by irc's LLVM backend).

    void <rule>(i64 n_tensors, i64* sizes, float** buf_0, ..., float** buf_k[, float** steps], float* scalars)

The outer loop walks the tensors; for each it calls the per-tensor loop
``<rule>.one(float* noalias ..., i64 n, float* scalars)``, which reads every
buffer once, evaluates the rule and stores the written buffers in place: one
pass over each parameter's memory, one call for all parameters. A rule that
``counts_steps`` also adds 1 to each tensor's step counter (``steps[t]``). The buffers
of one tensor never alias each other (``noalias``), so the -O3 pipeline
vectorises the element loop; no fast-math flags are set (results round as
torch's do).

Written with llvmlite's builder rather than through the graph/loops levels:
those have static shapes per kernel, while this kernel's tensor count and
sizes are runtime arrays (the same code serves every parameter set).
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from typing import Any

from llvmlite import ir

from irc.optim.rules import Rule

F32 = ir.FloatType()
I64 = ir.IntType(64)
FPTR = F32.as_pointer()


class _LlvmOps:
    """The rule algebra on llvmlite values (scalars are splat by use)."""

    def __init__(self, b: ir.IRBuilder, module: ir.Module) -> None:
        self.b = b
        self.module = module

    def add(self, a: Any, b: Any) -> Any:
        return self.b.fadd(a, b)

    def sub(self, a: Any, b: Any) -> Any:
        return self.b.fsub(a, b)

    def mul(self, a: Any, b: Any) -> Any:
        return self.b.fmul(a, b)

    def div(self, a: Any, b: Any) -> Any:
        return self.b.fdiv(a, b)

    def neg(self, a: Any) -> Any:
        return self.b.fneg(a)

    def sqrt(self, a: Any) -> Any:
        fn = self.module.declare_intrinsic("llvm.sqrt", [F32])
        return self.b.call(fn, [a])

    def select(self, flag: Any, a: Any, b: Any) -> Any:
        return self.b.select(self.b.fcmp_ordered("!=", flag, ir.Constant(F32, 0.0)), a, b)


def llvm_ir(rule: Rule) -> str:
    """The LLVM IR text of ``rule``'s multi-tensor kernel (module docstring)."""
    module = ir.Module(name=rule.name)
    nbuf = len(rule.reads)
    one = ir.Function(module, ir.FunctionType(ir.VoidType(), [FPTR] * nbuf + [I64, FPTR]),
                      name=f"{rule.name}.one")
    for arg in one.args[:nbuf]:
        arg.add_attribute("noalias")
    entry, loop, done = one.append_basic_block("entry"), one.append_basic_block("loop"), \
        one.append_basic_block("done")
    b = ir.IRBuilder(entry)
    n, scalars_ptr = one.args[nbuf], one.args[nbuf + 1]
    scalars = {name: b.load(b.gep(scalars_ptr, [ir.Constant(I64, k)]), name=name)
               for k, name in enumerate(rule.scalars)}
    b.cbranch(b.icmp_signed(">", n, ir.Constant(I64, 0)), loop, done)
    b = ir.IRBuilder(loop)
    i = b.phi(I64, name="i")
    i.add_incoming(ir.Constant(I64, 0), entry)
    ptrs = {name: b.gep(one.args[k], [i]) for k, name in enumerate(rule.reads)}
    values = {name: b.load(ptr, name=name) for name, ptr in ptrs.items()}
    new = rule.body(_LlvmOps(b, module), values, scalars)
    for name in rule.writes:
        b.store(new[name], ptrs[name])
    nxt = b.add(i, ir.Constant(I64, 1))
    i.add_incoming(nxt, loop)
    b.cbranch(b.icmp_signed("<", nxt, n), loop, done)
    ir.IRBuilder(done).ret_void()

    ntab = nbuf + (1 if rule.counts_steps else 0)
    outer = ir.Function(module, ir.FunctionType(
        ir.VoidType(), [I64, I64.as_pointer()] + [FPTR.as_pointer()] * ntab + [FPTR]), name=rule.name)
    entry, loop, done = outer.append_basic_block("entry"), outer.append_basic_block("loop"), \
        outer.append_basic_block("done")
    b = ir.IRBuilder(entry)
    count, sizes, tables, scalars_ptr = outer.args[0], outer.args[1], outer.args[2:2 + nbuf], outer.args[-1]
    b.cbranch(b.icmp_signed(">", count, ir.Constant(I64, 0)), loop, done)
    b = ir.IRBuilder(loop)
    t = b.phi(I64, name="t")
    t.add_incoming(ir.Constant(I64, 0), entry)
    bufs = [b.load(b.gep(table, [t])) for table in tables]
    b.call(one, bufs + [b.load(b.gep(sizes, [t])), scalars_ptr])
    if rule.counts_steps:  # state["step"] += 1, in the same call
        step_ptr = b.load(b.gep(outer.args[2 + nbuf], [t]))
        b.store(b.fadd(b.load(step_ptr), ir.Constant(F32, 1.0)), step_ptr)
    nxt = b.add(t, ir.Constant(I64, 1))
    t.add_incoming(nxt, loop)
    b.cbranch(b.icmp_signed("<", nxt, count), loop, done)
    ir.IRBuilder(done).ret_void()
    return str(module)


@lru_cache(maxsize=None)
def cpu_kernel(rule: Rule) -> Any:
    """``rule``'s kernel as a ctypes callable
    ``f(n_tensors, sizes_addr, table_addr_0, ..., table_addr_k[, steps_addr], scalars_addr)``."""
    from irc.backends.llvm.jit import compile_llvm_ir
    jit = compile_llvm_ir(llvm_ir(rule))
    ntab = len(rule.reads) + (1 if rule.counts_steps else 0)
    proto = ctypes.CFUNCTYPE(None, ctypes.c_int64, *([ctypes.c_void_p] * (ntab + 2)))
    fn = proto(jit.address(rule.name))
    setattr(fn, "_irc_jit_module", jit)  # keep the code alive with the callable
    return fn
