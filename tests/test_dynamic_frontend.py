"""Frontend pieces that meet symbolic sizes (issue #13) in real models.

Each case is a pattern a Hugging Face model traces to once dynamo makes a
size symbolic (a second generate with a longer static cache does): compiled
with ``dynamic=True`` and ``strict=True`` (nothing may run in eager), called
at several sizes, compared with eager.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

import irc

NO_CACHE = {"cache.enabled": False}


def _sorted_plus_one(x: torch.Tensor) -> torch.Tensor:
    # aten.sort has no graph-dialect op: a graph.aten_call with a symbolic result
    return torch.sort(x * 2, dim=-1).values + 1


def _full_then_index_copy(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    # a static cache's lazy initialisation: a full() of symbolic shape, written
    # functionally (index_put on a value that is not an input); the reshape of
    # the constant must not be folded to a static shape
    cache = torch.full((x.shape[0], 4), 0.5).reshape(x.shape[0], 2, 2)
    return cache.index_copy(1, pos, x.reshape(x.shape[0], 1, 2) * 3)


def _tensor_plus_size(x: torch.Tensor, n: int) -> torch.Tensor:
    # transformers' ``cumulative_length.add_(kv_length)``: a tensor plus a SymInt
    return x + n


CASES: dict[str, Callable[[int], tuple[Callable[..., torch.Tensor], tuple]]] = {
    "aten_call": lambda n: (_sorted_plus_one, (torch.randn(3, n),)),
    "full_index_copy": lambda n: (_full_then_index_copy,
                                  (torch.randn(n, 2), torch.tensor([1]))),
    "tensor_plus_size": lambda n: (_tensor_plus_size, (torch.randn(n, 3), n)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_symbolic_pattern_compiles_and_matches_eager(case: str) -> None:
    fn, _ = CASES[case](5)
    compiled = irc.compile(fn, target="cpu", dynamic=True, strict=True, options=NO_CACHE)
    for n in (5, 9, 13, 6):
        _, args = CASES[case](n)
        torch.testing.assert_close(compiled(*args), fn(*args))
    stats = compiled.irc_stats
    assert stats.symbolic_programs >= 1 and stats.eager_calls == 0 and not stats.eager_ops, stats
