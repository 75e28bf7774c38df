"""Carving per-op tests from a real run, and running them on backends."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from xdsl.dialects import func
from xdsl.dialects.builtin import FileLineColLoc, IntAttr, ModuleOp, StringAttr
from xdsl.ir import Block, Region

import broken_backends
from irc.cli import main as irc_main
from irc.debug import CarvedTestError, carve, run_carved
from irc.debug.carved_tests import load_manifest, run_case
from irc.frontends.program import Program
from irc.ir import graph as g
from irc.ir.interpreter import interpret
from irc.ir.types import tensor_type
from models import MODELS

broken_backends.register()
TESTS = Path(__file__).resolve().parent


def _loc(line: int) -> FileLineColLoc:
    return FileLineColLoc(StringAttr("toy_model.py"), IntAttr(line), IntAttr(1))


def toy_program() -> tuple[Program, list[torch.Tensor]]:
    """x - y, exp, * weight, row sum, minus row sum, minus again (a duplicate
    sub with the same types), matmul, mean: seven distinct op kinds/types."""
    t = tensor_type([4, 8], torch.float32)
    block = Block(arg_types=[t, t])
    x, y = block.args
    w = g.WeightOp("w", t)
    wt = g.WeightOp("wt", tensor_type([8, 4], torch.float32))
    ops = [w, wt]
    a = g.SubOp(x, y)
    b = g.ExpOp(a)
    c = g.MulOp(b, w)
    d = g.SumOp(c, [1], keepdim=True)
    e = g.SubOp(c, d)
    f = g.SubOp(e, x)  # same key as `a`: deduplicated
    m = g.MatmulOp(f, wt)
    r = g.MeanOp(m, [0])
    for line, op in enumerate([a, b, c, d, e, f, m, r], start=10):
        op.location = _loc(line)
        ops.append(op)
    block.add_ops([*ops, func.ReturnOp(r)])
    fn = func.FuncOp("main", ([t, t], [r.result.type]), Region(block))
    gen = torch.Generator().manual_seed(1)
    weights = {"w": torch.randn(4, 8, generator=gen), "wt": torch.randn(8, 4, generator=gen)}
    inputs = [torch.randn(4, 8, generator=gen), torch.randn(4, 8, generator=gen)]
    return Program(ModuleOp([fn]), weights), inputs


@pytest.fixture
def carved(tmp_path: Path) -> Path:
    program, inputs = toy_program()
    carve(program, inputs, tmp_path / "carved", model_name="toy")
    return tmp_path / "carved"


def test_carve_writes_a_self_contained_folder(carved: Path) -> None:
    manifest = json.loads((carved / "manifest.json").read_text())
    assert manifest["format"] == "irc-carved" and manifest["model"] == "toy"
    cases = manifest["cases"]
    assert [c["op"] for c in cases] == ["graph.sub", "graph.exp", "graph.mul", "graph.sum",
                                        "graph.sub", "graph.matmul", "graph.mean"]
    first = cases[0]
    assert first["source"] == "toy_model.py:10" and first["occurrences"] == 2
    assert first["also_at"] == ["toy_model.py:15"]
    for case in cases:
        assert (carved / case["ir"]).is_file() and (carved / case["tensors"]).is_file()
    assert (carved / "test_carved.py").is_file() and (carved / "conftest.py").is_file()


def test_carved_tensors_are_the_real_activations(carved: Path) -> None:
    program, inputs = toy_program()
    manifest = json.loads((carved / "manifest.json").read_text())
    exp_case = next(c for c in manifest["cases"] if c["op"] == "graph.exp")
    tensors = load_file(str(carved / exp_case["tensors"]))
    torch.testing.assert_close(tensors["in0"], inputs[0] - inputs[1])
    torch.testing.assert_close(tensors["out0"], torch.exp(inputs[0] - inputs[1]))
    # the whole model's output equals the last case's recorded output
    mean_case = manifest["cases"][-1]
    out = load_file(str(carved / mean_case["tensors"]))["out0"]
    torch.testing.assert_close(out, interpret(program.module, inputs, program.weights)[0])


def test_carved_cases_pass_on_reference(carved: Path) -> None:
    results = run_carved(carved, "reference")
    assert len(results) == 7 and all(r.passed for r in results)


def test_broken_sub_fails_exactly_the_sub_cases(carved: Path) -> None:
    results = run_carved(carved, "broken-sub")
    failed = {r.case.id for r in results if not r.passed}
    assert failed == {r.case.id for r in results if r.case.op == "graph.sub"}
    assert len(failed) == 2


def test_broken_reduce_fails_exactly_the_sum_case(carved: Path) -> None:
    results = run_carved(carved, "broken-reduce")
    assert [r.case.op for r in results if not r.passed] == ["graph.sum"]


def test_max_cases_keeps_the_riskiest(tmp_path: Path) -> None:
    program, inputs = toy_program()
    result = carve(program, inputs, tmp_path / "few", max_cases=2)
    assert result.unique_cases == 7
    assert {c.op for c in result.cases} == {"graph.exp", "graph.matmul"}  # transcendental, K=8


def test_kernel_level_carve(tmp_path: Path) -> None:
    program, inputs = toy_program()
    result = carve(program, inputs, tmp_path / "kernels", level="kernel")
    assert result.cases and all(c.op.startswith("kernel_") for c in result.cases)
    results = run_carved(tmp_path / "kernels", "reference")
    assert results and all(r.passed for r in results)
    broken = run_carved(tmp_path / "kernels", "broken-sub")
    assert any(not r.passed for r in broken)
    assert all(r.passed for r in broken if "graph.sub" not in r.case.ops)


def test_deleted_tensor_file_is_a_clear_error(carved: Path, capsys: pytest.CaptureFixture) -> None:
    victim = carved / "cases" / "0001_exp.safetensors"
    victim.unlink()
    with pytest.raises(CarvedTestError, match="0001_exp.safetensors: file is missing"):
        run_carved(carved, "reference")
    assert irc_main(["test-carved", str(carved), "--target", "reference"]) == 1
    err = capsys.readouterr().err
    assert "0001_exp.safetensors" in err and "Traceback" not in err


def test_corrupted_tensor_file_is_a_clear_error(carved: Path, capsys: pytest.CaptureFixture) -> None:
    victim = carved / "cases" / "0003_sum.safetensors"
    victim.write_bytes(victim.read_bytes()[:-7] + b"garbage")
    assert irc_main(["test-carved", str(carved), "--target", "reference"]) == 1
    err = capsys.readouterr().err
    assert "0003_sum.safetensors: sha256 mismatch" in err and "Traceback" not in err


def test_unloadable_tensor_file_names_the_file(carved: Path) -> None:
    # a file whose checksum was updated but is not safetensors any more
    suite = load_manifest(carved)
    case = suite.cases[0]
    case.tensor_path.write_bytes(b"not a safetensors file")
    import hashlib
    case.sha256["tensors"] = hashlib.sha256(b"not a safetensors file").hexdigest()
    with pytest.raises(CarvedTestError, match="cannot load safetensors file"):
        run_case(case, "reference")


def test_cli_carve_and_test_carved(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    factory = tmp_path / "toy_factory.py"
    factory.write_text(f"import sys\nsys.path.insert(0, {str(TESTS)!r})\n"
                       "from test_carve import toy_program\n\n"
                       "def make():\n    return toy_program()\n")
    out = tmp_path / "cli"
    assert irc_main(["carve", f"{factory}:make", "-o", str(out), "--max-cases", "3"]) == 0
    assert len(load_manifest(out).cases) == 3
    assert irc_main(["test-carved", str(out), "--target", "reference"]) == 0
    table = capsys.readouterr().out
    assert "PASS" in table and "toy_model.py:" in table and "3 passed, 0 failed" in table
    code = irc_main(["test-carved", str(out), "--target", "broken-sub",
                     "--plugin", str(TESTS / "broken_backends.py")])
    assert code in (0, 1)  # depends on whether a sub case was among the riskiest three
    assert irc_main(["carve", f"{factory}:nope", "-o", str(out)]) == 1
    assert "no factory named 'nope'" in capsys.readouterr().err


def test_generated_pytest_file_runs(carved: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "pytest", str(carved), "-q", "-p", "no:cacheprovider",
                         "--target", "reference"], capture_output=True, text=True, cwd=carved)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "7 passed" in ok.stdout


@pytest.mark.parametrize("name", ["MLP", "ResNetCNN", "GPTDecoderBlock", "BERTEncoderBlock"])
def test_carving_each_model_passes_on_reference(name: str, tmp_path: Path) -> None:
    model, inputs = MODELS[name]()
    result = carve(model, inputs, tmp_path / name, model_name=name)
    assert result.cases
    assert any(c.source and "models.py" in c.source for c in result.cases)
    targets = ["reference", "cpu"]
    for target in targets:
        results = run_carved(tmp_path / name, target)
        bad = [(r.case.id, r.error) for r in results if not r.passed]
        assert not bad, f"{name} on {target}: {bad}"


@pytest.mark.parametrize("name", ["GPTDecoderBlock", "BERTEncoderBlock"])
def test_kernel_level_carving_of_models(name: str, tmp_path: Path) -> None:
    """Kernel cases hold -inf mask constants: they must survive the .mlir round trip."""
    model, inputs = MODELS[name]()
    carve(model, inputs, tmp_path / name, level="kernel")
    for target in ["reference", "cpu"]:
        bad = [(r.case.id, r.error) for r in run_carved(tmp_path / name, target) if not r.passed]
        assert not bad, f"{name} kernels on {target}: {bad}"


def test_nonfinite_constants_become_inputs(tmp_path: Path) -> None:
    from irc.debug.carve import hoist_nonfinite_constants
    from xdsl.dialects.builtin import DenseIntOrFPElementsAttr
    t = tensor_type([3], torch.float32)
    block = Block(arg_types=[t])
    ninf = g.ConstantOp(DenseIntOrFPElementsAttr.from_list(tensor_type([], torch.float32),
                                                           [float("-inf")]))
    out = g.MaximumOp(block.args[0], ninf)
    block.add_ops([ninf, out, func.ReturnOp(out)])
    module = ModuleOp([func.FuncOp("main", ([t], [t]), Region(block))])
    x = torch.tensor([1.0, -2.0, 3.0])
    hoisted, inputs = hoist_nonfinite_constants(module, [x])
    assert len(inputs) == 2 and inputs[1].item() == float("-inf")
    assert "0xff800000" not in str(hoisted)
    torch.testing.assert_close(interpret(hoisted, inputs)[0], x)
