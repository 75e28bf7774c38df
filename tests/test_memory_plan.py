"""Memory planning over the kernel-level host schedule."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr

from irc.ir import graph as g
from irc.ir.interpreter import interpret
from irc.ir.text import parse_module, print_module
from irc.passes.memory_plan import (ALIGN, MemoryPlan, format_bytes, nbytes, plan_memory,
                                    view_only_kernel, weight_derived_values, writes_into_buffer)
from irc.passes.pipeline import run_pipeline

from fuse_programs import build, random_programs, softmax


def main_ops(module: ModuleOp) -> list:
    main = next(op for op in module.ops if isinstance(op, func.FuncOp) and op.sym_name.data == "main")
    return list(main.body.block.ops)


def chain(n: int, width: int = 16, with_matmul: bool = True) -> ModuleOp:
    """x -> (exp | matmul) -> ... n steps; every step is its own host op."""
    def body(e, x, w):  # type: ignore[no-untyped-def]
        v = x
        for i in range(n):
            v = e(g.MatmulOp(v, w)) if with_matmul and i % 2 else e(g.ExpOp(v))
        return [v]
    return build([(width, width), (width, width)], body)


def root(plan: MemoryPlan, value):  # type: ignore[no-untyped-def]
    while value in plan.views:
        value = plan.views[value]
    return value


def check_invariants(module: ModuleOp, plan: MemoryPlan) -> None:
    ops = main_ops(module)
    pos = {op: i for i, op in enumerate(ops)}
    returned = set(ops[-1].operands)
    # every per-call intermediate written by a kernel / matmul has an arena
    # range; outputs, inputs, weight-derived values, views and library results
    # have none
    for op in ops[:-1]:
        for res in op.results:
            unplanned = (isinstance(op, (g.WeightOp, g.ConstantOp)) or res in returned
                         or res in plan.derived or res in plan.views or res in plan.library)
            if unplanned:
                assert res not in plan.assignment
            else:
                offset = plan.assignment[res]
                assert offset % ALIGN == 0 and offset + nbytes(res) <= plan.arena_bytes
            if res in plan.library:
                assert not writes_into_buffer(op)
    assert not (returned & set(plan.assignment))
    # tensors live at the same time (views extend liveness) never overlap in memory;
    # an op's operands and results are live at that op, so they never alias
    span = {}
    for v in plan.assignment:
        aliases = [v] + [w for w in plan.views if root(plan, w) is v]
        start = pos[v.owner]
        span[v] = (start, max((pos[u.operation] for a in aliases for u in a.uses), default=start))
    values = list(plan.assignment)
    for i, a in enumerate(values):
        for b in values[i + 1:]:
            if span[a][0] <= span[b][1] and span[b][0] <= span[a][1]:
                a0, b0 = plan.assignment[a], plan.assignment[b]
                assert a0 + nbytes(a) <= b0 or b0 + nbytes(b) <= a0
    assert plan.peak_bytes <= plan.arena_bytes + sum(nbytes(v) for v in plan.library)
    assert plan.arena_bytes <= sum(-(-max(nbytes(v), 1) // ALIGN) * ALIGN for v in plan.assignment)


def test_long_chain_reuses_two_buffers() -> None:
    m = run_pipeline(chain(12), "fuse")
    plan = plan_memory(m)
    check_invariants(m, plan)
    assert len(plan.assignment) == 11  # the last step is the output
    assert plan.naive_bytes == 11 * 16 * 16 * 4
    assert plan.peak_bytes == 2 * 16 * 16 * 4


def test_chain_peak_bounded_by_two_largest_live() -> None:
    def body(e, x, w1, w2):  # type: ignore[no-untyped-def]
        a = e(g.MatmulOp(x, w1))        # 8x64
        b = e(g.ExpOp(a))               # 8x64
        c = e(g.MatmulOp(b, w2))        # 8x4
        d = e(g.TanhOp(c))              # 8x4
        f = e(g.MatmulOp(d, e(g.PermuteOp(w2, [1, 0]))))  # 8x64
        return [e(g.NegOp(f))]
    m = run_pipeline(build([(8, 16), (16, 64), (64, 4)], body), "fuse")
    plan = plan_memory(m)
    check_invariants(m, plan)
    sizes = sorted((nbytes(v) for v in plan.assignment), reverse=True)
    # the permute of w2 feeds only a matmul: a view, no buffer
    assert len(plan.views) == 1
    assert plan.peak_bytes <= sizes[0] + sizes[1]
    assert plan.peak_bytes < plan.naive_bytes


def test_pure_chain_peak_at_most_two_largest() -> None:
    m = run_pipeline(chain(9, with_matmul=True), "fuse{max-ops=1}")
    plan = plan_memory(m)
    check_invariants(m, plan)
    sizes = sorted((nbytes(v) for v in plan.assignment), reverse=True)
    assert plan.peak_bytes <= sizes[0] + sizes[1]


def test_pass_annotates_main_and_keeps_meaning() -> None:
    m = build([(8, 32)], lambda e, x: [softmax(e, e(g.ExpOp(x)))])
    x = torch.randn(8, 32)
    before = interpret(m, [x])
    run_pipeline(m, "fuse{max-ops=1},memory-plan")
    attr = main_ops(m)[0].parent_op().attributes["irc.memory"]
    assert isinstance(attr, StringAttr)
    assert attr.data.startswith("peak ") and "buffers (naive " in attr.data
    assert torch.equal(interpret(m, [x])[0], before[0])  # the pass only annotates
    again, _ = parse_module(print_module(m))
    assert print_module(again) == print_module(m)


def test_format_bytes() -> None:
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(int(1.2 * 1024 * 1024)) == "1.2 MiB"


try:  # the shared random-program strategy, when it exists
    from graph_strategies import graph_programs as _shared_programs
except ImportError:  # pragma: no cover - depends on another engineer's file
    _shared_programs = None

PROGRAMS = (st.one_of(random_programs(), _shared_programs()) if _shared_programs
            else random_programs())


@settings(max_examples=25, deadline=None)
@given(PROGRAMS)
def test_random_programs_plan_is_sound(program: tuple[ModuleOp, list[torch.Tensor]]) -> None:
    module, _ = program
    run_pipeline(module, "fuse{max-ops=2}")
    check_invariants(module, plan_memory(module))


WEIGHT_PROGRAM = """
func.func @main(%x: tensor<8x16xf32>) -> tensor<8x32xf32> {
  %w = graph.weight "w" : tensor<32x16xf32>
  %t = graph.permute %w {dims = array<i64: 1, 0>} : tensor<32x16xf32> -> tensor<16x32xf32>
  %s = graph.mul %t, %t : (tensor<16x32xf32>, tensor<16x32xf32>) -> tensor<16x32xf32>
  %e = graph.exp %x : tensor<8x16xf32> -> tensor<8x16xf32>
  %p = graph.permute %e {dims = array<i64: 1, 0>} : tensor<8x16xf32> -> tensor<16x8xf32>
  %q = graph.matmul %p, %e : (tensor<16x8xf32>, tensor<8x16xf32>) -> tensor<16x16xf32>
  %m = graph.matmul %x, %s : (tensor<8x16xf32>, tensor<16x32xf32>) -> tensor<8x32xf32>
  %r = graph.relu %m : tensor<8x32xf32> -> tensor<8x32xf32>
  func.return %r : tensor<8x32xf32>
}"""


def test_weight_derived_values_and_views_take_no_per_call_memory() -> None:
    module, _ = parse_module(WEIGHT_PROGRAM)
    run_pipeline(module, "fuse{max-ops=1}")
    ops = main_ops(module)
    plan = plan_memory(module)
    check_invariants(module, plan)
    derived = weight_derived_values(ops)
    assert plan.derived == derived
    # permute(w) and the square of it are weight-derived; the permute of the
    # weight feeds a kernel (not only library calls), so it is a buffer
    assert {v.owner.callee.string_value() for v in derived} and len(derived) == 2
    assert plan.weights_derived_bytes == 2 * 16 * 32 * 4
    # permute(exp(x)) feeds only a matmul: a view of exp(x), which stays live until then
    assert len(plan.views) == 1
    (view, source), = plan.views.items()
    assert view_only_kernel(view.owner, next(
        f for f in module.ops if isinstance(f, func.FuncOp)
        and f.sym_name.data == view.owner.callee.string_value()))
    assert source in plan.assignment and not derived & set(plan.assignment)
    # per-call: exp(x), q, m (r is the output)
    assert plan.naive_bytes == (8 * 16 + 16 * 16 + 8 * 32) * 4
