"""Migrating a model kernel by kernel, and bisecting for the kernel that breaks it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from xdsl.dialects import func
from xdsl.dialects.builtin import FileLineColLoc, IntAttr, ModuleOp, StringAttr
from xdsl.ir import Block, Region

import broken_backends
from broken_backends import CHAIN_FILE, chain_program
from irc.cli import main as irc_main
from irc.debug import bisect, compile_offloaded, run_carved, run_offloaded
from irc.errors import IrcError
from irc.frontends.program import Program
from irc.ir import graph as g
from irc.ir.interpreter import interpret
from irc.ir.types import tensor_type
from models import MODELS

broken_backends.register()
TESTS = Path(__file__).resolve().parent
RUN_SLACK = 3  # the reference run, the all-migrated run, the confirmation


def _x() -> list[torch.Tensor]:
    return [torch.randn(4, 8, generator=torch.Generator().manual_seed(3))]


def _loc(line: int) -> FileLineColLoc:
    return FileLineColLoc(StringAttr("layered.py"), IntAttr(line), IntAttr(1))


def layered_program() -> tuple[Program, list[torch.Tensor]]:
    """Graph level: exp -> matmul -> (sub bias) -> matmul -> tanh -> row sum.
    The extern matmuls split it into three kernels; the sub is in the middle one."""
    t = tensor_type([4, 8], torch.float32)
    sq = tensor_type([8, 8], torch.float32)
    block = Block(arg_types=[t])
    x = block.args[0]
    w1, w2, bias = g.WeightOp("w1", sq), g.WeightOp("w2", sq), g.WeightOp("bias", t)
    a = g.ExpOp(x)
    m1 = g.MatmulOp(a, w1)
    s = g.SubOp(m1, bias)
    m2 = g.MatmulOp(s, w2)
    h = g.TanhOp(m2)
    r = g.SumOp(h, [1])
    for line, op in zip((1, 2, 3, 4, 5, 6), (a, m1, s, m2, h, r)):
        op.location = _loc(line)
    block.add_ops([w1, w2, bias, a, m1, s, m2, h, r, func.ReturnOp(r)])
    fn = func.FuncOp("main", ([t], [r.result.type]), Region(block))
    gen = torch.Generator().manual_seed(2)
    weights = {"w1": torch.randn(8, 8, generator=gen) / 3, "w2": torch.randn(8, 8, generator=gen) / 3,
               "bias": torch.randn(4, 8, generator=gen)}
    return Program(ModuleOp([fn]), weights), _x()


@pytest.mark.parametrize("n,culprit", [(10, 0), (10, 5), (10, 9), (37, 1), (37, 20), (37, 36)])
@pytest.mark.parametrize("target", ["broken-sub", "broken-sub-kernel"])
def test_bisect_names_the_culprit_and_its_source_line(n: int, culprit: int, target: str) -> None:
    report = bisect(chain_program(n, culprit), _x(), target=target)
    assert report.culprit == f"kernel_{culprit}" and report.culprit_index == culprit
    assert report.sources and set(report.sources) == {f"{CHAIN_FILE}:{culprit + 1}"}
    assert [op.name for op in report.culprit_ops] == ["graph.neg", "graph.sub"]
    assert report.confirm is not None and not report.confirm.passed
    assert "graph.sub" in (report.kernel_ir or "")
    assert [op.name for op in report.failing_ops] == ["graph.sub"]


@pytest.mark.parametrize("n", [10, 100, 1000])
def test_bisect_cost_is_logarithmic(n: int) -> None:
    bound = math.ceil(math.log2(n)) + RUN_SLACK
    for culprit in ((0, n // 3, n - 1) if n < 1000 else (n // 3,)):  # 1000 kernels: keep it quick
        report = bisect(chain_program(n, culprit), _x(), target="broken-sub")
        assert report.culprit == f"kernel_{culprit}"
        assert report.model_runs <= bound, (n, culprit, report.model_runs)
        assert report.model_runs == len(report.steps)
    if n == 1000:  # a big graph is drawn around the culprit only
        page = report.to_html()
        assert "showing" in page and page.count("<rect") < 200


def test_clean_migration_has_no_culprit() -> None:
    report = bisect(chain_program(20, None), _x(), target="broken-sub")
    assert report.culprit is None and report.model_runs == 2
    assert "within tolerance" in report.message


def test_bisect_through_fuse_on_a_graph_program(tmp_path: Path) -> None:
    program, inputs = layered_program()
    report = bisect(program, inputs, target="broken-sub", case_dir=tmp_path / "case")
    assert report.culprit is not None
    assert "graph.sub" in [op.name for op in report.culprit_ops]
    assert "layered.py:3" in report.sources
    # compiled op by op, only the sub fails: the report points at its line
    assert [(op.name, op.source) for op in report.failing_ops] == [("graph.sub", "layered.py:3")]
    # the written cases (kernel + failing op) reproduce the culprit alone
    assert all(r.passed for r in run_carved(tmp_path / "case", "reference"))
    assert not any(r.passed for r in run_carved(tmp_path / "case", "broken-sub"))


def test_bisect_finds_a_wrong_axis_reduction() -> None:
    program, inputs = layered_program()
    report = bisect(program, inputs, target="broken-reduce")
    assert report.culprit is not None and "layered.py:6" in report.sources
    assert "graph.sum" in [op.name for op in report.culprit_ops]
    assert [op.name for op in report.failing_ops] == ["graph.sum"]


def test_run_offloaded_migrates_only_the_chosen_kernels() -> None:
    program = chain_program(6, 3)
    x = _x()
    expected = interpret(program.module, x)
    for offload in (set(), {"kernel_0", "kernel_5"}, lambda name: name != "kernel_3"):
        torch.testing.assert_close(run_offloaded(program, x, "broken-sub", offload)[0], expected[0])
    broken = run_offloaded(program, x, "broken-sub", {"kernel_3"})[0]
    torch.testing.assert_close(broken, -expected[0])
    exe = compile_offloaded(program, "reference", None)
    assert exe.eager_kernels == []
    torch.testing.assert_close(exe(*x)[0], expected[0])
    with pytest.raises(IrcError, match="unknown kernel"):
        compile_offloaded(program, "reference", {"kernel_99"})


def test_run_offloaded_lowers_a_graph_program() -> None:
    program, inputs = layered_program()
    expected = interpret(program.module, inputs, program.weights)[0]
    got = run_offloaded(program, inputs, "reference", None)[0]
    torch.testing.assert_close(got, expected)


def test_reports_text_and_html() -> None:
    program, inputs = layered_program()
    report = bisect(program, inputs, target="broken-sub")
    text = report.to_text()
    assert report.culprit in text and "layered.py:3" in text and "model runs:" in text
    page = report.to_html()
    assert page.count("<svg") == 2 and "<script" not in page and "http" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    assert 'fill="#f66"' in page  # the culprit is highlighted in the kernel graph
    assert f"<title>{report.culprit}</title>" in page


def test_cli_bisect(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    factory = tmp_path / "layered_factory.py"
    factory.write_text(f"import sys\nsys.path.insert(0, {str(TESTS)!r})\n"
                       "from test_bisect import layered_program\n\n"
                       "def make():\n    return layered_program()\n")
    html = tmp_path / "report.html"
    code = irc_main(["bisect", f"{factory}:make", "--target", "broken-sub", "--plugin",
                     str(TESTS / "broken_backends.py"), "--html", str(html),
                     "--case-dir", str(tmp_path / "case")])
    out = capsys.readouterr().out
    assert code == 1 and "culprit kernel:" in out and "layered.py:3" in out
    assert html.read_text().startswith("<!DOCTYPE html>")
    assert (tmp_path / "case" / "manifest.json").is_file()
    assert irc_main(["bisect", f"{factory}:make", "--target", "reference"]) == 0


def test_bisect_a_real_model() -> None:
    model, inputs = MODELS["BERTEncoderBlock"]()
    report = bisect(model, inputs, target="broken-sub")
    assert report.culprit is not None
    assert "graph.sub" in [op.name for op in report.culprit_ops]
    assert any("models.py" in s for s in report.sources)
    assert report.model_runs <= math.ceil(math.log2(len(report.kernels))) + RUN_SLACK


def test_offloaded_model_runs_like_the_model() -> None:
    from irc.debug.offload import OffloadedModel
    model, inputs = MODELS["GPTDecoderBlock"]()
    with torch.no_grad():
        expected = model(*inputs)
    half = OffloadedModel(model, "reference", lambda name: int(name.split("_")[1]) % 2 == 0)
    torch.testing.assert_close(half(*inputs), expected, rtol=1e-5, atol=1e-5)
    assert half.compiled_for(*inputs).eager_kernels  # some kernels really stayed eager
    # the whole model on a backend that negates graph.sub (BERT's layer norm and
    # softmax subtract; the GPT block's attention is one library call)
    model, inputs = MODELS["BERTEncoderBlock"]()
    with torch.no_grad():
        expected = model(*inputs)
    broken = OffloadedModel(model, "broken-sub", None)(*inputs)
    assert not torch.allclose(broken, expected, equal_nan=True)


def test_cpu_migration_and_generated_code() -> None:
    from irc.debug.bisect import generated_code
    from irc.debug.offload import KernelMigrator
    program, inputs = layered_program()
    report = bisect(program, inputs, target="cpu")
    assert report.culprit is None and report.model_runs == 2  # the cpu backend is right
    migrator = KernelMigrator(program, "cpu")
    code = generated_code(migrator, migrator.order[0]) or ""
    assert f'define void @"{migrator.order[0]}"' in code
    expected = interpret(program.module, inputs, program.weights)[0]
    half = run_offloaded(program, inputs, "cpu", {migrator.order[0]})[0]
    torch.testing.assert_close(half, expected, rtol=1e-5, atol=1e-5)


def test_irc_compile_with_offload() -> None:
    import irc
    model, inputs = MODELS["MLP"]()
    with torch.no_grad():
        expected = model(*inputs)
    fast = irc.compile(model, target="broken-sub", offload=lambda name: False)
    torch.testing.assert_close(fast(*inputs), expected)
    first = irc.compile(target="reference", offload={"kernel_0"})(model)
    torch.testing.assert_close(first(*inputs), expected, rtol=1e-5, atol=1e-5)
    assert "kernel_0" not in first.compiled_for(*inputs).eager_kernels


def test_a_kernel_the_target_cannot_compile_is_the_culprit() -> None:
    program, inputs = layered_program()
    report = bisect(program, inputs, target="no-exp")
    assert report.culprit is not None and "layered.py:1" in report.sources
    assert [op.name for op in report.failing_ops] == ["graph.exp"]
    assert report.confirm is not None and "graph.exp is not supported" in (report.confirm.error or "")
    assert "error: BackendError" in report.to_text()
