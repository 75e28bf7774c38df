"""Loading and running a carved-test folder (see :mod:`irc.debug.carve`).

Every file is checked against the sha256 in ``manifest.json`` before it is
used, so a deleted, truncated or edited tensor file is reported by name
(:class:`CarvedTestError`) instead of as a confusing numerical failure. Each
case is compiled alone for the target (``compile_program``) and its outputs
are compared with the recorded ones within the case's tolerance.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from irc.errors import IrcError


class CarvedTestError(IrcError):
    """A carved-test folder is missing, malformed, or a file fails its checksum."""


@dataclass
class CaseSpec:
    """One manifest entry, with the folder it lives in."""

    root: Path
    id: str
    op: str
    ir: str
    tensors: str
    sha256: dict[str, str]
    rtol: float
    atol: float
    inputs: int
    outputs: int
    source: str | None = None
    source_text: str | None = None
    ops: list[str] = field(default_factory=list)

    @property
    def ir_path(self) -> Path:
        return self.root / self.ir

    @property
    def tensor_path(self) -> Path:
        return self.root / self.tensors


@dataclass
class CarvedSuite:
    root: Path
    model: str
    level: str
    cases: list[CaseSpec]


@dataclass
class CaseResult:
    """The verdict on one case for one target."""

    case: CaseSpec
    passed: bool
    max_abs: float = math.nan
    max_rel: float = math.nan
    error: str | None = None


def load_manifest(folder: str | Path) -> CarvedSuite:
    """Read ``manifest.json`` of a carved folder (no tensor is loaded yet)."""
    root = Path(folder)
    path = root / "manifest.json"
    if not path.is_file():
        raise CarvedTestError(f"{path}: no such file (is {root} a folder written by `irc carve`?)")
    try:
        data = json.loads(path.read_text())
        if data.get("format") != "irc-carved":
            raise CarvedTestError(f"{path}: not an irc carved-test manifest")
        cases = [CaseSpec(root=root, id=c["id"], op=c["op"], ir=c["ir"], tensors=c["tensors"],
                          sha256=dict(c["sha256"]), rtol=float(c["tolerance"]["rtol"]),
                          atol=float(c["tolerance"]["atol"]), inputs=int(c["inputs"]),
                          outputs=int(c["outputs"]), source=c.get("source"),
                          source_text=c.get("source_text"), ops=list(c.get("ops", [])))
                 for c in data["cases"]]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise CarvedTestError(f"{path}: malformed manifest ({type(err).__name__}: {err})") from None
    return CarvedSuite(root, str(data.get("model", "?")), str(data.get("level", "graph")), cases)


def check_file(path: Path, expected_sha256: str) -> None:
    """Raise CarvedTestError naming ``path`` if it is missing or its sha256 differs."""
    if not path.is_file():
        raise CarvedTestError(f"{path}: file is missing (listed in manifest.json)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected_sha256:
        raise CarvedTestError(f"{path}: sha256 mismatch (file is corrupted or was edited: "
                              f"expected {expected_sha256[:16]}..., got {digest[:16]}...)")


def check_suite(suite: CarvedSuite) -> None:
    """Check every file of the suite; one error listing all the bad files."""
    problems = []
    for case in suite.cases:
        for kind, path in (("ir", case.ir_path), ("tensors", case.tensor_path)):
            try:
                check_file(path, case.sha256.get(kind, ""))
            except CarvedTestError as err:
                problems.append(str(err))
    if problems:
        raise CarvedTestError("carved tests are damaged:\n  " + "\n  ".join(problems))


def load_case(case: CaseSpec) -> tuple[object, list[torch.Tensor], list[torch.Tensor]]:
    """(module, inputs, expected outputs) of a case, after checking both files."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from irc.ir.text import parse_module, verify_module
    check_file(case.ir_path, case.sha256.get("ir", ""))
    check_file(case.tensor_path, case.sha256.get("tensors", ""))
    module, source_map = parse_module(case.ir_path.read_text(), str(case.ir_path))
    verify_module(module, source_map)
    try:
        tensors = load_file(str(case.tensor_path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CarvedTestError(f"{case.tensor_path}: cannot load safetensors file ({err})") from None
    try:
        inputs = [tensors[f"in{i}"] for i in range(case.inputs)]
        outputs = [tensors[f"out{i}"] for i in range(case.outputs)]
    except KeyError as err:
        raise CarvedTestError(f"{case.tensor_path}: tensor {err} is missing") from None
    return module, inputs, outputs


def compare(actual: torch.Tensor, expected: torch.Tensor, rtol: float,
            atol: float) -> tuple[bool, float, float, str | None]:
    """(ok, max abs err, max rel err, why-not) with NaN == NaN; integers exact."""
    if not isinstance(actual, torch.Tensor):
        return False, math.inf, math.inf, f"got {type(actual).__name__}, expected a tensor"
    if tuple(actual.shape) != tuple(expected.shape):
        return False, math.inf, math.inf, f"shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    if actual.dtype != expected.dtype:
        return False, math.inf, math.inf, f"dtype {actual.dtype} != {expected.dtype}"
    if actual.numel() == 0:
        return True, 0.0, 0.0, None
    a = actual.detach().to("cpu", torch.float64)
    e = expected.detach().to("cpu", torch.float64)
    both_nan = torch.isnan(a) & torch.isnan(e)
    same_inf = torch.isinf(a) & (a == e)
    diff = (a - e).abs()
    diff = torch.where(both_nan | same_inf, torch.zeros_like(diff), diff)
    diff = torch.where(torch.isnan(diff), torch.full_like(diff, math.inf), diff)
    rel = diff / e.abs().clamp_min(1e-30)
    rel = torch.where(diff == 0, torch.zeros_like(rel), rel)
    rel = torch.where(torch.isnan(rel) | torch.isinf(diff), torch.full_like(rel, math.inf), rel)
    bad = diff > atol + rtol * e.abs().nan_to_num(0.0, posinf=0.0, neginf=0.0)
    max_abs, max_rel = float(diff.max()), float(rel.max())
    if bool(bad.any()):
        return False, max_abs, max_rel, f"{int(bad.sum())} of {bad.numel()} elements out of tolerance"
    return True, max_abs, max_rel, None


def compare_all(actual: list[torch.Tensor], expected: list[torch.Tensor], rtol: float,
                atol: float) -> tuple[bool, float, float, str | None]:
    if len(actual) != len(expected):
        return False, math.inf, math.inf, f"{len(actual)} outputs, expected {len(expected)}"
    ok, worst_abs, worst_rel, why = True, 0.0, 0.0, None
    for i, (a, e) in enumerate(zip(actual, expected)):
        good, max_abs, max_rel, reason = compare(a, e, rtol, atol)
        worst_abs, worst_rel = max(worst_abs, max_abs), max(worst_rel, max_rel)
        if not good and ok:
            ok, why = False, f"output {i}: {reason}"
    return ok, worst_abs, worst_rel, why


def run_case(case: CaseSpec, target: str) -> CaseResult:
    """Compile one case alone for ``target`` and compare with the recorded output.

    A broken file raises CarvedTestError; a compile or run failure of the
    backend is a failed case (the message says which)."""
    from irc.driver import compile_program
    from irc.frontends.program import Program
    module, inputs, expected = load_case(case)
    try:
        executable = compile_program(Program(module, {}), target)  # type: ignore[arg-type]
    except IrcError as err:
        return CaseResult(case, False, error=f"compile error: {err}")
    except Exception as err:  # noqa: BLE001 - a crashing backend is a finding, not an abort
        return CaseResult(case, False, error=f"compile crashed: {type(err).__name__}: {err}")
    try:
        actual = list(executable(*[t.clone() for t in inputs]))
    except Exception as err:  # noqa: BLE001
        return CaseResult(case, False, error=f"run failed: {type(err).__name__}: {err}")
    ok, max_abs, max_rel, why = compare_all(actual, expected, case.rtol, case.atol)
    return CaseResult(case, ok, max_abs, max_rel, why)


def run_carved(folder: str | Path, target: str, ids: list[str] | None = None) -> list[CaseResult]:
    """Check the folder's files, then run every case (or those in ``ids``) on ``target``."""
    from irc.backends.registry import get_backend
    suite = load_manifest(folder)
    backend = get_backend(target)
    problem = backend.available()
    if problem is not None:
        raise CarvedTestError(f"target '{target}' cannot run here: {problem}")
    check_suite(suite)
    cases = [c for c in suite.cases if ids is None or c.id in ids]
    return [run_case(c, target) for c in cases]


def _num(x: float) -> str:
    return "-" if math.isnan(x) else ("inf" if math.isinf(x) else f"{x:.2e}")


def format_table(results: list[CaseResult], target: str) -> str:
    """A fixed-width table: id, op, source line, max abs err, max rel err, verdict."""
    from irc.debug.snippets import display_source
    rows = [("id", "op", "source", "max abs err", "max rel err", "result")]
    for r in results:
        verdict = "PASS" if r.passed else "FAIL"
        rows.append((r.case.id, r.case.op, display_source(r.case.source), _num(r.max_abs),
                     _num(r.max_rel), verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in results:
        if r.error:
            lines.append(f"{r.case.id}: {r.error}")
    failed = sum(not r.passed for r in results)
    lines.append(f"{len(results) - failed} passed, {failed} failed on target '{target}'")
    return "\n".join(lines)


# ----------------------------------------------------------------------------
# the pytest files written into every carved folder

CONFTEST_SOURCE = '''"""pytest options for an irc carved-test folder: --target (or IRC_TARGET)."""
import os


def pytest_addoption(parser):
    try:
        parser.addoption("--target", default=os.environ.get("IRC_TARGET", "cpu"),
                         help="irc backend to test the carved cases on (default: $IRC_TARGET or cpu)")
    except ValueError:  # another conftest already defines --target
        pass
'''

TEST_FILE_SOURCE = '''"""Carved per-operator tests written by `irc carve`.

Run: pytest THIS_FOLDER --target cpu   (or IRC_TARGET=cpu pytest THIS_FOLDER)
Each case compiles one op (or kernel) alone for the target and compares its
outputs with the tensors recorded from a real eager run of the model.
"""
import os
from pathlib import Path

import pytest

from irc.debug.carved_tests import load_manifest, run_case

HERE = Path(__file__).resolve().parent
SUITE = load_manifest(HERE)


@pytest.fixture
def target(request):
    try:
        return request.config.getoption("--target")
    except ValueError:
        return os.environ.get("IRC_TARGET", "cpu")


@pytest.mark.parametrize("case", SUITE.cases, ids=[c.id for c in SUITE.cases])
def test_carved(case, target):
    result = run_case(case, target)
    assert result.passed, (f"{case.id} ({case.op} at {case.source}): {result.error}; "
                           f"max abs err {result.max_abs:.3e}, max rel err {result.max_rel:.3e}")
'''
