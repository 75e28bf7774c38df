"""Typed reads of a torch.fx node's arguments, by the aten schema.

torch.fx types every ``node.args[i]`` and ``node.kwargs[name]`` as its
``Argument`` union (ints, lists, Nodes, dtypes, slices, ...); a handler knows
from its op's schema what each position holds. These accessors say what the
handler reads: ``int_arg`` / ``ints_arg`` check a schema ``int`` / ``int[]``
position (a dim, a repeat count) and raise ``TypeError`` naming the position
otherwise (the importer turns that into a library call or an error naming the
op); ``arg`` / ``kwarg`` give a position whose type varies with the call (a
scalar or a tensor, a size or a SymInt node) as the schema made it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch.fx

from irc.ir.symbols import Dim


def arg(node: torch.fx.Node, index: int) -> Any:
    """``node.args[index]``, whose type the schema leaves open (a Scalar, a list of tensors)."""
    return node.args[index]


def kwarg(node: torch.fx.Node, name: str, default: Any = None) -> Any:
    """``node.kwargs[name]`` (``default`` when absent), as the schema types it."""
    return node.kwargs.get(name, default)


def int_arg(node: torch.fx.Node, index: int) -> int:
    """``node.args[index]`` at a schema ``int`` position (bool is an int, as in python)."""
    value = node.args[index]
    if not isinstance(value, int):
        raise TypeError(f"argument {index} of {node.target} is {value!r}, an int is expected")
    return value


def ints_arg(node: torch.fx.Node, index: int) -> list[int]:
    """``node.args[index]`` at a schema ``int[]`` position."""
    value = node.args[index]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) for v in value):
        raise TypeError(f"argument {index} of {node.target} is {value!r}, a list of ints is expected")
    return [v for v in value if isinstance(v, int)]


def static_size(d: Dim) -> int:
    """A size where the lowering needs a number (the shape of a torch constant
    it builds); a symbolic one is a ``TypeError`` naming it, as torch's own
    factories raise for a sympy expression."""
    if not isinstance(d, int):
        raise TypeError(f"a static size is needed here, got the symbolic size {d}")
    return d


def static_shape(dims: Iterable[Dim]) -> list[int]:
    """:func:`static_size` of each dimension."""
    return [static_size(d) for d in dims]
