"""PyTorch's OpInfo samples through the Triton backend (``target="cuda"``).

The same ops and samples as :mod:`test_opinfo` (``strict=True``), in float32,
float16 and bfloat16 (halves are computed in float32 registers and rounded
after each op, like torch), int64 and bool (where the OpInfo database says
eager supports the dtype), run by Triton's interpreter (``TRITON_INTERPRET=1``) on CPU tensors in CI, or on a
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
from torch.utils._pytree import tree_flatten  # noqa: E402

from irc.frontends.capture import compile_graph  # noqa: E402
from test_opinfo import SUPPORTED, _OPS, _as_function, _samples, trace  # noqa: E402

DEVICE = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def _to(value: object) -> object:
    return value.to(DEVICE) if isinstance(value, torch.Tensor) else value


# float results compare with these tolerances (integer and bool results exactly)
TOLERANCE = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 2e-2,
             torch.int64: 1e-4, torch.bool: 1e-4}
# (op, dtype) pairs the OpInfo database says eager supports on the CPU
CASES = [pytest.param(name, dtype, id=f"{name}-{str(dtype).split('.')[-1]}")
         for dtype in TOLERANCE for name in SUPPORTED if _OPS[name].supports_dtype(dtype, "cpu")]


@pytest.mark.parametrize("name, dtype", CASES)
def test_opinfo_triton_backend(name: str, dtype: torch.dtype,
                               caplog: pytest.LogCaptureFixture) -> None:
    op = _OPS[name]
    try:
        samples = list(op.sample_inputs("cpu", dtype, requires_grad=False))[:len(_samples(name))]
    except (RuntimeError, ValueError) as err:  # the database cannot make samples in this dtype
        pytest.skip(f"no {dtype} samples for {name}: {err}")
    compared = 0
    for sample in samples:
        fn, tensors = _as_function(op, sample)
        try:
            want = fn(*tensors)
        except (NotImplementedError, RuntimeError, ValueError):
            continue  # eager rejects the sample in this dtype (no kernel, float-only op)
        with caplog.at_level(logging.WARNING, logger="irc.triton"):
            run = compile_graph(trace(fn, *tensors), "cuda", strict=True)
            got = run(*[_to(t) for t in tensors])
        eager = [r.getMessage() for r in caplog.records if r.name == "irc.triton"]
        assert not eager, eager
        expected = [w for w in tree_flatten(want)[0] if isinstance(w, torch.Tensor)]
        assert len(got) >= len(expected)
        tol = TOLERANCE[dtype]
        for a, b in zip(got, expected):
            torch.testing.assert_close(a.cpu(), b, equal_nan=True, atol=tol, rtol=tol,
                                       check_stride=False)
        compared += 1
    if not compared:
        pytest.skip(f"eager torch rejects {name}'s samples in {dtype}: nothing to compare with")
