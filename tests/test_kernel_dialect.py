"""The kernel level (irc/ir/kernel.py): helpers, verifier, interpreter semantics."""

from __future__ import annotations

import pytest
import torch

from irc.errors import IrcError, PassError, VerificationError
from irc.ir import graph as g
from irc.ir.interpreter import interpret
from irc.ir.kernel import (
    MAX_FUSED_CONCAT_INPUTS,
    find_main,
    is_extern,
    is_kernel_level,
    kernel_calls,
    kernel_functions,
    kernels_by_name,
    verify_kernel_module,
)
from irc.ir.text import parse_module, print_module, verify_module
from irc.passes.pipeline import run_pipeline

GRAPH = """
func.func @main(%x: tensor<4x8xf32>, %w: tensor<8x16xf32>) -> tensor<4x16xf32> {
  %e = graph.exp %x : tensor<4x8xf32> -> tensor<4x8xf32>
  %mm = graph.matmul %e, %w : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
  %r = graph.relu %mm : tensor<4x16xf32> -> tensor<4x16xf32>
  func.return %r : tensor<4x16xf32>
}
"""


def test_fuse_output_is_a_verified_kernel_module_with_the_same_meaning() -> None:
    graph, _ = parse_module(GRAPH)
    kernel = graph.clone()
    run_pipeline(kernel, "fuse")
    assert not is_kernel_level(graph) and is_kernel_level(kernel)
    verify_kernel_module(kernel)
    kernels = kernel_functions(kernel)
    assert [k.sym_name.data for k in kernels] == ["kernel_0", "kernel_1"]
    assert list(kernels_by_name(kernel)) == ["kernel_0", "kernel_1"]
    assert [c.callee.string_value() for c in kernel_calls(kernel)] == ["kernel_0", "kernel_1"]
    host_ops = [op for op in find_main(kernel).body.block.ops if is_extern(op)]
    assert [op.name for op in host_ops] == ["graph.matmul"]
    # the interpreter runs the kernel calls: same results as the graph level, bit for bit
    x, w = torch.randn(4, 8), torch.randn(8, 16)
    (want,) = interpret(graph, [x, w])
    (got,) = interpret(kernel, [x, w])
    assert torch.equal(want, got)
    # and the printed kernel level parses back to the same text, verified
    text = print_module(kernel)
    again, source_map = parse_module(text)
    verify_module(again, source_map)
    assert print_module(again) == text


def test_find_main_names_who_asked() -> None:
    module, _ = parse_module("func.func @other() {\n  func.return\n}\n")
    with pytest.raises(PassError, match="^fuse: the module has no func.func @main$"):
        find_main(module, "fuse", PassError)
    with pytest.raises(IrcError, match="^the module has no func.func @main$"):
        find_main(module)


def test_a_concat_is_extern_only_when_wide() -> None:
    def concat(n: int) -> str:
        args = ", ".join(f"%x{i}" for i in range(n))
        params = ", ".join(f"%x{i}: tensor<2xf32>" for i in range(n))
        types = ", ".join("tensor<2xf32>" for _ in range(n))
        return (f"func.func @main({params}) -> tensor<{2 * n}xf32> {{\n"
                f"  %c = graph.concat {args} {{dim = 0}} : ({types}) -> tensor<{2 * n}xf32>\n"
                f"  func.return %c : tensor<{2 * n}xf32>\n}}\n")
    for n, extern in ((MAX_FUSED_CONCAT_INPUTS, False), (MAX_FUSED_CONCAT_INPUTS + 1, True)):
        module, _ = parse_module(concat(n))
        (op,) = [o for o in find_main(module).body.block.ops if isinstance(o, g.ConcatOp)]
        assert is_extern(op) is extern


def test_verifier_runs_with_every_verify() -> None:
    graph, _ = parse_module(GRAPH)
    run_pipeline(graph, "fuse")
    text = print_module(graph).replace("attributes {irc.kernel,", 'attributes {irc.kernel = "x",', 1)
    module, source_map = parse_module(text)
    with pytest.raises(VerificationError, match="'irc.kernel' of @kernel_0 must be a unit attribute"):
        verify_module(module, source_map)
