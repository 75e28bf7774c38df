"""Internal compiler errors: a crash in a pass or a backend is a bug, and says so.

It is an :class:`irc.InternalCompilerError` (never "unsupported", never a
silent fallback to eager) naming the pass, with the IR the pass received
written to a file and the ``irc opt`` line that reproduces the crash. Also the
ICEs found by OpInfo (empty tensors, negative padding), fixed at their root.
"""

from __future__ import annotations

import shlex
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

import irc
from irc.backends.base import Backend, Level
from irc.backends.registry import register_backend
from irc.cli import main as irc_main
from irc.errors import InternalCompilerError, IrcError, PassError
from irc.frontends.capture import export_program
from irc.passes.pipeline import run_pipeline
from irc.passes import registry as pass_registry
from irc.reproducer import write_atomic


@dataclass(frozen=True)
class CrashOnExp(ModulePass):
    """Test pass: raises ZeroDivisionError when the module holds a graph.exp."""

    name = "crash-on-exp"
    scale: int = 3

    def apply(self, ctx: object, op: ModuleOp) -> None:
        if any(o.name == "graph.exp" for o in op.walk()):
            raise ZeroDivisionError("crash-on-exp met a graph.exp")


class CrashingBackend(Backend):
    """Test backend: its code generator crashes."""

    name = "crashing"
    level = Level.KERNEL

    def compile(self, module, weights, options):  # type: ignore[no-untyped-def]
        raise KeyError("the backend lost its way")


register_backend("crashing", CrashingBackend)


@pytest.fixture(autouse=True)
def _crash_pass_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(pass_registry._BUILTIN, "crash-on-exp", f"{__name__}:CrashOnExp")


