"""One quantized copy of a weight for all graphs of one ``irc.compile``
(:mod:`irc.passes.derived_weights`)."""

from __future__ import annotations

import gc

import torch

import irc
from irc.passes.derived_weights import DerivedWeights


def test_memo_computes_once_per_source_version() -> None:
    memo, calls = DerivedWeights(), []
    w = torch.randn(4, 3)

    def double() -> torch.Tensor:
        calls.append(1)
        return w * 2

    a = memo.get(("double",), [w], double)
    assert memo.get(("double",), [w.detach()], double) is a and len(calls) == 1
    w.add_(1)  # an in-place update is a new version: computed again, never stale
    b = memo.get(("double",), [w], double)
    assert len(calls) == 2 and torch.equal(b, w * 2)


def test_a_derivation_of_derived_tensors_is_found_from_fresh_copies() -> None:
    memo = DerivedWeights()
    w1, w2 = torch.randn(2, 3), torch.randn(5, 3)
    q1, q2 = (memo.get(("q",), [w], lambda w=w: w.round()) for w in (w1, w2))
    stacked = memo.get(("stack",), [q1, q2], lambda a=q1, b=q2: torch.cat([a, b]))
    memo.release([q1, q2])
    assert len(memo) == 1  # only the stack is kept; the intermediates are not
    del q1, q2
    gc.collect()
    # the next graph recomputes its own intermediates and finds the same stack
    r1, r2 = (memo.get(("q",), [w], lambda w=w: w.round()) for w in (w1, w2))
    assert memo.get(("stack",), [r1, r2], lambda: torch.cat([r1, r2])) is stacked


class _Siblings(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q = torch.nn.Linear(80, 96, bias=False)
        self.k = torch.nn.Linear(80, 48, bias=False)
        self.out = torch.nn.Linear(144, 40, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.cat([self.q(x), self.k(x).relu()], dim=-1))


def _live_int8_shapes() -> list[tuple[int, ...]]:
    gc.collect()
    seen, shapes = set(), []
    for obj in gc.get_objects():
        if isinstance(obj, torch.Tensor) and obj.dtype == torch.int8 and not obj.is_meta:
            try:
                ptr = obj.untyped_storage().data_ptr()
            except RuntimeError:  # fake or functional tensors
                continue
            if ptr and ptr not in seen:
                seen.add(ptr)
                shapes.append(tuple(obj.shape))
    return shapes


def test_graphs_of_one_compile_share_one_quantized_copy() -> None:
    model = _Siblings().eval()
    compiled = irc.compile(model, dynamic=False, strict=True,
                           options={"cache.enabled": False, "quantize.weights": "int8"})
    with torch.no_grad():
        for rows in (1, 3, 5):  # three static graphs over the same weights
            x = torch.randn(rows, 80)
            torch.testing.assert_close(compiled(x), model(x), rtol=0.05, atol=0.05)
    assert compiled.irc_stats.graphs == 3
    shapes = _live_int8_shapes()
    # one stacked q/k copy and one copy of out, no per-layer intermediates
    assert shapes.count((144, 80)) == 1 and shapes.count((40, 144)) == 1, shapes
    assert (96, 80) not in shapes and (48, 80) not in shapes, shapes
