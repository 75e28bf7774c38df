"""``irc opt --pass-pipeline "$(irc config pipeline --target cpu)"`` followed by
``irc translate --to llvm`` gives, byte for byte, the LLVM IR ``irc.compile``
JIT-compiles: the pipeline text shows every step a compile takes.

Each graph irc.compile captures (dynamo + AOTAutograd + importer) is printed
at the graph level, run through the two commands, and compared with the
executable's ``llvm_ir``. All test models and the zoo's default set (the
representative models the default test run compiles; each costs a compile,
JIT included, so the rest of the zoo is left to ``scripts/replay.py``, which
shares this capture and pipeline without the JIT).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import irc
import irc.frontends.capture as capture
from irc.cli import main as irc_main
from irc.ir.text import print_module
from tests.models import MODELS
from tests.zoo.models import ZOO


def _compiled_graphs(run: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(graph-level text before any pass, LLVM IR of the executable) per graph."""
    seen: list[tuple[str, Any]] = []
    original = capture.compile_program_once

    def recording(program: Any, target: str, options: Any) -> Any:
        text = print_module(program.module)
        executable = original(program, target, options)
        seen.append((text, executable))
        return executable

    monkeypatch.setattr(capture, "compile_program_once", recording)
    torch._dynamo.reset()
    with torch.no_grad():
        run()
    return [(text, executable.llvm_ir) for text, executable in seen]


def _check(graphs: list[tuple[str, str]], tmp_path: Path,
           capsys: pytest.CaptureFixture[str]) -> None:
    assert graphs, "irc.compile captured no graph"
    assert irc_main(["config", "pipeline", "--target", "cpu"]) == 0
    pipeline = capsys.readouterr().out.strip()
    for i, (graph_text, llvm_ir) in enumerate(graphs):
        graph, loops, ll = (tmp_path / f"g{i}.mlir", tmp_path / f"l{i}.mlir", tmp_path / f"k{i}.ll")
        graph.write_text(graph_text)
        assert irc_main(["opt", str(graph), "--pass-pipeline", pipeline, "-o", str(loops)]) == 0
        assert irc_main(["translate", str(loops), "--to", "llvm", "-o", str(ll)]) == 0
        capsys.readouterr()
        assert ll.read_text() == llvm_ir.rstrip("\n") + "\n", f"graph {i} differs"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_test_model(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                    capsys: pytest.CaptureFixture[str]) -> None:
    model, inputs = MODELS[name]()
    compiled = irc.compile(model, target="cpu", options=None)
    _check(_compiled_graphs(lambda: compiled(*inputs), monkeypatch), tmp_path, capsys)


@pytest.mark.parametrize("name", sorted(n for n, m in ZOO.items() if m.default))
def test_zoo_model(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                   capsys: pytest.CaptureFixture[str]) -> None:
    model, inputs = ZOO[name].make()
    compiled = irc.compile(model, target="cpu", options=None)
    _check(_compiled_graphs(lambda: compiled(**inputs), monkeypatch), tmp_path, capsys)
