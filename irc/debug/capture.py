"""Capturing a model for the debugging tools: the graphs ``irc.compile`` runs.

:func:`capture_model` runs the model once through ``torch.compile`` with a
backend built like irc's own (:func:`irc.frontends.capture.make_dynamo_backend`:
dynamo, then AOTAutograd with irc's decomposition table, then the FX importer),
so carving and bisecting see exactly the graph-level programs that
``irc.compile`` would lower -- the ``.to()`` / ``.float()`` asserts and other
ops only ``torch.export`` emits never appear. Parameters and buffers arrive as
arguments of ``@main``, as in ``irc.compile``.

Each graph dynamo captures (more than one when the model has graph breaks) is
one :class:`CapturedGraph` holding its :class:`Program` and the real tensors it
received in the capture run. :meth:`ModelCapture.run` runs the model again with
every graph's call routed to a handler (a kernel migrator, an interpreter), so
Python code between graph breaks still runs as the model's own.
"""


from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx

from irc.errors import IrcError, UnsupportedOpError
from irc.frontends.program import Program

# (graph index, the graph's flat tensor inputs) -> its tensor outputs
GraphHandler = Callable[[int, list[torch.Tensor]], list[torch.Tensor]]


@dataclass
class CapturedGraph:
    """One graph dynamo captured: the Program, and how to call it from the
    FX graph's flat arguments (``positions``) and rebuild its flat outputs
    (``layout``: an output index, or a constant)."""

    program: Program
    layout: list[Any]
    positions: list[int]
    inputs: list[torch.Tensor] = field(default_factory=list)


def _snapshot(t: Any) -> Any:
    if not isinstance(t, torch.Tensor):
        return t
    if isinstance(t, torch.nn.Parameter):
        return t.detach()  # the live weight: no copy
    return t.detach().clone().contiguous()


def _import_strict(gm: torch.fx.GraphModule) -> tuple[Program, list[Any], list[int]]:
    """Import an AOT graph; an op the graph dialect cannot express is an
    :class:`UnsupportedOpError` naming it and its source line."""
    from irc.frontends.capture import _import
    from irc.frontends.fx_importer import static_problems
    from irc.frontends.unsupported import NodeUnsupported, op_name
    from irc.frontends.source_locations import describe
    nodes = {n.name: n for n in gm.graph.nodes}
    problems = static_problems(gm)
    if problems:
        name, reason = next(iter(problems.items()))
        raise UnsupportedOpError(op_name(nodes[name]), describe(nodes[name]), reason)
    try:
        program, layout, positions = _import(gm)
    except NodeUnsupported as err:
        node = err.node
        raise UnsupportedOpError(op_name(node) if node.op == "call_function" else node.name,
                                 describe(node), err.reason) from None
    return program, list(layout), list(positions)


class ModelCapture:
    """A model captured through dynamo + AOTAutograd (see the module docstring)."""

    def __init__(self, model: Callable[..., Any], args: Sequence[Any],
                 kwargs: Mapping[str, Any] | None = None) -> None:
        self.model = model
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.graphs: list[CapturedGraph] = []
        self.handler: GraphHandler | None = None
        self._compiled = torch.compile(_entry(model), backend=self._backend, dynamic=False)
        self.output = self._call()  # the capture run: every graph runs in eager PyTorch
        if not self.graphs:
            raise IrcError(f"dynamo captured no graph from {type(model).__name__}: "
                           "nothing to carve or bisect")

    # -- the dynamo backend ------------------------------------------------

    def _backend(self, gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
        from torch._functorch.aot_autograd import aot_module_simplified

        from irc.frontends.decompositions import decomposition_table
        return aot_module_simplified(gm, example_inputs, fw_compiler=self._forward,
                                     decompositions=decomposition_table())  # pyright: ignore[reportArgumentType]  # torch keys its tables by OperatorBase, this parameter by OpOverload

    def _forward(self, gm: torch.fx.GraphModule, example_inputs: Sequence[Any]) -> Any:
        from functorch.compile import make_boxed_func  # pyright: ignore[reportPrivateImportUsage]
        from torch._subclasses.fake_tensor import unset_fake_temporarily
        with unset_fake_temporarily():
            program, layout, positions = _import_strict(gm)
        index = len(self.graphs)
        graph = CapturedGraph(program, layout, positions)
        self.graphs.append(graph)

        def run(*args: Any) -> list[Any]:
            tensors = [args[i].contiguous() if isinstance(args[i], torch.Tensor) else args[i]
                       for i in positions]
            if self.handler is None:  # the capture run
                if not graph.inputs:
                    graph.inputs = [_snapshot(t) for t in tensors]
                result = gm(*args)
                return list(result) if isinstance(result, (tuple, list)) else [result]
            outputs = self.handler(index, tensors)
            return [outputs[item] if isinstance(item, int) else item[1] for item in layout]

        return make_boxed_func(run)

    # -- running -------------------------------------------------------------

    def _call(self, args: Sequence[Any] | None = None, kwargs: Mapping[str, Any] | None = None) -> Any:
        from irc.errors import unwrapping_irc_errors
        args = self.args if args is None else tuple(args)
        kwargs = self.kwargs if kwargs is None else dict(kwargs)
        with torch.no_grad():
            return unwrapping_irc_errors(self._compiled)(*args, **kwargs)

    def run(self, handler: GraphHandler, args: Sequence[Any] | None = None,
            kwargs: Mapping[str, Any] | None = None) -> Any:
        """Run the model once more (on the captured inputs, or on ``args`` and
        ``kwargs`` of the same signature) with each graph's call going to
        ``handler(graph_index, flat_inputs)``; returns the model's output."""
        self.handler = handler
        try:
            return self._call(args, kwargs)
        finally:
            self.handler = None


def _entry(model: Callable[..., Any]) -> Callable[..., Any]:
    """A frame of our own for dynamo to start at, with a fresh code object so
    each capture has its own dynamo cache (see :func:`irc.api._entry_frame`)."""
    call = model._call_impl if isinstance(model, torch.nn.Module) else model

    def irc_capture(*args: Any, **kwargs: Any) -> Any:
        return call(*args, **kwargs)
    irc_capture.__code__ = irc_capture.__code__.replace()
    return irc_capture


def split_inputs(inputs: Sequence[Any] | Mapping[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Example inputs as (args, kwargs): a mapping is keyword arguments (a zoo
    model's inputs), anything else positional arguments."""
    if isinstance(inputs, Mapping):
        return (), dict(inputs)
    if isinstance(inputs, torch.Tensor):
        return (inputs,), {}
    return tuple(inputs), {}


def capture_model(model: Callable[..., Any], inputs: Sequence[Any] | Mapping[str, Any]) -> ModelCapture:
    """Run ``model`` once on ``inputs`` through irc's capture; see :class:`ModelCapture`."""
    if not callable(model):
        raise IrcError(f"expected a torch.nn.Module, a function or a Program, got {type(model).__name__}")
    args, kwargs = split_inputs(inputs)
    return ModelCapture(model, args, kwargs)


def flat_tensors(value: Any) -> list[torch.Tensor]:
    """Every tensor of a model's output (tensors, tuples, dicts, Hugging Face
    ``ModelOutput`` and cache objects), in order."""
    if isinstance(value, torch.Tensor):
        return [value]
    if value is None or isinstance(value, (int, float, bool, str)):
        return []
    if hasattr(value, "to_tuple"):
        value = value.to_tuple()
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in flat_tensors(item)]
    if hasattr(value, "__iter__"):
        try:
            return [t for item in value for t in flat_tensors(item)]
        except TypeError:
            return []
    return []
