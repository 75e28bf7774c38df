"""``irc opt`` in-process: every flag, and errors without tracebacks."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from irc.cli import main

PROGRAM = """\
func.func @main(%x: tensor<4xf32>, %y: tensor<4xf32>) -> tensor<4xf32> {
  %dead = graph.exp %x : tensor<4xf32> -> tensor<4xf32>
  %a = graph.add %x, %y : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  %b = graph.add %y, %x : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  %m = graph.mul %a, %b : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32> loc("model.py":12:8)
  func.return %m : tensor<4xf32>
}
"""


@pytest.fixture
def program(tmp_path: Path) -> Path:
    path = tmp_path / "prog.mlir"
    path.write_text(PROGRAM)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["opt", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_no_pass_round_trips(capsys, program: Path) -> None:
    code, out, err = run(capsys, str(program))
    assert code == 0 and err == ""
    assert out.startswith("builtin.module {")
    assert 'loc("model.py":12:8)' in out
    assert out.count("graph.add") == 2


def test_pass_flags_in_order_with_options(capsys, program: Path) -> None:
    code, out, _ = run(capsys, str(program), "--pass", "dce", "--pass-pipeline",
                       "cse,canonicalize{max-iterations=3}")
    assert code == 0
    assert "graph.exp" not in out and out.count("graph.add") == 1
    assert "%m = graph.mul %a, %a" in out


def test_print_ir_after_all_and_after_one(capsys, program: Path) -> None:
    code, out, err = run(capsys, str(program), "--pass-pipeline", "dce,cse", "--print-ir-after-all")
    assert code == 0
    assert err.count("// -----// IR Dump After") == 2
    assert "// -----// IR Dump After dce //----- //" in err
    assert "// -----// IR Dump After cse //----- //" in err
    dce_dump = err.split("// -----// IR Dump After cse")[0]
    assert "graph.exp" not in dce_dump and dce_dump.count("graph.add") == 2
    code, out, err = run(capsys, str(program), "--pass-pipeline", "dce,cse", "--print-ir-after", "cse")
    assert err.count("IR Dump After") == 1 and "IR Dump After cse" in err
    code, out, err = run(capsys, str(program), "--pass", "cse", "--print-ir-after", "cs")
    assert code == 1 and "unknown pass 'cs'" in err


def test_output_file_and_generic(capsys, program: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.mlir"
    code, out, _ = run(capsys, str(program), "--generic", "-o", str(target))
    assert code == 0 and out == ""
    text = target.read_text()
    assert '"graph.add"(%x, %y)' in text and '"func.func"()' in text
    code, out, _ = run(capsys, str(target))      # generic output parses back
    assert code == 0 and "%a = graph.add %x, %y" in out


def test_stdin(capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(PROGRAM))
    code, out, _ = run(capsys, "-", "--pass", "cse")
    assert code == 0 and out.count("graph.add") == 1


def test_list_passes(capsys) -> None:
    code, out, _ = run(capsys, "--list-passes")
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    for name in ("dce", "cse", "canonicalize", "constant-fold"):
        assert name in lines and len(lines[name].split()) > 2


def test_verify_each_and_no_verify_each(capsys, program: Path) -> None:
    assert run(capsys, str(program), "--pass", "cse", "--verify-each")[0] == 0
    assert run(capsys, str(program), "--pass", "cse", "--no-verify-each")[0] == 0


def test_split_input_file_keeps_line_numbers(capsys, tmp_path: Path) -> None:
    path = tmp_path / "split.mlir"
    bad = "func.func @f(%x: tensor<2xf32>) -> tensor<2xf32> {\n  %y = graph.exp %x : tensor<2xf32> -> tensor<3xf32>\n  func.return %x : tensor<2xf32>\n}\n"
    path.write_text(PROGRAM + "// -----\n" + bad)
    code, out, err = run(capsys, str(path), "--split-input-file")
    assert code == 1
    line = PROGRAM.count("\n") + 3                  # the bad op's line in the whole file
    assert f"split.mlir:{line}:3: error: 'graph.exp' op result shape 3" in err
    assert out.startswith("builtin.module")          # the good chunk is still printed


def test_verify_diagnostics(capsys, tmp_path: Path) -> None:
    path = tmp_path / "invalid.mlir"
    path.write_text("func.func @f(%x: tensor<2xf32>) {\n"
                    "  // expected-error @+1 {{result shape 3 differs from input shape 2}}\n"
                    "  %y = graph.exp %x : tensor<2xf32> -> tensor<3xf32>\n"
                    "  func.return\n}\n")
    assert run(capsys, str(path), "--verify-diagnostics")[0] == 0
    path.write_text(path.read_text().replace("result shape 3", "something else"))
    code, _, err = run(capsys, str(path), "--verify-diagnostics")
    assert code == 1 and "unexpected error" in err and "was not produced" in err


def test_errors_have_positions_and_no_traceback(capsys, tmp_path: Path) -> None:
    path = tmp_path / "bad.mlir"
    path.write_text("func.func @main(%x: tensor<2xf32>) -> tensor<2xf32> {\n"
                    "  %y = graph.neg %x : tensor<2xf32> tensor<2xf32>\n"
                    "  func.return %y : tensor<2xf32>\n}\n")
    code, _, err = run(capsys, str(path))
    assert code == 1 and "bad.mlir:2:" in err and "error:" in err and "^" in err
    assert "Traceback" not in err
    code, _, err = run(capsys, str(tmp_path / "missing.mlir"))
    assert code == 1 and "cannot read" in err


def test_unknown_pass_suggests(capsys, program: Path) -> None:
    code, _, err = run(capsys, str(program), "--pass", "canonicalise")
    assert code == 1 and "did you mean 'canonicalize'" in err
    code, _, err = run(capsys, str(program), "--pass", "cse{nope=1}")
    assert code == 1 and "bad options for pass 'cse'" in err
    code, _, err = run(capsys, str(program), "--pass-pipeline", "dce,{")
    assert code == 1 and "error:" in err
