"""Inputs an inference graph writes: in-place cache updates, and copies back.

AOTAutograd, asked to keep inference input mutations (``make_dynamo_backend``
passes ``keep_inference_input_mutations=True``), ends a graph that writes one
of its inputs with ``aten.copy_(input, new_value)``, the new value computed
functionally. :func:`lift_input_mutations` rewrites those copies before import:

* **a cache update**: ``copy_(x, index_put(x, [None] * dim + [index], values))``
  (what ``cache.index_copy_(dim, index, values)`` and ``cache[:, :, index] =
  values`` trace to; also ``index_copy`` and a unit-step ``slice_scatter``),
  where ``x`` is a contiguous placeholder that nothing else reads, becomes one
  call of :func:`cache_update`, imported as ``graph.cache_update``: only the
  new positions are written, into the caller's buffer, and the graph holds no
  copy of the whole cache (a ``transformers`` static KV cache);
* **any other write** of an input: the ``copy_`` leaves the graph, its source
  becomes an extra output, and the runner that :func:`with_copies_back` wraps
  copies it into the input after the call (what AOTAutograd itself does for
  mutations it does not keep in the graph), so the graph stays functional.

The rewritten graph still runs in eager PyTorch (:func:`cache_update` is an
ordinary function), so a graph split or an eager fallback stays correct.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx
from xdsl.ir import SSAValue

from irc.frontends import fx_args
from irc.frontends.fx_importer import FxImporter, handles
from irc.ir import graph as g

aten = torch.ops.aten
Runner = Callable[..., Any]


def cache_update(cache: torch.Tensor, dim: int, index: torch.Tensor,
                 values: torch.Tensor) -> torch.Tensor:
    """``cache.index_copy_(dim, index, values)``: the FX target a cache update
    is rewritten to (eager meaning of ``graph.cache_update``)."""
    return cache.index_copy_(dim, index, values)


def _update_of(node: torch.fx.Node, cache: torch.fx.Node
               ) -> tuple[int, Any, torch.fx.Node] | None:
    """(dim, index, values) when ``node`` writes ``values`` into ``cache`` at
    the positions ``index`` (a node, or a ``range`` for a slice) along one dim."""
    if node.op != "call_function" or not node.args or node.args[0] is not cache:
        return None
    target = node.target
    if target is aten.index_put.default:
        indices, values = node.args[1], node.args[2]
        accumulate = node.args[3] if len(node.args) > 3 else node.kwargs.get("accumulate", False)
        if accumulate or not isinstance(indices, (list, tuple)) or not indices:
            return None
        *leading, index = indices
        if any(i is not None for i in leading) or not isinstance(index, torch.fx.Node):
            return None
        return len(leading), index, values  # type: ignore[return-value]
    if target is aten.index_copy.default:
        return int(node.args[1]), node.args[2], node.args[3]  # type: ignore[arg-type,return-value]
    if target is aten.slice_scatter.default:
        val = cache.meta.get("val")
        if not isinstance(val, torch.Tensor):
            return None
        rank = val.dim()
        dim = int(fx_args.arg(node, 2) if len(node.args) > 2 else fx_args.kwarg(node, "dim", 0))
        dim = dim + rank if dim < 0 else dim
        start = fx_args.arg(node, 3) if len(node.args) > 3 else fx_args.kwarg(node, "start")
        end = fx_args.arg(node, 4) if len(node.args) > 4 else fx_args.kwarg(node, "end")
        step = fx_args.arg(node, 5) if len(node.args) > 5 else fx_args.kwarg(node, "step", 1)
        bounds = range(int(val.shape[dim]))[slice(start, end, step)]
        return dim, bounds, node.args[1]  # type: ignore[return-value]
    return None


_SIZE_READS = (aten.sym_size.int, aten.sym_stride.int, aten.sym_numel.default,
               aten.sym_storage_offset.default)


def _size_reads(node: torch.fx.Node) -> list[torch.fx.Node]:
    """The users of ``node`` that read only its sizes (``sym_size`` of a
    dynamic dimension): they do not see the values a write changes."""
    return [u for u in node.users if u.op == "call_function" and u.target in _SIZE_READS]


def _is_cache_update(node: torch.fx.Node, cache: torch.fx.Node, copy: torch.fx.Node,
                     update: tuple[int, Any, torch.fx.Node]) -> bool:
    """Whether ``node`` can write into ``cache`` in place: ``cache`` is
    contiguous, read by nothing but ``node`` and ``copy`` (and reads of its
    sizes, which the write does not change), and ``values`` fill
    exactly the written positions."""
    if set(cache.users) - {node, copy} - set(_size_reads(cache)):
        return False
    dim, index, values = update
    val, vals = cache.meta.get("val"), values.meta.get("val") if isinstance(values, torch.fx.Node) \
        else None
    if not isinstance(val, torch.Tensor) or not isinstance(vals, torch.Tensor):
        return False
    if not val.is_contiguous() or vals.dtype != val.dtype or not 0 <= dim < val.dim():
        return False
    if isinstance(index, range):
        count = len(index)
    else:
        idx = index.meta.get("val")
        if not isinstance(idx, torch.Tensor) or idx.dim() != 1 or idx.dtype not in (
                torch.int64, torch.int32):
            return False
        count = idx.shape[0]
    want = list(val.shape)
    want[dim] = count
    return list(vals.shape) == want


@dataclass
class Mutations:
    """What the runner of a graph :func:`lift_input_mutations` rewrote does
    after each call."""

    copies: list[tuple[int, int]] = field(default_factory=list)
    """(placeholder position, output position): copy that output into that input."""
    returned: list[tuple[int, int]] = field(default_factory=list)
    """(output position in the original graph, placeholder position): an
    output that was the written input itself; the input is returned there."""
    outputs: int = 0
    """How many outputs the rewritten graph has before the copies."""


def lift_input_mutations(gm: torch.fx.GraphModule) -> Mutations:
    """Rewrite ``gm``'s ``copy_`` into placeholders in place (see the module doc)."""
    graph = gm.graph
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    position = {n: i for i, n in enumerate(placeholders)}
    copies = [n for n in graph.nodes if n.op == "call_function" and n.target is aten.copy_.default
              and isinstance(n.args[0], torch.fx.Node) and n.args[0] in position]
    if not copies:
        return Mutations()
    output = next(n for n in graph.nodes if n.op == "output")
    outs = list(output.args[0]) if isinstance(output.args[0], (tuple, list)) else [output.args[0]]
    # AOTAutograd adds each copy_ last, used (if at all) by the output only; any
    # other stays in the graph (and runs in eager PyTorch, announced)
    copies = [c for c in copies if not set(c.users) - {output}]
    mutations = Mutations()
    copy_of = {c: position[c.args[0]] for c in copies}  # type: ignore[index]
    kept = []
    for i, out in enumerate(outs):
        if out in copy_of:  # the written input itself: returned by the runner
            mutations.returned.append((i, copy_of[out]))
        else:
            kept.append(out)
    outs = kept
    mutations.outputs = len(outs)
    for copy in copies:
        cache, src = copy.args[0], copy.args[1]
        assert isinstance(cache, torch.fx.Node)
        update = _update_of(src, cache) if isinstance(src, torch.fx.Node) else None
        if update is not None and not _is_cache_update(src, cache, copy, update):
            update = None
        output.args = (tuple(outs),)  # the copy_ has no users now
        if update is not None and isinstance(src, torch.fx.Node):
            dim, index, values = update
            with graph.inserting_before(src):
                new = graph.call_function(cache_update, (cache, dim, index, values))
            new.meta = dict(src.meta)
            src.replace_all_uses_with(new)
            graph.erase_node(copy)
            graph.erase_node(src)
            outs = [new if o is src else o for o in outs]
            continue
        mutations.copies.append((position[cache], len(outs)))
        outs.append(src)
        graph.erase_node(copy)
    output.args = (tuple(outs),)
    graph.lint()
    gm.recompile()
    return mutations


