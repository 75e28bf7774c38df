"""The zoo against eager: every architecture compiled with ``strict=True``
matches eager PyTorch (``allclose``, rtol = atol = 1e-3, every output tensor)
on two calls, the second on fresh random inputs of the same shapes, and the
compiled callable's stats show that irc compiled it (graphs and kernels, no
node and no call in eager).

Models marked ``default`` in :mod:`tests.zoo.models` run in the default test
run; the others are marked ``slow`` (``pytest -m slow tests/zoo``). Models
marked ``cuda`` also run through ``target="cuda"`` (the Triton interpreter
without a GPU, see ``tests/conftest.py``).
"""

from __future__ import annotations

import dataclasses

import pytest

from tests.zoo.check import check_model
from tests.zoo.models import ZOO, _hf

# Known gaps of the Triton backend, each an xfail (in the slow run) that fails
# once the gap is closed (strict). None at present: the layer-norm / RMS-norm
# models compile strict since row kernels also store a norm moved through a
# permute (split heads) where each row element lands (tests/test_triton_norm.py).
CUDA_GAPS: dict[str, str] = {}
# Models whose cuda run stays in the slow run: several seconds each under the
# Triton interpreter (the cpu run of the same model is in the default run).
CUDA_SLOW = frozenset({"gpt2", "llama", "bert", "vit"})


def _params(names: list[str], gaps: dict[str, str] | None = None,
            slow: frozenset[str] = frozenset()) -> list:
    params = []
    for name in names:
        marks = [] if ZOO[name].default and name not in slow else [pytest.mark.slow]
        if gaps and name in gaps:  # proving a known gap is not worth the default run's time
            marks = [pytest.mark.slow, pytest.mark.xfail(reason=gaps[name], strict=True)]
        params.append(pytest.param(name, marks=marks, id=name))
    return params


def _assert_compiled_and_right(name: str, target: str) -> None:
    verdict = check_model(name, target)
    assert not verdict.problems(), f"{name} on {target}: {verdict.problems()} " \
                                   f"({verdict.stats.summary()})"
    stats = verdict.stats
    assert stats.graphs >= 1 and stats.kernels >= 1 and stats.compiled_runs >= 2


@pytest.mark.parametrize("name", _params(sorted(ZOO)))
def test_zoo_cpu(name: str) -> None:
    _assert_compiled_and_right(name, "cpu")


@pytest.mark.parametrize("name", _params(sorted(n for n, m in ZOO.items() if m.cuda), CUDA_GAPS,
                                         CUDA_SLOW))
def test_zoo_cuda(name: str) -> None:
    _assert_compiled_and_right(name, "cuda")


def test_the_check_can_fail() -> None:
    """A wrong tensor, a missing output, an eager node or nothing compiled are problems."""
    import torch

    from irc.stats import CompileStats
    from tests.zoo.check import Verdict, compare
    a = torch.randn(3, 4)
    assert not compare("m", {"x": a}, {"x": a.clone()}, 0)
    assert "max abs error" in compare("m", (a,), (a + 1e-2,), 1)[0]
    assert "output tensors" in compare("m", (a, a), (a,), 0)[0]
    compiled = CompileStats("m", graphs=1, programs=1, kernels=3)
    assert not Verdict("m", "cpu", stats=compiled).problems()
    eager = CompileStats("m", graphs=1, programs=1, eager_ops=["aten.sort.default"])
    assert "eager" in Verdict("m", "cpu", stats=eager).problems()[0]
    assert "nothing was compiled" in Verdict("m", "cpu", stats=CompileStats("m")).problems()[0]


def _t5_issue_inputs(config: object, batch: int, seq: int) -> dict:
    import torch
    return {"input_ids": torch.randint(0, 1000, (4, 128)),
            "decoder_input_ids": torch.randint(0, 1000, (4, 32))}


# The configurations issue 11 reported wrong on the CPU (T5 logits off by up to
# 11, Whisper by 3%): torch's fused CPU attention read the strided q/k/v views
# that swap-skinny-matmul's transposed projections give as if contiguous.
ISSUE_11 = {
    "t5_d256": dataclasses.replace(
        ZOO["t5"], build=_hf("T5Config", "T5ForConditionalGeneration", d_model=256, d_ff=512,
                             num_layers=2, num_decoder_layers=2, num_heads=4, d_kv=64,
                             vocab_size=1000, decoder_start_token_id=0),
        inputs=_t5_issue_inputs),
    "whisper_d128": dataclasses.replace(
        ZOO["whisper"], build=_hf("WhisperConfig", "WhisperForConditionalGeneration",
                                  d_model=128, encoder_layers=2, decoder_layers=2,
                                  encoder_attention_heads=4, decoder_attention_heads=4,
                                  encoder_ffn_dim=256, decoder_ffn_dim=256, vocab_size=1000,
                                  num_mel_bins=16, max_source_positions=32,
                                  max_target_positions=64, pad_token_id=0, bos_token_id=1,
                                  eos_token_id=2, decoder_start_token_id=1)),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ISSUE_11))
def test_issue_11_miscompiles(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ZOO, name, ISSUE_11[name])
    _assert_compiled_and_right(name, "cpu")
