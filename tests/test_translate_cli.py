"""``irc translate``: every stage of a .mlir file and of a model factory; errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from irc.cli import main

SOFTMAX_MLP = """\
builtin.module {
  func.func @main(%x: tensor<4x8xf32>, %w: tensor<8x8xf32>) -> tensor<4x8xf32> {
    %m = graph.amax %x {dims = array<i64: 1>, keepdim = true} : tensor<4x8xf32> -> tensor<4x1xf32>
    %s = graph.sub %x, %m : (tensor<4x8xf32>, tensor<4x1xf32>) -> tensor<4x8xf32>
    %e = graph.exp %s : tensor<4x8xf32> -> tensor<4x8xf32>
    %t = graph.sum %e {dims = array<i64: 1>, keepdim = true} : tensor<4x8xf32> -> tensor<4x1xf32>
    %d = graph.div %e, %t : (tensor<4x8xf32>, tensor<4x1xf32>) -> tensor<4x8xf32>
    %mm = graph.matmul %d, %w : (tensor<4x8xf32>, tensor<8x8xf32>) -> tensor<4x8xf32>
    %r = graph.relu %mm : tensor<4x8xf32> -> tensor<4x8xf32>
    func.return %r : tensor<4x8xf32>
  }
}
"""


@pytest.fixture
def mlir_file(tmp_path: Path) -> Path:
    path = tmp_path / "softmax_mlp.mlir"
    path.write_text(SOFTMAX_MLP)
    return path


def translate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["translate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_to_graph(mlir_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = translate(capsys, str(mlir_file), "--to", "graph")
    assert code == 0, err
    assert "graph.amax" in out and "func.call" not in out and "irc.kernel" not in out


def test_to_kernel(mlir_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = translate(capsys, str(mlir_file), "--to", "kernel")
    assert code == 0, err
    assert out.count("attributes {irc.kernel") == 2
    assert "func.call @kernel_0(%x)" in out and "func.call @kernel_1(%mm)" in out
    assert 'irc.memory = "peak ' in out
    assert 'irc.iteration = "4x8 -> reduce(1) 4x1 -> 4x8' in out


def test_output_file(mlir_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out.mlir"
    code, out, err = translate(capsys, str(mlir_file), "-o", str(target))
    assert code == 0, err
    assert out == ""
    assert "func.func private @kernel_0" in target.read_text()


def test_to_loops(mlir_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = translate(capsys, str(mlir_file), "--to", "loops")
    assert code == 0, err
    assert "scf.for" in out and "memref" in out


def test_to_llvm(mlir_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = translate(capsys, str(mlir_file), "--to", "llvm")
    assert code == 0, err
    assert "define" in out and "kernel_0" in out


def test_to_triton(mlir_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = translate(capsys, str(mlir_file), "--to", "triton")
    assert code == 0, err
    assert "@triton.jit" in out


def test_bad_mlir_points_at_the_op(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.mlir"
    path.write_text(SOFTMAX_MLP.replace("graph.amax %x {dims = array<i64: 1>",
                                        "graph.amax %x {dims = array<i64: 0>"))
    code, out, err = translate(capsys, str(path))
    assert code == 1 and out == ""
    assert f"{path}:3:5: error: 'graph.amax' op result shape" in err
    assert err.rstrip().endswith("^") and "Traceback" not in err


def test_syntax_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "syntax.mlir"
    path.write_text("builtin.module {\n  func.func @main( {\n}\n")
    code, _, err = translate(capsys, str(path))
    assert code == 1
    assert err.startswith(f"{path}:2:") and "Traceback" not in err


def test_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = translate(capsys, "does/not/exist.mlir")
    assert code == 1 and "cannot read" in err


def test_bad_factory_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "factories.py"
    path.write_text("MODELS = {'tiny': lambda: None}\nVALUE = 3\n")
    code, _, err = translate(capsys, f"{path}:nope")
    assert code == 1 and "no factory named 'nope'" in err and "MODELS has: tiny" in err
    code, _, err = translate(capsys, f"{path}:VALUE")
    assert code == 1 and "not a function" in err
    code, _, err = translate(capsys, f"{path}:tiny")
    assert code == 1 and "must return (model, example_inputs)" in err
    code, _, err = translate(capsys, f"{tmp_path / 'absent.py'}:f")
    assert code == 1 and "no such Python file" in err


def test_factory_file_that_raises(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.py"
    path.write_text("raise RuntimeError('boom')\n")
    code, _, err = translate(capsys, f"{path}:f")
    assert code == 1 and "RuntimeError: boom" in err and "Traceback" not in err


def test_model_factory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "small.py"
    path.write_text(textwrap.dedent("""\
        import torch

        def softmax_model():
            return torch.nn.Softmax(dim=-1), (torch.randn(4, 16),)
    """))
    code, out, err = translate(capsys, f"{path}:softmax_model", "--to", "kernel")
    assert code == 0, err
    assert out.count("attributes {irc.kernel") == 1


def test_models_dict_entry(capsys: pytest.CaptureFixture[str]) -> None:
    models = Path(__file__).with_name("models.py")
    code, out, err = translate(capsys, f"{models}:MLP", "--to", "kernel")
    assert code == 0, err
    assert out.count("graph.matmul") == 3 and "func.call @kernel_0" in out
