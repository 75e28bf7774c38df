"""PyTorch's OpInfo samples through the Triton backend (``target="cuda"``).

The same ops and samples as :mod:`test_opinfo` (float32, ``strict=True``), run
by Triton's interpreter (``TRITON_INTERPRET=1``) on CPU tensors in CI, or on a
GPU where there is one. Every kernel must be generated Triton code: a kernel
that falls back to eager torch (a warning on the ``irc.triton`` logger) fails
the test.
"""

from __future__ import annotations

import logging
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

from irc.frontends.capture import compile_graph  # noqa: E402
from test_opinfo import SUPPORTED, _OPS, _as_function, _compare, _samples, trace  # noqa: E402

DEVICE = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def _to(value: object) -> object:
    return value.to(DEVICE) if isinstance(value, torch.Tensor) else value


@pytest.mark.parametrize("name", SUPPORTED)
def test_opinfo_triton_backend(name: str, caplog: pytest.LogCaptureFixture) -> None:
    op = _OPS[name]
    for sample in _samples(name):
        fn, tensors = _as_function(op, sample)
        want = fn(*tensors)
        with caplog.at_level(logging.WARNING, logger="irc.triton"):
            run = compile_graph(trace(fn, *tensors), "cuda", strict=True)
            got = run(*[_to(t) for t in tensors])
        eager = [r.getMessage() for r in caplog.records if r.name == "irc.triton"]
        assert not eager, eager
        _compare([g.cpu() if isinstance(g, torch.Tensor) else g for g in got], want)
