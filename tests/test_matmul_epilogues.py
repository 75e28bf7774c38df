"""The ``matmul-epilogues`` pass of the cuda pipeline: the Triton template's
decision (which matmuls, which consumer kernel becomes the epilogue) is an IR
attribute that the code generator only emits."""

from __future__ import annotations

import pytest
from xdsl.dialects.builtin import SymbolRefAttr, UnitAttr

from irc.backends.triton.codegen import generate_source
from irc.config import Config
from irc.errors import BackendError
from irc.ir import graph as g
from irc.ir.kernel import find_main
from irc.ir.text import parse_module, print_module
from irc.passes.pipeline import run_pipeline

BIAS_GELU = """builtin.module {
func.func @main(%x: tensor<8x16xf32>, %w: tensor<16x12xf32>, %b: tensor<12xf32>)
    -> tensor<8x12xf32> {
  %y = graph.matmul %x, %w : (tensor<8x16xf32>, tensor<16x12xf32>) -> tensor<8x12xf32>
  %z = graph.add %y, %b : (tensor<8x12xf32>, tensor<12xf32>) -> tensor<8x12xf32>
  %o = graph.gelu %z {approximate = "tanh"} : tensor<8x12xf32> -> tensor<8x12xf32>
  func.return %o : tensor<8x12xf32>
}
}"""

# the product read at another element (a row max): the template may run the
# matmul, but the consumer stays a kernel of its own
ROW_MAX = """builtin.module {
func.func @main(%a: tensor<6x9xf32>, %b: tensor<9x10xf32>) -> tensor<6x10xf32> {
  %y = graph.matmul %a, %b : (tensor<6x9xf32>, tensor<9x10xf32>) -> tensor<6x10xf32>
  %m = graph.amax %y {dims = array<i64: 1>, keepdim = true} : tensor<6x10xf32> -> tensor<6x1xf32>
  %o = graph.sub %y, %m : (tensor<6x10xf32>, tensor<6x1xf32>) -> tensor<6x10xf32>
  func.return %o : tensor<6x10xf32>
}
}"""


# pointwise, but it reads the product at its transposed element too: not an epilogue
NEIGHBOUR = """builtin.module {
func.func @main(%a: tensor<6x9xf32>, %b: tensor<9x10xf32>) -> tensor<6x10xf32> {
  %y = graph.matmul %a, %b : (tensor<6x9xf32>, tensor<9x10xf32>) -> tensor<6x10xf32>
  %f = graph.permute %y {dims = array<i64: 1, 0>} : tensor<6x10xf32> -> tensor<10x6xf32>
  %r = graph.reshape %f : tensor<10x6xf32> -> tensor<6x10xf32>
  %o = graph.add %r, %y : (tensor<6x10xf32>, tensor<6x10xf32>) -> tensor<6x10xf32>
  func.return %o : tensor<6x10xf32>
}
}"""


def _matmuls(module) -> list[g.MatmulOp]:  # type: ignore[no-untyped-def]
    return [op for op in find_main(module).body.block.ops if isinstance(op, g.MatmulOp)]


def _marked(text: str, pipeline: str = "fuse,matmul-epilogues"):  # type: ignore[no-untyped-def]
    module = parse_module(text)[0]
    run_pipeline(module, pipeline, verify_each=True)
    return module


def test_cuda_pipeline_ends_with_the_pass_and_cpu_has_none() -> None:
    assert Config().pipeline_for("cuda").split(",")[-1] == "matmul-epilogues"
    assert "matmul-epilogues" not in Config().pipeline_for("cpu")


def test_fusible_consumer_is_named_in_the_ir_and_round_trips() -> None:
    module = _marked(BIAS_GELU)
    [mm] = _matmuls(module)
    assert mm.attributes["irc.template"] == UnitAttr()
    assert mm.attributes["irc.epilogue"] == SymbolRefAttr("kernel_0")
    text = print_module(module)
    assert "irc.epilogue = @kernel_0" in text and "irc.template" in text
    again = parse_module(text)[0]
    assert generate_source(again, matmul="triton") == generate_source(module, matmul="triton")
    fused = generate_source(module, matmul="triton")
    assert "def kernel_0(" not in fused and "_launch_matmul(matmul_0," in fused


@pytest.mark.parametrize("text", [ROW_MAX, NEIGHBOUR], ids=["row_max", "neighbour"])
def test_consumer_reading_other_elements_gets_no_epilogue(text: str) -> None:
    [mm] = _matmuls(_marked(text))
    assert "irc.template" in mm.attributes and "irc.epilogue" not in mm.attributes


@pytest.mark.parametrize("ty", ["f64", "i32"])
def test_matmuls_the_template_cannot_run_are_not_marked(ty: str) -> None:
    text = BIAS_GELU.replace("f32", ty).replace('%o = graph.gelu %z {approximate = "tanh"}',
                                                "%o = graph.neg %z")
    [mm] = _matmuls(_marked(text))
    assert "irc.template" not in mm.attributes and "irc.epilogue" not in mm.attributes


def test_codegen_only_emits_what_the_pass_decided() -> None:
    unmarked = _marked(BIAS_GELU, "fuse")
    source = generate_source(unmarked, matmul="triton")
    assert "tl.dot" not in source and "torch.matmul" in source
    marked = _marked(BIAS_GELU)
    [mm] = _matmuls(marked)
    del mm.attributes["irc.epilogue"]  # the template without its epilogue
    source = generate_source(marked, matmul="triton")
    assert "tl.dot" in source and "def kernel_0(" in source


def test_running_twice_changes_nothing_and_stale_decisions_are_errors() -> None:
    module = _marked(BIAS_GELU)
    once = print_module(module)
    run_pipeline(module, "matmul-epilogues")
    assert print_module(module) == once
    [mm] = _matmuls(module)
    mm.attributes["irc.epilogue"] = SymbolRefAttr("kernel_9")
    with pytest.raises(BackendError, match="irc.epilogue"):
        generate_source(module, matmul="triton")
