"""Tensors computed at compile time from a model's weights, shared between graphs.

One ``irc.compile`` of a model usually compiles several graphs over the same
parameters (a generate's prefill and decode graphs, the pieces of a split
graph). Passes that replace weights by tensors computed from them
(``quantize-weights``, ``merge-quantized-matmuls``) would otherwise compute
and hold one copy per graph. :class:`DerivedWeights` memoises each derived
tensor by how it is derived from the model's own tensors (its *roots*): the
kind of derivation and the identity of every root (storage, offset, shape,
strides, dtype and version counter). A tensor derived from derived tensors
(the stack of quantized q/k/v weights) is keyed by their derivations, so it
is found again from the next graph's own intermediate copies. The memo keeps
the roots referenced (the model's parameters: alive anyway), so a key's
storage cannot be freed and reused by another tensor while the entry exists,
and an in-place update (a new version) is a new key, never a stale hit.
:meth:`DerivedWeights.release` drops the entries of intermediates that a
later derivation consumed, so the memo does not keep them alive.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch

T = TypeVar("T")
Key = tuple[Any, ...]


def _identity(t: torch.Tensor) -> Key:
    return ("tensor", t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape),
            t.stride(), t.dtype, t._version)


class DerivedWeights:
    """A memo of compile-time tensors keyed by their derivation from root tensors."""

    def __init__(self) -> None:
        self._entries: dict[Key, tuple[Any, list[torch.Tensor]]] = {}
        self._derivation: dict[int, tuple[Key, list[torch.Tensor]]] = {}
        """id of a live derived tensor -> (its key, its roots)."""

    def get(self, kind: Key, sources: Sequence[torch.Tensor], make: Callable[[], T]) -> T:
        """``make()``, computed once per (``kind``, derivation of ``sources``);
        a result that is a tensor or a tuple of tensors is registered as
        derived (it may be a source of a later ``get``)."""
        keys, roots = [], []
        for s in sources:
            known = self._derivation.get(id(s))
            if known is None:
                keys.append(_identity(s))
                roots.append(s)
            else:
                keys.append(known[0])
                roots.extend(known[1])
        key = (kind, *keys)
        hit = self._entries.get(key)
        if hit is None:
            hit = (make(), roots)
            self._entries[key] = hit
        result: T = hit[0]
        parts: tuple[Any, ...] = result if isinstance(result, tuple) else (result,)
        for i, part in enumerate(parts):
            if isinstance(part, torch.Tensor):
                self._register(part, (key, i) if isinstance(result, tuple) else key, roots)
        return result

    def _register(self, t: torch.Tensor, key: Key, roots: list[torch.Tensor]) -> None:
        ident = id(t)
        if ident in self._derivation:
            return
        self._derivation[ident] = (key, roots)
        weakref.finalize(t, self._derivation.pop, ident, None)

    def release(self, tensors: Sequence[torch.Tensor]) -> None:
        """Forget the entries whose results are ``tensors`` (intermediates a
        later derivation consumed): the memo no longer keeps them alive; they
        stay known as derived while something else holds them."""
        ids = {id(t) for t in tensors}
        for key in [k for k, (result, _) in self._entries.items()
                    if any(id(p) in ids for p in (result if isinstance(result, tuple)
                                                  else (result,)))]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
