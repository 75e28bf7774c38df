"""A compiled function never hands back its input tensor as a new result:
``clone`` folds away under value semantics, so the driver copies results that
are @main's arguments (or weights), on every backend."""

from __future__ import annotations

import pytest
import torch

import irc


@pytest.mark.parametrize("target", ["cpu", "reference", "cuda"])
@pytest.mark.parametrize("fn", [lambda x: x.clone(), lambda x: (x.clone() * 1, x + 1)],
                         ids=["clone", "clone_times_one"])
def test_results_do_not_alias_inputs(target: str, fn) -> None:  # type: ignore[no-untyped-def]
    torch._dynamo.reset()
    x = torch.randn(8)
    want = fn(x)
    got = irc.compile(fn, target=target)(x)
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
        assert g.data_ptr() != x.data_ptr()
    before = x.clone()
    got[0].add_(1)  # mutating a result must leave the input alone
    assert torch.equal(x, before)
