"""Carving and bisecting the zoo's Hugging Face models, as a user would.

``irc carve`` captures a model as ``irc.compile`` does (dynamo + AOTAutograd),
so it sees the graph that runs -- never ``torch.export``'s extra ops such as
``aten._assert_tensor_metadata`` (which every ``.to()`` / ``.float()`` of
GPT-2, Llama or T5 used to end in). Each carved folder must pass
``irc test-carved`` on the cpu backend; ``irc bisect`` with a deliberately
broken backend must name the culprit kernel and the line of the model's
``transformers`` modeling file.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import broken_backends
from irc.cli import main as irc_main
from irc.debug import bisect, carve, run_carved
from irc.debug.carved_tests import load_manifest
from irc.debug.offload import OffloadedModel
from zoo.models import ZOO, flat_tensors

broken_backends.register()
TESTS = Path(__file__).resolve().parent
ZOO_FILE = TESTS / "zoo" / "models.py"
DEFAULT = ("gpt2", "llama", "bert", "t5", "vit")


def _params() -> list:
    return [pytest.param(name, marks=() if name in DEFAULT else pytest.mark.slow) for name in ZOO]


@pytest.mark.parametrize("name", _params())
def test_carve_and_test_carved_on_cpu(name: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / name
    assert irc_main(["carve", f"{ZOO_FILE}:{name}", "-o", str(out)]) == 0
    suite = load_manifest(out)
    assert suite.cases
    modeling = f"models/{name.split('_')[0]}"
    assert any(c.source and "transformers" in c.source for c in suite.cases)
    if name in DEFAULT:
        assert any(c.source and modeling in c.source for c in suite.cases), name
    capsys.readouterr()
    assert irc_main(["test-carved", str(out), "--target", "cpu"]) == 0, capsys.readouterr().out
    assert f"{len(suite.cases)} passed, 0 failed" in capsys.readouterr().out


def test_carved_cases_hold_the_real_tensors(tmp_path: Path) -> None:
    """The graph's first case consumes the model's own input ids / weights, and
    the last case's output is the model's: the run that was carved is the real one."""
    model, inputs = ZOO["gpt2"].make()
    result = carve(model, inputs, tmp_path / "gpt2")
    with torch.no_grad():
        logits = model(**inputs).logits
    outputs = [t for c in result.cases for t in c.outputs if t.shape == logits.shape]
    assert any(torch.allclose(t, logits, atol=1e-5) for t in outputs)
    embedding = next(c for c in result.cases if c.op == "graph.embedding")
    assert any(torch.equal(t, model.transformer.wte.weight.detach()) for t in embedding.inputs)


def test_kernel_level_carve_of_an_llm(tmp_path: Path) -> None:
    model, inputs = ZOO["llama"].make()
    result = carve(model, inputs, tmp_path / "llama", level="kernel")
    assert result.cases and all(c.op.startswith("kernel_") for c in result.cases)
    bad = [(r.case.id, r.error) for r in run_carved(tmp_path / "llama", "cpu") if not r.passed]
    assert not bad


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_bisect_names_the_kernel_and_the_transformers_line(name: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    # GPT-2's layer norm subtracts the mean; Llama has no graph.sub in a kernel,
    # but its RMS norm takes a mean: broken-mean averages the wrong axis.
    target = {"gpt2": "broken-sub", "llama": "broken-mean"}[name]
    bad_op = {"gpt2": "graph.sub", "llama": "graph.mean"}[name]
    modeling = f"transformers/models/{name}/modeling_{name}.py"
    code = irc_main(["bisect", f"{ZOO_FILE}:{name}", "--target", target, "--plugin",
                     str(TESTS / "broken_backends.py"), "--case-dir", str(tmp_path / "case")])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "culprit kernel: kernel_" in out and modeling in out
    model, inputs = ZOO[name].make()
    report = bisect(model, inputs, target=target)
    assert report.culprit is not None and report.confirm is not None and not report.confirm.passed
    failing = report.failing_ops
    assert failing and {op.name for op in failing} == {bad_op}
    assert all(op.source and modeling in op.source for op in failing)
    assert report.model_runs <= math.ceil(math.log2(len(report.kernels))) + 3
    # the written case reproduces the culprit alone
    assert all(r.passed for r in run_carved(tmp_path / "case", "reference"))
    assert not all(r.passed for r in run_carved(tmp_path / "case", target))


def test_bisect_of_a_correct_backend_finds_nothing() -> None:
    model, inputs = ZOO["bert"].make()
    report = bisect(model, inputs, target="cpu", rtol=1e-3, atol=1e-4)
    assert report.culprit is None and "within tolerance" in report.message


def test_offloaded_llm_returns_the_models_output() -> None:
    model, inputs = ZOO["gpt2"].make()
    with torch.no_grad():
        expected = flat_tensors(model(**inputs))
    half = OffloadedModel(model, "cpu", lambda name: int(name.split("_")[1]) % 2 == 0)
    got = half(**inputs)
    assert type(got) is type(model(**inputs))  # the model's own output structure
    for a, e in zip(flat_tensors(got), expected, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-4)
    assert half.compiled_for(**inputs).eager_kernels