def with_copies_back(runner: Runner, mutations: Mutations) -> Runner:
    """``runner`` (flat inputs -> flat outputs) that, after each call, copies
    the extra outputs :func:`lift_input_mutations` made into their inputs and
    returns the original graph's outputs (written inputs themselves included)."""
    if not mutations.copies and not mutations.returned:
        return runner
    copies, returned, n = mutations.copies, mutations.returned, mutations.outputs

    def run(*args: Any) -> list[Any]:
        outs = runner(*args)
        with torch.no_grad():
            for arg, out in copies:
                args[arg].copy_(outs[out])
        result = list(outs[:n])
        for pos, arg in returned:
            result.insert(pos, args[arg])
        return result
    run.__dict__.update(getattr(runner, "__dict__", {}))  # pieces, irc_eager
    run.irc_inner = runner  # type: ignore[attr-defined]  # what irc.profile instruments
    return run


@handles(cache_update)
def _cache_update(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    cache, dim, index, values = node.args
    if isinstance(index, range):
        index_value = ctx.constant(torch.arange(index.start, index.stop, index.step))
    else:
        index_value = ctx.tensor(index)
    return ctx.emit(g.CacheUpdateOp(ctx.tensor(cache), index_value, ctx.tensor(values),
                                        fx_args.int_arg(node, 1)))


__all__ = ["Mutations", "cache_update", "lift_input_mutations", "with_copies_back"]