def _fn(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(x) + 1


def test_a_crashing_pass_is_an_internal_compiler_error(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    x = torch.randn(4, 5)
    options = {"pipeline.graph": "dce,crash-on-exp{scale=7},cse",
               "logging.reproducer_dir": str(tmp_path)}
    with warnings.catch_warnings():
        warnings.simplefilter("error", irc.IrcWarning)  # no "runs in eager" fallback
        with pytest.raises(InternalCompilerError) as info:
            irc.compile(_fn, target="cpu", options=options)(x)
    err = info.value
    assert isinstance(err, IrcError) and not isinstance(err, irc.UnsupportedOpError)
    assert err.pass_name == "crash-on-exp"
    message = str(err)
    assert "internal compiler error in pass 'crash-on-exp'" in message
    assert "ZeroDivisionError: crash-on-exp met a graph.exp" in message
    assert "unsupported" not in message
    # the IR the pass received (after dce) is in the file, and nothing else is left there
    assert err.reproducer is not None and Path(err.reproducer).parent == tmp_path
    text = Path(err.reproducer).read_text()
    assert "graph.exp" in text and "func.func @main" in text
    assert [p.name for p in tmp_path.iterdir()] == [Path(err.reproducer).name]
    # the one printed line reproduces it, options included
    assert err.command is not None and err.command in message and "\n" not in err.command
    argv = shlex.split(err.command)
    assert argv[:2] == ["irc", "opt"] and "crash-on-exp{scale=7}" in argv
    capsys.readouterr()
    assert irc_main(argv[1:]) == 1
    assert "internal compiler error in pass 'crash-on-exp'" in capsys.readouterr().err


def test_the_reproducer_is_what_the_pass_received(tmp_path: Path) -> None:
    """Passes before the crash ran: the written IR is their output, not the input."""
    x = torch.randn(3, 3)
    program = export_program(lambda x: torch.exp(x * 1.0) + 0.0, (x,))
    with pytest.raises(InternalCompilerError) as info:
        run_pipeline(program.module, "canonicalize,crash-on-exp", reproducer_dir=str(tmp_path))
    text = Path(info.value.reproducer or "").read_text()
    assert "graph.mul" not in text and "graph.exp" in text  # canonicalize removed x * 1.0


def test_strict_compile_does_not_call_an_ice_unsupported(tmp_path: Path) -> None:
    with pytest.raises(InternalCompilerError, match="crash-on-exp"):
        irc.compile(_fn, target="reference", strict=True,
                    options={"pipeline.graph": "crash-on-exp",
                             "logging.reproducer_dir": str(tmp_path)})(torch.randn(2))


def test_a_crashing_backend_is_an_internal_compiler_error(tmp_path: Path) -> None:
    with pytest.raises(InternalCompilerError) as info:
        irc.compile(_fn, target="crashing",
                    options={"logging.reproducer_dir": str(tmp_path)})(torch.randn(2, 2))
    err = info.value
    assert "internal compiler error in backend 'crashing'" in str(err)
    assert "KeyError" in str(err) and err.reproducer is not None
    assert "graph.exp" in Path(err.reproducer).read_text()


def test_write_atomic_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "deep" / "x.mlir"
    write_atomic(target, "one")
    write_atomic(target, "two")
    assert target.read_text() == "two" and [p.name for p in target.parent.iterdir()] == ["x.mlir"]

    def fail(*args: object) -> None:
        raise OSError("disk on fire")

    import irc.reproducer
    monkeypatch.setattr(irc.reproducer.os, "replace", fail)
    with pytest.raises(OSError, match="disk on fire"):
        write_atomic(target, "three")
    assert target.read_text() == "two" and [p.name for p in target.parent.iterdir()] == ["x.mlir"]


# ----------------------------------------------------------------------------
# pass prerequisites: a pass on IR of the wrong level names the pass to run first


def _graph_module() -> ModuleOp:
    return export_program(lambda x: torch.tanh(x) * 2, (torch.randn(4, 4),)).module


@pytest.mark.parametrize("pipeline,needs", [
    ("lower-to-loops", "run 'fuse' before 'lower-to-loops'"),
    ("memory-plan", "run 'fuse' before 'memory-plan'"),
    ("fuse,lower-to-loops,dce", "'dce' runs before 'lower-to-loops'"),
    ("fuse,lower-to-loops,canonicalize", "'canonicalize' runs before 'lower-to-loops'"),
    ("fuse,lower-to-loops,fuse", "'fuse' runs before 'lower-to-loops'"),
])
def test_a_pass_on_the_wrong_level_names_its_prerequisite(pipeline: str, needs: str) -> None:
    module = _graph_module()
    before = str(module)
    with pytest.raises(PassError, match=needs):
        run_pipeline(module, pipeline)
    assert str(module) == before  # checked before any pass ran


def test_irc_opt_checks_the_level_of_its_input(tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    from irc.ir.text import print_module
    path = tmp_path / "graph.mlir"
    path.write_text(print_module(_graph_module()))
    assert irc_main(["opt", str(path), "--pass", "lower-to-loops"]) == 1
    assert "run 'fuse' before 'lower-to-loops'" in capsys.readouterr().err
    fused = tmp_path / "fused.mlir"
    assert irc_main(["opt", str(path), "--pass", "fuse", "-o", str(fused)]) == 0
    assert irc_main(["opt", str(fused), "--pass", "lower-to-loops", "-o", "/dev/null"]) == 0


# ----------------------------------------------------------------------------
# ICEs OpInfo found, fixed at the root (fuse and canonicalize read the first
# element of an empty constant)

CASES = [
    ("softmax dim 0", lambda x: torch.softmax(x, 0), (5, 0, 0)),
    ("softmax dim 1", lambda x: torch.softmax(x, 1), (5, 0, 0)),
    ("softmax dim 2", lambda x: torch.softmax(x, -1), (5, 0, 0)),
    ("log_softmax dim 1", lambda x: torch.log_softmax(x, 1), (5, 0, 0)),
    ("log_softmax dim 2", lambda x: torch.log_softmax(x, 2), (5, 0, 0)),
    ("pad [0,3,3]", lambda x: F.pad(x, (1, 2, 0, 1), value=2.5), (0, 3, 3)),
    ("pad [0,3,3,3]", lambda x: F.pad(x, (1, 1, 2, 0, 1, 1), value=-1.0), (0, 3, 3, 3)),
    ("negative pad", lambda x: F.pad(x, (-1, -2, 1, 1), value=3.0), (5, 3)),
    ("negative pad, nonempty", lambda x: F.pad(x, (-1, 1, 1, -2), value=3.0), (5, 3)),
]


@pytest.mark.parametrize("target", ["cpu", "reference"])
@pytest.mark.parametrize("label,fn,shape", CASES, ids=[c[0] for c in CASES])
def test_former_fuse_ices_compile_and_match_eager(label: str, fn, shape, target: str) -> None:
    x = torch.randn(shape)
    expected = fn(x)
    got = irc.compile(fn, target=target, strict=True)(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected)
